"""The rules that bring an image of any size to ``model.image_shape`` (``data.resize``), as pure
geometry on sizes and one Pillow call that applies it.

=========  ==================================================================================
rule       what happens to a W x H image for a target w x h
=========  ==================================================================================
``crop``   (default) scaled so that it COVERS the target — the shorter side (relative to the
           target's aspect) becomes the target's — then the centre w x h is cut out. Nothing
           is distorted; the edges of the longer side are lost.
``pad``    scaled so that it FITS inside the target — the longer side becomes the target's —
           and centred on the background colour. Nothing is lost or distorted; bands appear.
``stretch`` scaled to exactly w x h, each axis on its own. Nothing is lost; shapes distort when
           the aspect ratios differ (the behaviour of ``folder:`` before this rule existed).
=========  ==================================================================================

A rule never enlarges an image more than :data:`MAX_UPSCALE` times (on either axis): such a file
is too small for the target and is skipped (``too_small``), counted and named like any other
skipped file — enlarging a 32-pixel thumbnail to 256 invents the detail a generator would then
learn. When every file is too small, the preparation stops with an error naming the folder, the
count and the largest image shape the files can reach.

Sizes are ``(width, height)`` as Pillow names them; image shapes ``(height, width, channels)``.
"""
from __future__ import annotations

import math

RULES = ("crop", "pad", "stretch")
DEFAULT_RULE = "crop"
MAX_UPSCALE = 2.0


def check_rule(rule: str, field: str = "data.resize") -> str:
    from gen_keras.errors import ConfigError

    if rule not in RULES:
        raise ConfigError(f"{field}={rule!r} is not one of {list(RULES)} (crop: shorter side to "
                          "the target, centre crop; pad: longer side to the target, centred on a "
                          "background; stretch: both sides to the target)")
    return rule


def scale_of(size: tuple[int, int], target: tuple[int, int], rule: str) -> tuple[float, float]:
    """The ``(x, y)`` scale factors ``rule`` applies to an image of ``size`` for ``target``."""
    (W, H), (w, h) = size, target
    if rule == "crop":
        s = max(w / W, h / H)
        return s, s
    if rule == "pad":
        s = min(w / W, h / H)
        return s, s
    return w / W, h / H


def upscale_of(size: tuple[int, int], target: tuple[int, int], rule: str) -> float:
    """How many times ``rule`` enlarges the image (< 1: it shrinks)."""
    return max(scale_of(size, target, rule))


def source_size_needed(size: tuple[int, int], target: tuple[int, int], rule: str) -> tuple[int, int]:
    """The smallest ``(width, height)`` the decoder may deliver (JPEG's reduced decoding,
    ``Image.draft``) without losing resolution the rule keeps."""
    sx, sy = scale_of(size, target, rule)
    return max(1, math.ceil(size[0] * min(sx, 1.0))), max(1, math.ceil(size[1] * min(sy, 1.0)))


def crop_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[float, float, float, float]:
    """``crop``: the centre region of ``size`` (in source pixels) that becomes the target."""
    (W, H), (w, h) = size, target
    s = max(w / W, h / H)
    cw, ch = min(W, w / s), min(H, h / s)  # (min: rounding must not leave the image)
    left, top = max(0.0, (W - cw) / 2), max(0.0, (H - ch) / 2)
    return left, top, min(float(W), left + cw), min(float(H), top + ch)


def pad_layout(size: tuple[int, int], target: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``pad``: ``((scaled width, scaled height), (left, top))`` of the image on the target."""
    (W, H), (w, h) = size, target
    s = min(w / W, h / H)
    sw, sh = min(w, max(1, round(W * s))), min(h, max(1, round(H * s)))
    return (sw, sh), ((w - sw) // 2, (h - sh) // 2)


def max_reachable(sizes, rule: str, aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest target ``(width, height)`` with the aspect ``aspect`` that every size in
    ``sizes`` reaches under ``rule`` without enlarging more than :data:`MAX_UPSCALE` times — for
    the message of a folder whose every file is too small."""
    w, h = aspect
    best = None
    for size in sizes:
        s = 1.0 / upscale_of(size, (w, h), rule)  # scale at which this size is enlarged 1x
        best = s if best is None else min(best, s)
    f = (best or 1.0) * MAX_UPSCALE
    return max(1, math.floor(w * f)), max(1, math.floor(h * f))


def apply(image, target: tuple[int, int], rule: str, background=(255, 255, 255)):
    """``image`` (a loaded Pillow image, mode ``L`` or ``RGB``) brought to ``target`` by ``rule``.

    Lanczos resampling (antialiased when shrinking); ``reducing_gap`` lets Pillow shrink by
    whole factors first when the image is more than 3x the target (the same result to the eye,
    several times faster on large photos)."""
    from PIL import Image

    lanczos = Image.Resampling.LANCZOS
    if image.size == tuple(target):
        return image
    if rule == "crop":
        return image.resize(target, lanczos, box=crop_box(image.size, target), reducing_gap=3.0)
    if rule == "stretch":
        return image.resize(target, lanczos, reducing_gap=3.0)
    scaled, offset = pad_layout(image.size, target)
    fill = background[0] if image.mode == "L" else tuple(background)
    canvas = Image.new(image.mode, target, fill)
    canvas.paste(image.resize(scaled, lanczos, reducing_gap=3.0), offset)
    return canvas
