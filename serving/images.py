"""Model outputs → 8-bit pixels and PNG grids."""
from __future__ import annotations

import io
import math

import numpy as np


def to_uint8(images: np.ndarray, value_range) -> np.ndarray:
    """Map ``value_range`` linearly onto 0..255 (clipped, rounded)."""
    lo, hi = value_range
    scaled = (np.asarray(images, dtype="float32") - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype("uint8")


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns): a near-square grid unless ``columns`` is given."""
    cols = columns or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def grid_png(images: np.ndarray, value_range, columns: int | None = None, padding: int = 2) -> bytes:
    """One PNG of ``images`` [n, h, w, c] laid out row by row, ``padding`` black pixels apart
    (also around the edge). RGB / RGBA PNG for c = 3 / 4, otherwise grey (channel 0)."""
    from PIL import Image

    pixels = to_uint8(images, value_range)
    n, h, w, c = pixels.shape
    rows, cols = grid_shape(n, columns)
    canvas = np.zeros((padding + rows * (h + padding), padding + cols * (w + padding), c), "uint8")
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        canvas[top:top + h, left:left + w] = pixels[i]
    image = Image.fromarray(canvas if c in (3, 4) else canvas[..., 0])
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
