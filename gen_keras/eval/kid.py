"""Kernel Inception Distance (Binkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD
GANs", section 3): the unbiased estimate of the squared maximum mean discrepancy between two
feature sets under the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3          (d = feature dimension)

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
              - 2/(m n) sum_{i, j} k(x_i, y_j)

Unlike FID it is unbiased, so it is ~0 (it can be slightly negative) for two samples of the same
distribution at any N. As in the paper, it is averaged over random subsets and reported with
its standard deviation over those subsets.
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> np.ndarray:
    """``(gamma x . y + coef0)^degree`` with ``gamma = 1/d`` by default, float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x, y, **kernel_args) -> float:
    """The unbiased MMD^2 estimate between samples ``x [m, d]`` and ``y [n, d]`` (m, n >= 2)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {len(x)} and {len(y)}")
    return mmd2_from_kernels(polynomial_kernel(x, x, **kernel_args),
                             polynomial_kernel(y, y, **kernel_args),
                             polynomial_kernel(x, y, **kernel_args))


def mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """MMD^2_u from the three kernel matrices (diagonals of k_xx, k_yy left out)."""
    m, n = len(k_xx), len(k_yy)
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(real, fake, *, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``num_subsets`` random subsets of each set.

    Subsets of ``subset_size`` (the paper's 1000) are drawn without replacement, seeded; for
    fewer than ``2 * subset_size`` samples the subsets hold half the smaller set, so that they
    differ and the std means something. The kernel matrices of the full sets are
    computed once.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, min(len(real), len(fake)) // 2)
    if size < 2:
        raise ValueError(f"KID needs at least 4 samples per set, got {len(real)} and {len(fake)}")
    gamma = 1.0 / real.shape[1]
    k_rr = polynomial_kernel(real, real, gamma=gamma)
    k_ff = polynomial_kernel(fake, fake, gamma=gamma)
    k_rf = polynomial_kernel(real, fake, gamma=gamma)
    rng = np.random.default_rng(seed)
    # Subsets as 0/1 indicator rows: a block's sum is u^T K v, so all subsets' sums come from
    # three matrix products instead of gathering 3 x num_subsets blocks.
    u = np.zeros((num_subsets, len(real)))
    v = np.zeros((num_subsets, len(fake)))
    for s in range(num_subsets):
        u[s, rng.choice(len(real), size, replace=False)] = 1.0
        v[s, rng.choice(len(fake), size, replace=False)] = 1.0
    within_r = np.einsum("sn,sn->s", u @ k_rr, u) - u @ np.diag(k_rr)
    within_f = np.einsum("sn,sn->s", v @ k_ff, v) - v @ np.diag(k_ff)
    cross = np.einsum("sn,sn->s", u @ k_rf, v)
    values = (within_r + within_f) / (size * (size - 1)) - 2.0 * cross / (size * size)
    return float(values.mean()), float(values.std())
