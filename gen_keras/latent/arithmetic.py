"""Latent arithmetic with attribute vectors (White 2016, "Sampling Generative Networks", sec.
2.3; Radford et al. 2016, DCGAN sec. 6.3): the attribute vector from class A to class B is the
difference of the class means of the encoded images,

    v(A → B) = mean(z | B) - mean(z | A),

and decoding ``z + s * v`` for a code z of class A moves its image toward class B as s grows.
For a conditional model the label is an input of its own, so the codes carry only what the
label does not (style) and the decoded row keeps the label given to it.
"""
from __future__ import annotations

import numpy as np

from gen_keras.latent.loading import as_latent_model


def class_means(codes, labels) -> dict[int, np.ndarray]:
    """``{class: mean code}`` over the codes of each class present in ``labels``."""
    codes, labels = np.asarray(codes, np.float64), np.asarray(labels).ravel()
    if len(codes) != len(labels):
        raise ValueError(f"{len(codes)} codes but {len(labels)} labels")
    return {int(c): codes[labels == c].mean(axis=0) for c in np.unique(labels)}


def attribute_vector(means: dict[int, np.ndarray], from_class: int, to_class: int) -> np.ndarray:
    """``mean(z | to_class) - mean(z | from_class)``; a clear error for an unknown class."""
    for c in (from_class, to_class):
        if c not in means:
            raise ValueError(f"unknown class {c}: the encoded images hold classes {sorted(means)}")
    return (means[to_class] - means[from_class]).astype(np.float32)


def arithmetic_grid(model, images, labels, from_class: int, to_class: int, count: int = 8,
                    scales=(0.0, 0.5, 1.0, 1.5, 2.0), seed: int = 0) -> tuple[np.ndarray, int]:
    """``(images [count * (1 + len(scales)), H, W, C], columns)``: one row per image of
    ``from_class``: the image itself, then ``decode(z + s * v(from → to))`` for each scale s
    (s = 0 is the plain reconstruction). ``images``/``labels`` are the encoded set (test images)."""
    m = as_latent_model(model)
    m.require_encoder("latent arithmetic")
    images, labels = m.as_images(images), np.asarray(labels).ravel().astype(np.int32)
    if count < 1:
        raise ValueError(f"count={count} must be >= 1")
    if not len(scales):
        raise ValueError("scales must name at least one multiple of the attribute vector")
    codes = m.encode(images, labels if m.conditional else None)
    vector = attribute_vector(class_means(codes, labels), int(from_class), int(to_class))
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(labels == from_class)
    rows = rng.choice(rows, size=min(count, len(rows)), replace=False)
    scales = np.asarray(scales, np.float32)
    moved = codes[rows][:, None, :] + scales[None, :, None] * vector[None, None, :]
    row_labels = np.repeat(labels[rows], len(scales)) if m.conditional else None
    decoded = m.generate(moved.reshape(-1, m.latent_dim), row_labels).reshape(
        len(rows), len(scales), *m.image_shape)
    grid = np.concatenate([images[rows][:, None], decoded], axis=1)
    return grid.reshape(-1, *m.image_shape), 1 + len(scales)
