"""The estimator the information-based metrics share: codes binned into equal-width bins
(Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised Learning of
Disentangled Representations"), plug-in entropies and mutual information in nats, the factor-by-code
matrix and its normalized form (the heat map's cells, and the quantity MIG is built from), and the
input checks and train/test split every metric uses."""
from __future__ import annotations

import numpy as np


def _check(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes must be [N, L] and factors [N, K] with the same N; got "
                         f"{codes.shape} and {factors.shape}")
    if codes.shape[0] < 2:
        raise ValueError("at least 2 examples are needed")
    if not np.isfinite(codes).all():
        raise ValueError("codes hold NaN or Inf")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integer indices, got {factors.dtype}")
    return codes, factors.astype(np.int64)


def _split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = round(n * train_fraction)
    if not 0 < cut < n:
        raise ValueError(f"train_fraction={train_fraction} leaves no train or test examples of {n}")
    return order[:cut], order[cut:]


def discretize(codes, num_bins: int) -> np.ndarray:
    """Each code dimension into ``num_bins`` equal-width bins over its own range → ``int [N, L]``
    (a constant dimension falls entirely in bin 0)."""
    codes = np.asarray(codes, np.float64)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    width = np.where(hi > lo, (hi - lo) / num_bins, 1.0)
    return np.clip(((codes - lo) / width).astype(np.int64), 0, num_bins - 1)


def entropy(labels) -> float:
    """Shannon entropy in nats of the empirical distribution of integer ``labels``."""
    p = np.bincount(np.unique(np.asarray(labels), return_inverse=True)[1]).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(a, b) -> float:
    """Mutual information in nats between two integer label arrays (plug-in estimate)."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    nb = int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).reshape(-1, nb)
    joint = joint.astype(np.float64) / joint.sum()
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def default_num_bins(factors) -> int:
    """``max(20, the most distinct values of any factor)``: enough bins that an exact code of
    every factor keeps all its information."""
    factors = np.asarray(factors)
    return max(20, max(len(np.unique(factors[:, k])) for k in range(factors.shape[1])))


def mutual_information_matrix(codes, factors, num_bins: int | None = None) -> np.ndarray:
    """``I(z_j; v_k)`` in nats, ``[L, K]``, with the codes binned (:func:`discretize`)."""
    codes, factors = _check(codes, factors)
    binned = discretize(codes, num_bins or default_num_bins(factors))
    return np.array([[mutual_information(binned[:, j], factors[:, k])
                      for k in range(factors.shape[1])] for j in range(codes.shape[1])])


def normalized_mi(codes, factors, num_bins: int | None = None) -> np.ndarray:
    """``I(z_j; v_k) / H(v_k)`` ``[L, K]`` (0 for a constant factor): the heat map's cells."""
    codes, factors = _check(codes, factors)
    mi = mutual_information_matrix(codes, factors, num_bins)
    h = np.array([entropy(factors[:, k]) for k in range(factors.shape[1])])
    return np.where(h > 0, mi / np.where(h > 0, h, 1.0), 0.0)
