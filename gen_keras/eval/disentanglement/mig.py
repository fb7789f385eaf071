"""The Mutual Information Gap.

:func:`mutual_information_gap` — MIG (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of
  Disentanglement in Variational Autoencoders", eq. 6): for each factor v_k, the gap between the
  two codes with the largest mutual information with it, over its entropy,
  ``MIG = 1/K sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k)``.
  MI is estimated by binning each code into equal-width bins (the estimator of Locatello et al.
  2019, "Challenging Common Assumptions in the Unsupervised Learning of Disentangled
  Representations"). Their fixed 20 bins cap an exact code of a 40-valued factor (dSprites'
  orientation) at log 20 / log 40 = 0.81; the default here is ``max(20, most values of any
  factor)`` bins, so an exact code scores 1. Pass ``num_bins=20`` to compare with
  disentanglement_lib's published figures.
"""
from __future__ import annotations

import numpy as np

from gen_keras.eval.disentanglement.mutual_info import _check, entropy, mutual_information_matrix


def mutual_information_gap(codes, factors, num_bins: int | None = None) -> float:
    """MIG (Chen et al. 2018; module docstring). Factors that never vary in the sample are
    left out (their entropy is 0)."""
    codes, factors = _check(codes, factors)
    mi = mutual_information_matrix(codes, factors, num_bins)
    return mig_from_mi(mi, [entropy(factors[:, k]) for k in range(factors.shape[1])])


def mig_from_mi(mi, factor_entropies) -> float:
    """MIG from a mutual-information matrix ``[L, K]`` and the factors' entropies ``[K]``."""
    mi = np.asarray(mi, np.float64)
    gaps = []
    for k, h in enumerate(factor_entropies):
        if h <= 0:
            continue
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if len(top) > 1 else 0.0
        gaps.append((top[0] - second) / h)
    if not gaps:
        raise ValueError("no factor varies in the sample: MIG is undefined")
    return float(np.mean(gaps))
