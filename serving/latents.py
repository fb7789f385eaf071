"""Latent codes: seeded draws and the paths between two codes."""
from __future__ import annotations

import numpy as np


def seeded_latents(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """``n`` codes z ~ N(0, I), float32 — the same codes ``GenerativeModel.sample_latent`` draws
    for this seed, so a seed means the same digits in training previews and in the server."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype("float32")


def linear_path(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` codes (1 - t) z0 + t z1, t evenly spaced over [0, 1]."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * z0.astype("float64") + t * z1.astype("float64")).astype("float32")


def slerp_path(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985, eq. for slerp; recommended for Gaussian latents
    by White 2016, "Sampling Generative Networks"):

        slerp(z0, z1; t) = sin((1 - t) w) / sin(w) * z0 + sin(t w) / sin(w) * z1,
        w = arccos(<z0, z1> / (|z0| |z1|)).

    A linear path between two N(0, I) draws passes near the origin, where the prior has almost
    no mass in high dimension; slerp keeps the norm in between. Falls back to the linear path
    when the codes are (anti)parallel or zero, where w or sin(w) is 0.
    """
    a, b = z0.astype("float64"), z1.astype("float64")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return linear_path(z0, z1, steps)
    omega = np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return linear_path(z0, z1, steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return path.astype("float32")


PATHS = {"linear": linear_path, "slerp": slerp_path}
