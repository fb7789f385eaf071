"""A dSprites-like data set, drawn by the project's own renderer: 64x64 binary images of one
white sprite on black, every combination of five factors (after Matthey, Higgins, Hassabis &
Lerchner 2017, "dSprites: Disentanglement testing Sprites dataset"; the pixels here are this
renderer's, not a copy of that archive):

====================  ====  ===================================================================
factor                size  real values
====================  ====  ===================================================================
shape                 3     0 square, 1 ellipse, 2 heart (categorical)
scale                 6     0.5 .. 1.0, evenly spaced (the sprite's size relative to the largest)
orientation           40    2 pi k / 40 radians, k = 0..39 (counter-clockwise in the image)
pos_x                 32    0 .. 1, evenly spaced (left to right)
pos_y                 32    0 .. 1, evenly spaced (top to bottom)
====================  ====  ===================================================================

737,280 images. As in the original, the square repeats every quarter turn and the ellipse every
half turn, so orientation is only partly identifiable for them. A sprite is the set of pixel
centres inside an implicit curve in the sprite's own frame ``(u, v) = R(-theta) (p - c) /
(RADIUS * scale)``; no anti-aliasing, so pixels are exactly 0 or 255. Rendering is vectorized:
a batch of N sprites is one set of numpy operations on a window around each sprite.
"""
from __future__ import annotations

import math

import numpy as np

from gen_keras.data.factor_sets import Factor, FactorSet

SIZE = 64
RADIUS = 10.0  # pixels: the sprite's half-extent at scale 1
# Centres range over [MARGIN, SIZE - MARGIN] so the largest sprite in any orientation stays
# inside the image (the heart reaches 1.15 RADIUS from its centre).
MARGIN = 12.0
WINDOW = 32  # pixels: the square window around a centre that holds any sprite
SHAPES = ("square", "ellipse", "heart")


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sprite ``shape`` in its own frame (u right, v up; |u|, |v| <= ~1.15)."""
    if shape == 0:  # square, side 1.5
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if shape == 1:  # ellipse, axes 1.0 and 0.5
        return u * u + 4.0 * v * v <= 1.0
    # heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (spans x in [-1.14, 1.14], y in [-1, 1.25]),
    # shrunk by 0.9 and shifted so its box is centred on the sprite's centre.
    x, y = u / 0.9, v / 0.9 + 0.12
    r = x * x + y * y - 1.0
    return r * r * r - x * x * y * y * y <= 0.0


def render(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Factor indices ``int [N, 5]`` → ``{"image": uint8 [N, 64, 64, 1]}`` (0 or 255)."""
    indices = DSPRITES.check_indices(indices)
    n = indices.shape[0]
    values = DSPRITES.factor_values(indices).astype(np.float64)
    shape, scale, theta = indices[:, 0], values[:, 1], values[:, 2]
    cx = MARGIN + values[:, 3] * (SIZE - 2 * MARGIN)
    cy = MARGIN + values[:, 4] * (SIZE - 2 * MARGIN)
    # A WINDOW x WINDOW patch around each centre, clipped to the image: 4x fewer pixels to test.
    x0 = np.clip(np.floor(cx).astype(np.int64) - WINDOW // 2, 0, SIZE - WINDOW)
    y0 = np.clip(np.floor(cy).astype(np.int64) - WINDOW // 2, 0, SIZE - WINDOW)
    grid = np.arange(WINDOW, dtype=np.float32) + 0.5
    dx = (x0[:, None] + grid[None, :] - cx[:, None]).astype(np.float32)[:, None, :]  # [N, 1, W]
    dy = (y0[:, None] + grid[None, :] - cy[:, None]).astype(np.float32)[:, :, None]  # [N, W, 1]
    inv = (1.0 / (RADIUS * scale)).astype(np.float32)[:, None, None]
    c = np.cos(theta).astype(np.float32)[:, None, None]
    s = np.sin(theta).astype(np.float32)[:, None, None]
    # Rotate the pixel offset by -theta; image y points down, so v = -(rotated y).
    u = (c * dx - s * dy) * inv
    v = -(s * dx + c * dy) * inv
    patch = np.zeros((n, WINDOW, WINDOW), bool)
    for k in range(len(SHAPES)):
        rows = np.flatnonzero(shape == k)
        if rows.size:
            patch[rows] = _inside(k, u[rows], v[rows])
    images = np.zeros((n, SIZE, SIZE), np.uint8)
    # Paste each window at its offset with one fancy-indexed assignment.
    rows = (y0[:, None] + np.arange(WINDOW))[:, :, None]
    cols = (x0[:, None] + np.arange(WINDOW))[:, None, :]
    images[np.arange(n)[:, None, None], rows, cols] = patch.astype(np.uint8) * np.uint8(255)
    return {"image": images[..., None]}


DSPRITES = FactorSet(
    name="dsprites",
    image_shape=(SIZE, SIZE, 1),
    factors=(
        Factor("shape", tuple(float(i) for i in range(len(SHAPES))), discrete=True),
        Factor("scale", tuple(float(v) for v in np.linspace(0.5, 1.0, 6))),
        Factor("orientation", tuple(2.0 * math.pi * k / 40 for k in range(40))),
        Factor("pos_x", tuple(float(v) for v in np.linspace(0.0, 1.0, 32))),
        Factor("pos_y", tuple(float(v) for v in np.linspace(0.0, 1.0, 32))),
    ),
    label_factor="shape",
    render=render,
    version="1.0.0",
    description="dSprites-like binary sprites (gen_keras renderer): shape, scale, orientation, "
                "x and y position; every combination once.",
)
