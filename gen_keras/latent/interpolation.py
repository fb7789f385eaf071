"""Interpolation strips: decoded paths between two latent codes or two encoded images.

The paths themselves (linear, slerp and their edge cases) are the shared ones of
:mod:`gen_keras.exported.latents`, so the server and the tools draw the same frames.
"""
from __future__ import annotations

import numpy as np

from gen_keras.exported.latents import METHODS, interpolate, interpolation_weights, lerp, slerp
from gen_keras.latent.loading import as_latent_model

__all__ = ["METHODS", "image_interpolation_strips", "interpolate", "interpolation_strips",
           "interpolation_weights", "lerp", "slerp"]


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
