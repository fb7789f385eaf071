"""Images ↔ PNG, the one place: the grids logged every epoch, the grids and single images the
server and batch jobs answer with, and the PNG a client uploads. Pixels map linearly from a
model's value range onto 0..255 (:func:`to_uint8`) and back (:func:`decode_png`)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np


def to_uint8(images: np.ndarray, value_range=(0.0, 1.0)) -> np.ndarray:
    """Map ``value_range`` linearly onto 0..255 (rounded, clipped)."""
    lo, hi = value_range
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns): a near-square grid unless ``columns`` is given."""
    cols = columns or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def image_grid(images: np.ndarray, ncols: int | None = None, value_range=(0.0, 1.0),
               pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """``[N, H, W, C]`` images → one ``[rows*(H+pad)+pad, cols*(W+pad)+pad, C]`` uint8 grid, row
    by row, ``pad`` pixels of ``pad_value`` apart and around the edge."""
    x = to_uint8(images, value_range)
    if x.ndim == 3:
        x = x[..., None]
    n, h, w, c = x.shape
    nrows, ncols = grid_shape(n, ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = x[i]
    return grid


def png_bytes(pixels: np.ndarray, scale: int = 1) -> bytes:
    """uint8 ``[H, W, C]`` pixels as PNG: grey for one channel (channel 0 of any count but 3 or
    4), RGB / RGBA for 3 / 4; ``scale`` enlarges by pixel repetition."""
    from PIL import Image

    arr = pixels if pixels.shape[-1] in (3, 4) else pixels[..., 0]
    im = Image.fromarray(arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def save_png(grid: np.ndarray, path: str | Path, scale: int = 2) -> Path:
    from gen_keras.files import atomic_write_bytes

    return atomic_write_bytes(path, png_bytes(grid, scale))


def grid_png(images: np.ndarray, value_range, columns: int | None = None, padding: int = 2) -> bytes:
    """One PNG of ``images`` [n, h, w, c] laid out row by row, ``padding`` black pixels apart
    (also around the edge): what the server answers with. One image is itself, with no border."""
    return png_bytes(image_grid(images, columns, value_range, padding if len(images) > 1 else 0, pad_value=0))


def image_png(image: np.ndarray, value_range) -> bytes:
    """One image ``[H, W, C]`` in ``value_range`` as PNG bytes (grey or RGB), no border."""
    return png_bytes(to_uint8(image, value_range))


# -- uploads --------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PNGError(ValueError):
    """An upload that is not a usable PNG; the message says why."""


def decode_png(raw: bytes, shape, value_range) -> np.ndarray:
    """One uploaded PNG → float32 ``[1, h, w, c]`` mapped from 0..255 onto ``value_range``.

    The header is checked before any pixel is decompressed: the PNG must be exactly ``h`` x ``w``
    (so no decompression bomb is ever inflated), 8 bits per channel, one still image (no APNG),
    every chunk's CRC right, grey for ``c = 1`` (grey-valued RGB is accepted), grey or colour for
    ``c = 3``; an alpha channel must be fully opaque. A truncated or corrupt file is refused with
    the decoder's reason."""
    from PIL import Image

    h, w, c = shape
    if not raw.startswith(PNG_SIGNATURE):
        raise PNGError("the body is not a PNG (it does not start with the PNG signature)")
    if len(raw) < 33 or raw[12:16] != b"IHDR":
        raise PNGError("the PNG has no header chunk (IHDR) where it belongs")
    if raw[24] > 8:  # PIL reads 16-bit colour as 8-bit silently: refuse, as for 16-bit grey
        raise PNGError(f"the PNG has 16-bit or wider samples ({raw[24]} bits); send 8 bits per channel")
    idat = raw.find(b"IDAT")
    if b"acTL" in (raw[:idat] if idat > 0 else raw):  # an animation control chunk comes before the data
        raise PNGError("the PNG is animated (APNG); send one still image")
    try:
        Image.open(io.BytesIO(raw), formats=["PNG"]).verify()  # every chunk's CRC, before decoding
    except Image.DecompressionBombError as exc:
        raise PNGError(f"refused as a decompression bomb: {exc}") from None
    except Exception as exc:
        raise PNGError(f"the PNG is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    try:
        image = Image.open(io.BytesIO(raw), formats=["PNG"])
    except Image.DecompressionBombError as exc:
        raise PNGError(f"refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # PIL raises many types for a broken header
        raise PNGError(f"the PNG header is unreadable ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if (height, width) != (h, w):  # refused from the header: a bomb's pixels are never inflated
        raise PNGError(f"the PNG is {width}x{height} pixels (refused before decoding); this operation "
                       f"takes {w}x{h} images (shape [{h}, {w}, {c}])")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise PNGError(f"the PNG has 16-bit or wider grey samples (mode {image.mode}); send 8 bits per channel")
    try:
        image.load()
    except Exception as exc:  # truncated data, bad CRC, broken zlib stream
        raise PNGError(f"the PNG is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    if image.mode in ("1", "P"):
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    pixels = np.asarray(image)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels.shape[-1] in (2, 4):  # LA / RGBA: only an opaque alpha carries no information
        if pixels[..., -1].min() < 255:
            raise PNGError(f"the PNG has transparent pixels (mode {image.mode}); send an opaque image")
        pixels = pixels[..., :-1]
    if c == 3 and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    elif c == 1 and pixels.shape[-1] == 3:
        if not ((pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])).all():
            raise PNGError(f"the PNG is in colour (mode {image.mode}); this operation takes grey images "
                           f"(shape [{h}, {w}, 1])")
        pixels = pixels[..., :1]
    lo, hi = value_range
    return (lo + (hi - lo) * pixels.astype(np.float32) / 255.0)[None]
