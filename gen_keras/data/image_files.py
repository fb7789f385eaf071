"""Image files and ``.npz`` archives read the one way: the ``folder:`` and ``npz:`` data sources
of training (:mod:`gen_keras.data.sources`) and the inputs of batch jobs
(:mod:`gen_keras.batch.work`) decode through here, so one file is kept or skipped, for the same
reason, wherever it is read.

:func:`read_image` decodes ONE file into uint8 pixels ``[H, W, C]`` or returns a :class:`Skip`
naming why it was not used. A skip is never an error: a folder of images may hold anything, and
one bad file must not stop a training run or a batch job. The rules, checked in this order:

- ``cannot_open``: gone, a dangling symlink, no permission;
- ``not_regular_file``: a FIFO, socket or device named like an image (opening a FIFO would wait
  forever for a writer; the file is opened non-blocking and checked before anything is read);
- ``not_an_image``: not PNG, JPEG, BMP, GIF or WebP by its content (the suffix is not trusted, and
  no other decoder of Pillow's runs: some call external programs);
- ``too_large``: more than :data:`MAX_PIXELS` pixels by its header, before anything is decoded —
  a 157-byte PNG can claim 20000 x 20000 (a decompression bomb);
- ``pixel_mode``: 16-bit, 32-bit or float pixels (8-bit grey, palette, RGB(A), CMYK and YCbCr are
  converted; the others cannot be brought to 0..255 without a choice the reader will not make);
- ``corrupt``: the pixel data does not decode (truncated, damaged), or a PNG chunk's CRC is wrong;
- ``size``: another width and height than the caller requires (when it requires one).

:func:`open_regular` and :func:`open_picture` are the first steps alone (every rule up to
``too_large``): :mod:`gen_keras.data.folder_decode` takes the image from there for the prepared
``folder:`` data sets, where 16-bit grey, transparency and EXIF orientation are converted too.

:func:`read_npz` reads an ``npz:`` archive (``x`` images, optional ``y`` labels), refusing with a
:class:`~gen_keras.errors.ConfigError` that says what is wrong (not a zip archive, pickled
objects, a shape that is no image stack, values out of range).
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gen_keras.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# Pillow's decoders for those suffixes, and only those: a file is decoded by its content, so an
# EPS or PDF renamed x.png must not reach a decoder that runs Ghostscript.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
MAX_PIXELS = 40_000_000  # width x height: a 40-megapixel photo (120 MB as RGB) is the most we decode
GREY_MODES = frozenset({"1", "L", "LA", "La"})
COLOUR_MODES = frozenset({"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
SKIP_KINDS = ("cannot_open", "not_regular_file", "not_an_image", "too_large", "pixel_mode", "corrupt", "size")


class Skip(NamedTuple):
    """A file that was not used: ``kind`` (one of :data:`SKIP_KINDS`, for counting) and
    ``reason`` (a sentence for people)."""

    path: str
    kind: str
    reason: str


def is_image_name(path: str | Path) -> bool:
    """Whether the name says image (any case: ``A.PNG`` too). Regular or not: a FIFO named
    ``x.png`` is listed, so that reading it is skipped and counted rather than hidden."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, channels: int | None = None, size: tuple[int, int] | None = None,
               *, resize: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray | Skip:
    """One image file as uint8 ``[H, W, C]``, or the :class:`Skip` saying why not.

    ``channels``: 1 (grey) or 3 (RGB) to convert to; ``None`` keeps grey images grey and makes
    everything else RGB. ``size`` ``(width, height)``: the size the caller needs; a file of
    another size is skipped, or resized to it with ``resize=True``."""
    f = open_regular(path)
    if isinstance(f, Skip):
        return f
    with f:
        im = open_picture(f, str(path), max_pixels)
        if isinstance(im, Skip):
            return im
        with im:
            return _pixels(im, str(path), channels, size, resize)


def open_regular(path: str | Path):
    """``path`` opened for reading (binary), or the Skip saying why not: ``cannot_open``,
    ``not_regular_file`` (opened non-blocking and checked before anything is read, so a FIFO
    never makes the reader wait)."""
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:  # gone, a dangling link, no permission
        return Skip(name, "cannot_open", f"cannot be opened ({exc.strerror or exc})")
    f = os.fdopen(fd, "rb")
    mode = os.fstat(f.fileno()).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        return Skip(name, "not_regular_file", f"not a regular file ({_file_type(mode)})")
    return f


