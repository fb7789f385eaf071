"""Interpolation between two latent codes (or two encoded images), linear or spherical.

Spherical linear interpolation (Shoemake 1985) between a and b with angle
Omega = arccos(<a, b> / (|a| |b|)):

    slerp(a, b; t) = sin((1 - t) Omega) / sin(Omega) * a + sin(t Omega) / sin(Omega) * b.

White 2016 ("Sampling Generative Networks", sec. 2.1) recommends it for Gaussian latents: a
straight line between two typical N(0, I) codes passes near the origin, where codes are
atypical (their norm concentrates near sqrt(d)), while the great-circle path keeps the norm.

Edge cases: identical directions (Omega = 0) fall back to the straight line (the limit of the
formula); a zero vector has no direction, so the line is used too; exactly opposite vectors
(Omega = pi) have no unique great circle, so the path turns through a fixed direction
orthogonal to a (the first coordinate axis least aligned with a, Gram-Schmidt), with the norm
going linearly from |a| to |b| — and in one dimension, where no such direction exists, that is
an error.
"""
from __future__ import annotations

import numpy as np

from gen_keras.latent.loading import as_latent_model

METHODS = ("linear", "slerp")


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
    """``[steps, d]`` points ``(1 - t) a + t b``."""
    a, b = _pair(a, b)
    t = interpolation_weights(steps)[:, None]
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a, b, steps: int, eps: float = 1e-7) -> np.ndarray:
    """``[steps, d]`` points on the great-circle path from a to b (see the module docstring)."""
    a, b = _pair(a, b)
    t = interpolation_weights(steps)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < eps or nb < eps:
        return lerp(a, b, steps)
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    omega = np.arccos(cos)
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
    s = np.sin(omega)
    return (np.sin((1.0 - t) * omega) / s * a + np.sin(t * omega) / s * b).astype(np.float32)


def interpolate(a, b, steps: int, method: str = "slerp") -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {list(METHODS)}")
    return (slerp if method == "slerp" else lerp)(a, b, steps)


def interpolation_strips(model, starts, ends, steps: int = 10, method: str = "slerp",
                         labels=None) -> np.ndarray:
    """Images ``[pairs * steps, H, W, C]``: one row of ``steps`` decoded codes per pair.

    ``starts`` / ``ends`` are ``[pairs, latent_dim]`` codes; ``labels`` (conditional models)
    is one class per pair, held fixed along its row.
    """
    m = as_latent_model(model)
    starts, ends = m.as_codes(starts), m.as_codes(ends)
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} start codes but {len(ends)} end codes")
    codes = np.concatenate([interpolate(a, b, steps, method) for a, b in zip(starts, ends)])
    row_labels = m.check_labels(labels, len(starts))
    return m.generate(codes, None if row_labels is None else np.repeat(row_labels, steps))


def image_interpolation_strips(model, x_start, x_end, steps: int = 10, method: str = "slerp",
                               labels=None) -> np.ndarray:
    """Images ``[pairs * (steps + 2), H, W, C]``: each row is the real start image, the decoded
    interpolation between the two encodings, and the real end image.

    For a conditional model both images of a pair are encoded with that pair's label, which
    is also the label of every decoded step.
    """
    m = as_latent_model(model)
    m.require_encoder("interpolating between images")
    x_start, x_end = m.as_images(x_start), m.as_images(x_end)
    pair_labels = m.check_labels(labels, len(x_start))
    decoded = interpolation_strips(m, m.encode(x_start, pair_labels), m.encode(x_end, pair_labels),
                                   steps, method, pair_labels)
    rows = decoded.reshape(len(x_start), steps, *m.image_shape)
    return np.concatenate([x_start[:, None], rows, x_end[:, None]], axis=1).reshape(
        -1, *m.image_shape)
