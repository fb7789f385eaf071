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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PNGError(ValueError):
    """An upload that is not a usable PNG; the message says why."""


def decode_png(raw: bytes, shape, value_range) -> np.ndarray:
    """One uploaded PNG → float32 ``[1, h, w, c]`` mapped from 0..255 onto ``value_range``.

    The header is checked before any pixel is decompressed: the PNG must be exactly ``h`` x ``w``
    (so no decompression bomb is ever inflated), 8 bits per channel, grey for ``c = 1`` (grey-valued
    RGB is accepted), grey or colour for ``c = 3``; an alpha channel must be fully opaque. A
    truncated or corrupt file is refused with the decoder's reason."""
    from PIL import Image

    h, w, c = shape
    if not raw.startswith(PNG_SIGNATURE):
        raise PNGError("the body is not a PNG (it does not start with the PNG signature)")
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
