"""The ground-truth sampler: images rendered on demand for chosen factor values.

The FactorVAE score (Kim & Mnih 2018) and the beta-VAE score (Higgins et al. 2017) need batches
in which one factor is held fixed and the others vary — pairs and groups that a stored split
holds too rarely. The sampler draws factor indices uniformly over ALL combinations of the set
(also for a subset such as ``dsprites:20000``: the metrics ask about the generative process, not
about the training sample) and renders them with the set's own renderer, so the images are
exactly those of the prepared data. The metrics see only the interface below
(:mod:`gen_keras.eval.disentanglement`).
"""
from __future__ import annotations

import numpy as np

from gen_keras.data.factor_sets import FactorSet


class FactorSampler:
    """``factor_sizes``; ``sample_factors(n, rng) -> int [n, K]``;
    ``observations(factors) -> float32 [n, H, W, C]`` in ``value_range``."""

    def __init__(self, factor_set: FactorSet, value_range=(0.0, 1.0)):
        self.factor_set = factor_set
        self.value_range = (float(value_range[0]), float(value_range[1]))

    @property
    def factor_names(self) -> tuple[str, ...]:
        return self.factor_set.factor_names

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return self.factor_set.factor_sizes

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor index tuples, each factor uniform and independent."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    def render(self, factors) -> np.ndarray:
        """uint8 images ``[n, H, W, C]`` of the given factor indices."""
        return self.factor_set.render(np.asarray(factors))["image"]

    def observations(self, factors) -> np.ndarray:
        """The images of ``factors`` as a model sees them: float32 in ``value_range``."""
        lo, hi = self.value_range
        return self.render(factors).astype(np.float32) / 255.0 * (hi - lo) + lo
