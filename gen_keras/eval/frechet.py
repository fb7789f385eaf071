"""The Frechet distance between Gaussians fitted to two feature sets — FID when the features come
from the evaluator network (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", eq. 6):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

(Dowson & Landau 1982 for the closed form.) Computed in float64 with the unbiased (N - 1)
covariance. FID is biased upwards at small N (Binkowski et al. 2018, section 3), so the sample
count belongs in the metric's name (``fid_2000``) and two figures compare only at equal N.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean ``[D]``, covariance ``[D, D]`` with the N - 1 denominator) in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6,
                     imaginary_tolerance: float = 1e-3) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``sqrtm(sigma1 @ sigma2)`` can come out non-finite, or not be a root at all, when the product
    is defective (scipy then returns huge finite numbers): when the root is non-finite or
    ``||R R - S1 S2|| > 1e-3 ||S1 S2||``, ``eps`` is added to both diagonals and the root retried. Round-off gives the root a tiny imaginary part; more than
    ``imaginary_tolerance`` on the diagonal means the inputs were not covariances, and it raises.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, "
                         f"sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not _is_root(covmean, s1 @ s2):
        warnings.warn(f"Frechet distance: sqrtm(S1 S2) failed (singular product); adding {eps} to "
                      "the diagonals", RuntimeWarning, stacklevel=2)
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        worst = np.max(np.abs(np.diagonal(covmean).imag))
        if worst > imaginary_tolerance:
            raise ValueError(f"Frechet distance: sqrtm has an imaginary component {worst:.3g} on "
                             "its diagonal; the inputs are not valid covariance matrices")
        covmean = covmean.real
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0)) if value > -1e-6 else float(value)


def _is_root(root: np.ndarray, m: np.ndarray, tolerance: float = 1e-3) -> bool:
    if not np.isfinite(root).all():
        return False
    scale = max(np.linalg.norm(m), 1e-300)
    return bool(np.linalg.norm(root @ root - m) <= tolerance * scale)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular input; we check finiteness
        return scipy.linalg.sqrtm(m)


def frechet_distance_of_features(features_1, features_2, **kwargs) -> float:
    """FID-style distance between two feature sets ``[N, D]`` and ``[M, D]``."""
    return frechet_distance(*gaussian_statistics(features_1), *gaussian_statistics(features_2),
                            **kwargs)