def open_picture(f, name: str, max_pixels: int = MAX_PIXELS):
    """The Pillow image in the open binary file ``f`` (header read, pixels not decoded yet), or
    the Skip saying why not: ``not_an_image``, ``too_large`` (from the header: a decompression
    bomb is refused before a pixel is decoded), ``corrupt`` (a header or PNG chunk CRC Pillow
    refuses). Only :data:`FORMATS`' decoders run."""
    from PIL import Image, UnidentifiedImageError

    try:
        # Pillow refuses twice its own pixel limit here (DecompressionBombError); anything
        # above max_pixels is refused below, before a pixel is decoded.
        im = Image.open(f, formats=FORMATS)
        if im.format == "PNG":  # every chunk's CRC (decoding checks only some), then reopen
            im.verify()
            f.seek(0)
            im = Image.open(f, formats=("PNG",))
    except UnidentifiedImageError:
        return Skip(name, "not_an_image", "not a PNG, JPEG, BMP, GIF or WebP image")
    except Image.DecompressionBombError as exc:
        return Skip(name, "too_large", f"more than {max_pixels:,} pixels ({exc})")
    except Exception as exc:  # a header or CRC Pillow refuses: SyntaxError, struct.error, ...
        return Skip(name, "corrupt", f"does not decode ({type(exc).__name__}: {exc})")
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        return Skip(name, "too_large", f"{w}x{h} is more than {max_pixels:,} pixels")
    return im


def _pixels(im, name: str, channels, size, resize: bool) -> np.ndarray | Skip:
    if im.mode not in GREY_MODES | COLOUR_MODES:
        return Skip(name, "pixel_mode", f"pixel mode {im.mode} (16-bit, 32-bit or float "
                                        "pixels); save it with 8 bits per channel")
    try:
        im.load()
        target = ("L" if im.mode in GREY_MODES else "RGB") if channels is None else (
            "L" if channels == 1 else "RGB")
        im = im.convert(target)
    except Exception as exc:  # truncated or damaged data: OSError, ValueError, zlib.error, ...
        return Skip(name, "corrupt", f"does not decode ({type(exc).__name__}: {exc})")
    if size is not None and im.size != tuple(size):
        if not resize:
            return Skip(name, "size", f"{im.size[0]}x{im.size[1]}, not the {size[0]}x{size[1]} "
                                      "required")
        im = im.resize(tuple(size))
    pixels = np.asarray(im, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _file_type(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return "not a file"


# -- npz archives ---------------------------------------------------------------------------------
def read_npz(path: str | Path, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x uint8 [N, H, W, C], y int64 [N] or None)`` of an ``.npz`` archive written by
    ``numpy.savez(path, x=images[, y=labels])``. ``x``: ``[N, H, W]`` or ``[N, H, W, 1|3]``, uint8
    0..255 or numbers in [0, 1] or [0, 255]; ``y``: non-negative integers, one per image.
    Anything else is a ConfigError that starts with ``what`` (the setting that named the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: no such file")
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] != b"PK":
        kind = "a single .npy array" if head == b"\x93NUMPY" else "not a zip file"
        raise ConfigError(f"{what}: not an npz archive ({kind}); write one with "
                          "numpy.savez(path, x=images, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f:
                raise ConfigError(f"{what}: the archive has no array 'x' (arrays: {sorted(f.files)})")
            x, y = f["x"], f.get("y")
    except ConfigError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ConfigError(f"{what}: a damaged npz archive ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise ConfigError(f"{what}: the archive holds Python objects (pickled), which are never "
                              "loaded; store numeric arrays") from None
        raise ConfigError(f"{what}: the archive does not read ({exc})") from None
    return image_stack(x, what), labels_of(y, len(x), what)


def image_stack(x: np.ndarray, what: str) -> np.ndarray:
    """An array of images as uint8 ``[N, H, W, C]`` (see :func:`read_npz`)."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or not x.shape[0]:
        raise ConfigError(f"{what}: x has shape {list(x.shape)}; expected images [N, H, W] or "
                          "[N, H, W, 1|3] with N >= 1")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
            or x.dtype == np.bool_):
        raise ConfigError(f"{what}: x holds {x.dtype} values; expected numbers")
    if x.dtype == np.uint8:
        return x
    xf = x.astype(np.float32)
    if not np.isfinite(xf).all():
        raise ConfigError(f"{what}: x holds NaN or Inf")
    lo, hi = float(xf.min()), float(xf.max())
    if lo >= 0.0 and hi <= 1.0:
        xf = xf * 255.0
    elif lo < 0.0 or hi > 255.0:
        raise ConfigError(f"{what}: x values in [{lo}, {hi}]; expected uint8, [0, 1] or [0, 255]")
    return np.round(xf).astype(np.uint8)


def labels_of(y, n: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ConfigError(f"{what}: y must be non-negative integers, one per image (x has {n}, "
                          f"y has shape {list(y.shape)} of {y.dtype})")
    return y.astype(np.int64)
