"""Image grids as PNG: the pictures logged every epoch and served over HTTP."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def to_uint8(images: np.ndarray, value_range=(0.0, 1.0)) -> np.ndarray:
    lo, hi = value_range
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, ncols: int | None = None, value_range=(0.0, 1.0),
               pad: int = 2) -> np.ndarray:
    """``[N, H, W, C]`` images → one ``[rows*(H+pad)+pad, cols*(W+pad)+pad, C]`` uint8 grid."""
    x = to_uint8(images, value_range)
    if x.ndim == 3:
        x = x[..., None]
    n, h, w, c = x.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    return grid


def png_bytes(grid: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    arr = grid[..., 0] if grid.shape[-1] == 1 else grid
    im = Image.fromarray(arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def save_png(grid: np.ndarray, path: str | Path, scale: int = 2) -> Path:
    from gen_keras.files import atomic_write_bytes

    return atomic_write_bytes(path, png_bytes(grid, scale))
