"""Latent codes, the one documented way: seeded prior draws and paths between two codes.

This module is the contract between training, the tools and the server: a seed means the same
codes in the per-epoch preview grids (``GenerativeModel.sample_latent``), in the latent tools, in
batch jobs and in ``POST :generate {"seed": s}``; a noise seed means the same noise for the item
at the same position of a job (:func:`draw_noise`). It needs numpy only.

Paths: linear, and spherical linear interpolation (Shoemake 1985) between a and b with angle
Omega = arccos(<a, b> / (|a| |b|)):

    slerp(a, b; t) = (sin((1 - t) Omega) a + sin(t Omega) b) / sin(Omega).

White 2016 ("Sampling Generative Networks", sec. 2.1) recommends slerp for Gaussian latents: a
straight line between two typical N(0, I) codes passes near the origin, where codes are atypical
(their norm concentrates near sqrt(d)), while the great-circle path keeps the norm. Edge cases:
identical directions (Omega = 0) and a zero vector fall back to the straight line (the limit of
the formula); exactly opposite vectors (Omega = pi) have no unique great circle, so the path turns
through a fixed direction orthogonal to a (the coordinate axis least aligned with a,
Gram-Schmidt), with the norm going linearly from |a| to |b| — in one dimension, where no such
direction exists, that is an error.
"""
from __future__ import annotations

import numpy as np

METHODS = ("linear", "slerp")


def sample_prior(n: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """``[n, latent_dim]`` float32 codes z ~ N(0, I) from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)


def draw_noise(n: int, dim: int, seed: int = 0, first_index: int = 0, draw: int = 0) -> np.ndarray:
    """``[n, dim]`` float32 standard-normal noise: the item at position ``first_index + k`` of a
    job gets ``numpy.random.default_rng([seed, draw, first_index + k]).standard_normal(dim)``.

    Keyed by the item's position, not by the call that carries it, so an item's noise (a VAE
    score's eps) is the same in one request, in a pyfunc call or in any chunk of a batch job on any
    worker; ``draw`` numbers the independent draws a score averaged over several takes."""
    out = np.empty((n, dim), np.float32)
    for k in range(n):
        out[k] = np.random.default_rng([int(seed), int(draw), int(first_index) + k]).standard_normal(dim)
    return out


def interpolation_weights(steps: int) -> np.ndarray:
    """``steps`` evenly spaced t in [0, 1], both ends included."""
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps={steps}: an interpolation needs at least 2 steps (both ends)")
    return np.linspace(0.0, 1.0, int(steps))


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate between codes of sizes {a.size} and {b.size}")
    return a, b


def lerp(a, b, steps: int) -> np.ndarray:
    """``[steps, d]`` float32 points ``(1 - t) a + t b``."""
    a, b = _pair(a, b)
    t = interpolation_weights(steps)[:, None]
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a, b, steps: int, eps: float = 1e-7) -> np.ndarray:
    """``[steps, d]`` float32 points on the great-circle path from a to b (module docstring)."""
    a, b = _pair(a, b)
    t = interpolation_weights(steps)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < eps or nb < eps:
        return lerp(a, b, steps)
    omega = np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    if omega < 1e-6:  # same direction: the formula's limit is the straight line
        return lerp(a, b, steps)
    if np.pi - omega < 1e-6:  # opposite: pick the turning direction deterministically
        if a.size < 2:
            raise ValueError("slerp between opposite codes of a 1-D latent is undefined (there "
                             "is no circle through them); use method='linear'")
        unit = a / na
        axis = np.zeros_like(a)
        axis[int(np.argmin(np.abs(unit)))] = 1.0
        ortho = axis - np.dot(axis, unit) * unit
        ortho /= np.linalg.norm(ortho)
        radius = (1.0 - t) * na + t * nb
        direction = np.cos(t * np.pi) * unit + np.sin(t * np.pi) * ortho
        return (radius * direction).astype(np.float32)
    return ((np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


def interpolate(a, b, steps: int, method: str = "slerp") -> np.ndarray:
    """``[steps, d]`` codes from a to b along the ``method`` path (``linear`` | ``slerp``)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {list(METHODS)}")
    return (slerp if method == "slerp" else lerp)(a, b, steps)
