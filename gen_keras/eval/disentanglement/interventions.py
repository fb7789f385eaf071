"""What the two intervention-based scores share: a ground-truth ``sampler`` —
``factor_sizes`` (K ints), ``sample_factors(n, rng) -> int [n, K]`` and ``observations(factors) ->
array [n, ...]`` (gen_keras.data.ground_truth.FactorSampler) — and a ``represent`` function,
observations ``[n, ...]`` -> codes ``[n, L]``."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]


def _codes_of(sampler, represent: Represent, factors: np.ndarray) -> np.ndarray:
    codes = np.asarray(represent(sampler.observations(factors)), np.float64)
    if codes.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"represent returned shape {codes.shape} for {factors.shape[0]} inputs")
    return codes


def _fixed_factor_batches(sampler, factor_k: np.ndarray, batch_size: int,
                          rng: np.random.Generator) -> np.ndarray:
    """For each requested factor k, a batch of ``batch_size`` factor tuples sharing one random
    value of factor k → ``[len(factor_k) * batch_size, K]`` (batch after batch)."""
    sizes = np.asarray(sampler.factor_sizes)
    out = sampler.sample_factors(len(factor_k) * batch_size, rng).reshape(len(factor_k), batch_size, -1)
    fixed = rng.integers(0, sizes[factor_k])
    out[np.arange(len(factor_k)), :, factor_k] = fixed[:, None]
    return out.reshape(len(factor_k) * batch_size, -1)
