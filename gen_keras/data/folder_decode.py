"""One image file → the training example of a prepared ``folder:`` data set: decoded safely,
turned upright, its colour mode converted, brought to ``model.image_shape`` by the resize rule
(:mod:`gen_keras.data.resize`) and PNG-encoded — or a :class:`~gen_keras.data.image_files.Skip`
saying why the file is not used.

The safety rules are :mod:`gen_keras.data.image_files`' (what is opened at all, decompression
bombs refused from the header, truncated data, PNG CRCs), plus ``too_small`` (the rule would
enlarge the image more than :data:`gen_keras.data.resize.MAX_UPSCALE` times). What this module
adds is every conversion a team's photos need, each counted in the preparation's summary by the
name in brackets:

- EXIF orientation (``exif_rotated``): a phone photo stored sideways is turned as its viewer
  shows it, before the resize rule sees its shape;
- palette images (``palette``) through their palette; CMYK JPEGs (``cmyk``) to RGB (Pillow's
  conversion, Adobe's inverted CMYK included; ICC profiles are not applied);
- transparency (``alpha_on_background``): RGBA, grey + alpha and palette transparency are
  composited on :data:`BACKGROUND` (white, as a page shows them) — dropping the alpha channel
  would show whatever colour the transparent pixels happen to store;
- 16-bit grey (``16_bit``): the high byte (value // 257 rounded down, i.e. >> 8), not Pillow's
  clip at 255 that turns most of a 16-bit image white. 16-bit RGB PNGs are delivered as 8-bit by
  Pillow already;
- grey ↔ colour against the model's channels (``grey_to_rgb``, ``colour_to_grey``): a grey
  image for an RGB model is repeated on three channels (nothing is lost or invented), a colour
  image for a grey model becomes its luminance (ITU-R 601-2, Pillow's ``L``). A folder that mixes
  them is converted, not refused, and the summary and a warning give both counts.

JPEGs are decoded at a reduced size when the target is much smaller (libjpeg's DCT scaling,
``Image.draft``: 1/2, 1/4 or 1/8, never below the size the rule needs) — the main reason the
preparation of large photos is fast.
"""
from __future__ import annotations

import io

import numpy as np

from gen_keras.data import resize
from gen_keras.data.image_files import COLOUR_MODES, GREY_MODES, Skip, open_picture, open_regular

BACKGROUND = (255, 255, 255)
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
PNG_COMPRESS_LEVEL = 3
NOTES = ("exif_rotated", "palette", "cmyk", "alpha_on_background", "16_bit", "grey_to_rgb",
         "colour_to_grey", "enlarged")
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def prepare_file(path: str, image_shape, rule: str, data: bytes | None = None):
    """``(PNG bytes of uint8 [h, w, c], notes)`` for the file at ``path`` (or its bytes ``data``,
    read elsewhere), or a :class:`Skip`."""
    f = io.BytesIO(data) if data is not None else open_regular(path)
    if isinstance(f, Skip):
        return f
    with f:
        im = open_picture(f, path)
        if isinstance(im, Skip):
            return im
        with im:
            return _convert(im, path, image_shape, rule)


def _convert(im, name: str, image_shape, rule: str):
    from PIL import ImageOps

    h, w, c = (int(d) for d in image_shape)
    width, height = im.size
    if im.mode not in GREY_MODES | COLOUR_MODES | SIXTEEN_BIT_MODES:
        return Skip(name, "pixel_mode", f"pixel mode {im.mode} (32-bit or float pixels); save it "
                                        "with 8 or 16 bits per channel")
    notes = []
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: the picture itself may still be fine
        orientation = 1
    upright = (height, width) if orientation in _ROTATED else (width, height)
    enlarge = resize.upscale_of(upright, (w, h), rule)
    if enlarge > resize.MAX_UPSCALE + 1e-9:
        return Skip(name, "too_small", f"{upright[0]}x{upright[1]}: {rule} to {w}x{h} would enlarge "
                                       f"it {enlarge:.2f}x (at most {resize.MAX_UPSCALE:g}x)")
    if enlarge > 1.0 + 1e-9:
        notes.append("enlarged")
    try:
        if im.format == "JPEG":
            need = resize.source_size_needed(upright, (w, h), rule)
            im.draft(None, need[::-1] if orientation in _ROTATED else need)
        im.load()
        if orientation != 1:
            im = ImageOps.exif_transpose(im)
            notes.append("exif_rotated")
        im, grey = _eight_bit(im, notes)
    except Exception as exc:  # truncated or damaged data: OSError, ValueError, zlib.error, ...
        return Skip(name, "corrupt", f"does not decode ({type(exc).__name__}: {exc})")
    if c == 3 and grey:
        im = im.convert("RGB")
        notes.append("grey_to_rgb")
    elif c == 1 and not grey:
        im = im.convert("L")
        notes.append("colour_to_grey")
    im = resize.apply(im, (w, h), rule, BACKGROUND)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue(), tuple(notes)


def _eight_bit(im, notes: list):
    """A loaded image as ``(mode L or RGB image, whether it is grey)``, notes appended."""
    from PIL import Image

    mode = im.mode
    if mode in SIXTEEN_BIT_MODES:
        high = (np.clip(np.asarray(im, np.int64), 0, 65535) >> 8).astype(np.uint8)
        notes.append("16_bit")
        return Image.fromarray(high, "L"), True
    if mode == "P":
        notes.append("palette")
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        notes.append("palette")
        im = im.convert("RGBA")
    elif mode == "CMYK":
        notes.append("cmyk")
        im = im.convert("RGB")
    grey = im.mode in GREY_MODES
    if im.mode in ALPHA_MODES:
        rgba = im.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            notes.append("alpha_on_background")
        back = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        im = Image.alpha_composite(back, rgba).convert("RGB")
        return (im.convert("L"), True) if grey else (im, False)
    if grey:
        return im.convert("L"), True
    return im.convert("RGB"), False


def decode_png(data: bytes) -> np.ndarray:
    """The uint8 ``[h, w, c]`` pixels of an encoded example (tests and tools)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a
