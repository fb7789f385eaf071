"""The FactorVAE score.

:func:`factorvae_score` (Kim & Mnih 2018, "Disentangling by Factorising", sec. 4): fix one
  factor at a random value in a batch of images, normalize the codes by their global standard
  deviation, and vote for the (active) code with the smallest variance; a majority-vote
  classifier from code to factor is fit on ``num_train`` votes and the score is its accuracy on
  ``num_eval`` fresh votes. Chance level is 1/K.
"""
from __future__ import annotations

import numpy as np

from gen_keras.eval.disentanglement.interventions import Represent, _codes_of, _fixed_factor_batches


def factorvae_score(sampler, represent: Represent, *, batch_size: int = 64,
                    num_train: int = 500, num_eval: int = 300, num_variance: int = 5000,
                    prune_ratio: float = 0.05, votes_per_call: int = 16,
                    seed: int = 0) -> float:
    """The FactorVAE score (Kim & Mnih 2018; module docstring). Codes whose variance over
    ``num_variance`` random images is below ``prune_ratio`` x the largest are collapsed and
    take no votes. Images are rendered and encoded ``votes_per_call`` batches at a time."""
    rng = np.random.default_rng(seed)
    codes = _codes_of(sampler, represent, sampler.sample_factors(num_variance, rng))
    scale = codes.std(axis=0)
    active = scale ** 2 >= prune_ratio * max(float(np.max(scale ** 2)), 1e-12)
    if not active.any():
        return 0.0
    n_factors = len(sampler.factor_sizes)

    def votes(n: int) -> tuple[np.ndarray, np.ndarray]:
        ks, ds = [], []
        for start in range(0, n, votes_per_call):
            k = rng.integers(0, n_factors, min(votes_per_call, n - start))
            z = _codes_of(sampler, represent, _fixed_factor_batches(sampler, k, batch_size, rng))
            var = (z / np.where(scale > 0, scale, 1.0)).reshape(len(k), batch_size, -1).var(axis=1)
            ds.append(np.argmin(np.where(active, var, np.inf), axis=1))
            ks.append(k)
        return np.concatenate(ds), np.concatenate(ks)

    d_train, k_train = votes(num_train)
    counts = np.zeros((codes.shape[1], n_factors), np.int64)
    np.add.at(counts, (d_train, k_train), 1)
    majority = np.argmax(counts, axis=1)  # code -> the factor it most often voted for
    d_eval, k_eval = votes(num_eval)
    return float(np.mean(majority[d_eval] == k_eval))
