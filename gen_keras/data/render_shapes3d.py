"""A 3D-Shapes-like data set, drawn in 2-D by the project's own renderer: 64x64 colour scenes of
a floor, a wall behind it, a strip of sky above, and one shaded object standing on the floor,
every combination of six factors (after Burgess & Kim 2018, "3D Shapes Dataset"; the pixels
here are this renderer's own flat 2-D drawing, not a copy of that data set):

=============  ====  ==========================================================================
factor         size  real values
=============  ====  ==========================================================================
floor_hue      10    0.0 .. 0.9 (hue in [0, 1), step 0.1)
wall_hue       10    0.0 .. 0.9
object_hue     10    0.0 .. 0.9
scale          8     0.75 .. 1.25, evenly spaced (the object's size)
shape          4     0 cube, 1 cylinder, 2 sphere, 3 capsule (categorical)
orientation    15    -30 .. 30 degrees, evenly spaced (the camera's angle around the object)
=============  ====  ==========================================================================

480,000 images. The camera angle tilts the horizon (floor / wall edge) and the wall's top edge
in opposite directions, turns the cube (its two visible faces change width) and moves the
light's highlight across the round shapes. Each example also carries a label map ``uint8
[64, 64, 1]``: 0 background (sky), 1 floor, 2 wall, 3 object. Colours are HSV(hue, s, v) with
fixed saturation and brightness per surface; shading scales v only, so an object's pixels keep
its hue. Rendering is vectorized over a batch of scenes (numpy), no anti-aliasing.
"""
from __future__ import annotations

import functools

import numpy as np

from gen_keras.data.factor_sets import Factor, FactorSet

SIZE = 64
SHAPES = ("cube", "cylinder", "sphere", "capsule")
LABEL_MAP_CLASSES = ("background", "floor", "wall", "object")
BACKGROUND, FLOOR, WALL, OBJECT = range(4)
SKY_RGB = (206, 214, 222)
HORIZON_Y = 40.0  # floor / wall edge at the image centre
WALL_TOP_Y = 12.0  # wall / sky edge at the image centre
BASE_Y = 54.0  # where the object stands
OBJECT_WIDTH = 20.0  # pixels at scale 1
OBJECT_HEIGHT = 24.0
FLOOR_SV = (0.75, 0.9)
WALL_SV = (0.6, 0.8)
OBJECT_SV = (0.85, 0.85)
# The rows and columns that hold the object at any scale, shape and orientation.
# (The widest is the cube at scale 1.25 seen corner-on: 35 pixels; the tallest about 36.)
OBJECT_ROWS = (14, 55)
OBJECT_COLS = (12, 52)


def hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorized HSV → RGB, every argument in [0, 1], broadcast together → ``[..., 3]`` floats
    (the hexcone model, as ``colorsys.hsv_to_rgb``)."""
    h, s, v = np.broadcast_arrays(np.asarray(h, np.float32), np.asarray(s, np.float32),
                                  np.asarray(v, np.float32))
    h6 = (h % 1.0) * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.empty(h.shape + (3,), np.float32)
    for c in range(3):
        out[..., c] = np.choose(sector, [ch[c] for ch in choices])
    return out


def _in_convex(x, y, corners) -> np.ndarray:
    """Points ``(x, y)`` inside the convex polygon ``corners`` (a list of ``(px, py)`` arrays,
    in order around it, either direction)."""
    sides = []
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):
        sides.append((bx - ax) * (y - ay) - (by - ay) * (x - ax))
    return np.all([s >= 0 for s in sides], axis=0) | np.all([s <= 0 for s in sides], axis=0)


def _object(shape, width, height, turn, x, y):
    """``(inside, shade)`` of one shape for a batch: ``x, y`` pixel offsets from the object's
    foot (``[1, h, w]`` grids); ``width, height, turn`` ``[N, 1, 1]``; ``shade`` multiplies the
    object's brightness."""
    half = width / 2
    if shape == "cube":
        # A box turned by 45 + turn degrees: two side faces of widths |cos a| and |sin a| times
        # the box's width, and the top face seen from a little above (a parallelogram).
        a = np.deg2rad(45.0 + turn)
        wl, wr = width * np.abs(np.cos(a)), width * np.abs(np.sin(a))
        rise = 0.3
        left = -(wl + wr) / 2
        front, right = left + wl, left + wl + wr
        top = -0.8 * height
        zero = np.zeros_like(top)
        left_face = _in_convex(x, y, [(left, top - rise * wl), (front, top), (front, zero),
                                      (left, zero - rise * wl)])
        right_face = _in_convex(x, y, [(front, top), (right, top - rise * wr),
                                       (right, zero - rise * wr), (front, zero)])
        lid = _in_convex(x, y, [(left, top - rise * wl), (left + wr, top - rise * (wl + wr)),
                                (right, top - rise * wr), (front, top)])
        shade = np.where(left_face, 1.0, np.where(right_face, 0.7, 1.15))
        return left_face | right_face | lid, shade
    if shape == "sphere":
        r = half * 1.1
        dy = y + r
        inside = x * x + dy * dy <= r * r
        hx, hy = r * np.sin(np.deg2rad(turn)) * 0.8, -0.4 * r  # the highlight moves with the camera
        d = np.sqrt((x - hx) ** 2 + (dy - hy) ** 2) / (2 * r)
        return inside, 1.15 - 0.6 * d
    # Cylinder (flat ends seen slightly from above) and capsule (round ends): a vertical body
    # with a horizontal light gradient whose brightest column moves with the camera.
    shade = 1.1 - 0.5 * np.abs(x / half - np.sin(np.deg2rad(turn)))
    top = -height
    if shape == "cylinder":
        cap = 0.2 * width
        body = (np.abs(x) <= half) & (y >= top + cap / 2) & (y <= -cap / 2)
        bottom = (x / half) ** 2 + ((y + cap / 2) / (cap / 2)) ** 2 <= 1.0
        lid = (x / half) ** 2 + ((y - top - cap / 2) / (cap / 2)) ** 2 <= 1.0
        return body | bottom | lid, np.where(lid & ~body, 1.15, shade)
    body = (np.abs(x) <= half) & (y >= top + half) & (y <= -half)
    ends = (x * x + (y + half) ** 2 <= half * half) | (x * x + (y - top - half) ** 2 <= half * half)
    return body | ends, shade


def _scene(turn, floor_hue, wall_hue):
    """The background of scenes — sky, wall, floor, no object — for camera angles ``turn`` and
    hues ``[N, 1, 1]``: ``(rgb float32 [N, 64, 64, 3] in [0, 1], label uint8 [N, 64, 64])``."""
    grid = np.arange(SIZE, dtype=np.float32) + 0.5
    xs, ys = grid[None, None, :] - SIZE / 2, grid[None, :, None]
    tilt = turn / 30.0  # -1 .. 1
    horizon = HORIZON_Y + 5.0 * tilt * xs / (SIZE / 2)  # [N, 1, W]
    wall_top = WALL_TOP_Y - 3.0 * tilt * xs / (SIZE / 2)
    label = np.where(ys >= horizon, np.uint8(FLOOR),
                     np.where(ys >= wall_top, np.uint8(WALL), np.uint8(BACKGROUND)))
    # The floor darkens towards the horizon (distance); the wall and the sky are flat.
    light = 0.7 + 0.3 * np.clip((ys - horizon) / (SIZE - horizon), 0, 1)
    floor = hsv_to_rgb(floor_hue, FLOOR_SV[0], FLOOR_SV[1]) * light[..., None]
    wall = hsv_to_rgb(wall_hue, WALL_SV[0], WALL_SV[1])
    sky = np.asarray(SKY_RGB, np.float32) / 255.0
    rgb = np.where((label == FLOOR)[..., None], floor,
                   np.where((label == WALL)[..., None], wall, sky))
    return rgb.astype(np.float32), label


@functools.cache
def _backgrounds() -> tuple[np.ndarray, np.ndarray]:
    """Every background, computed once per process: uint8 RGB ``[10, 10, 15, 64, 64, 3]`` by
    (floor hue, wall hue, orientation) — 18 MB — and the label maps ``[15, 64, 64]`` by
    orientation (the object is drawn over them)."""
    f = SHAPES3D.factors
    hues = np.asarray(f[0].values, np.float32)
    turns = np.asarray(f[5].values, np.float32)
    fh, wh, t = np.meshgrid(hues, hues, turns, indexing="ij")
    column = lambda a: a.reshape(-1, 1, 1)
    rgb, label = _scene(column(t), column(fh), column(wh))
    rgb = np.round(rgb * 255.0).astype(np.uint8).reshape(len(hues), len(hues), len(turns), SIZE, SIZE, 3)
    return rgb, label.reshape(len(hues), len(hues), len(turns), SIZE, SIZE)[0, 0]


def render(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Factor indices ``int [N, 6]`` → ``{"image": uint8 [N, 64, 64, 3], "label_map": uint8
    [N, 64, 64, 1]}``.

    A scene's background depends on three factors only (floor hue, wall hue, orientation), so
    all 1,500 backgrounds are drawn once and copied; the object is then drawn over them in the
    fixed window that holds it. Shading scales the object's brightness only (HSV → RGB is
    linear in v), so its colour is computed once per scene and multiplied per pixel.
    """
    indices = SHAPES3D.check_indices(indices)
    backgrounds, labels = _backgrounds()
    image = backgrounds[indices[:, 0], indices[:, 1], indices[:, 5]]
    label = labels[indices[:, 5]]
    values = SHAPES3D.factor_values(indices)
    column = lambda a: a.astype(np.float32)[:, None, None]  # [N] → [N, 1, 1]
    scale, turn = column(values[:, 3]), column(values[:, 5])
    (r0, r1), (c0, c1) = OBJECT_ROWS, OBJECT_COLS
    x = np.arange(c0, c1, dtype=np.float32)[None, None, :] + 0.5 - SIZE / 2
    y = np.arange(r0, r1, dtype=np.float32)[None, :, None] + 0.5 - BASE_Y
    colour = hsv_to_rgb(values[:, 2], OBJECT_SV[0], OBJECT_SV[1])[:, None, None, :]  # [N, 1, 1, 3]
    window_image, window_label = image[:, r0:r1, c0:c1], label[:, r0:r1, c0:c1]  # views
    for k, name in enumerate(SHAPES):
        rows = np.flatnonzero(indices[:, 4] == k)
        if rows.size:
            inside, shade = _object(name, OBJECT_WIDTH * scale[rows], OBJECT_HEIGHT * scale[rows],
                                    turn[rows], x, y)
            # Clip v (not the channels) at 1 so the hue stays the object's.
            shade = np.minimum(shade, 1.0 / OBJECT_SV[1]).astype(np.float32)
            pixels = np.round(colour[rows] * shade[..., None] * 255.0).astype(np.uint8)
            window_image[rows] = np.where(inside[..., None], pixels, window_image[rows])
            window_label[rows] = np.where(inside, np.uint8(OBJECT), window_label[rows])
    return {"image": image, "label_map": label[..., None]}


SHAPES3D = FactorSet(
    name="shapes3d",
    image_shape=(SIZE, SIZE, 3),
    factors=(
        Factor("floor_hue", tuple(k / 10 for k in range(10))),
        Factor("wall_hue", tuple(k / 10 for k in range(10))),
        Factor("object_hue", tuple(k / 10 for k in range(10))),
        Factor("scale", tuple(float(v) for v in np.linspace(0.75, 1.25, 8))),
        Factor("shape", tuple(float(i) for i in range(len(SHAPES))), discrete=True),
        Factor("orientation", tuple(float(v) for v in np.linspace(-30.0, 30.0, 15))),
    ),
    label_factor="shape",
    render=render,
    version="1.0.0",
    description="3D-Shapes-like colour scenes (gen_keras 2-D renderer): floor, wall and object "
                "hue, object scale, shape and camera orientation; every combination once; "
                "with a per-pixel label map (background, floor, wall, object).",
    label_map_classes=LABEL_MAP_CLASSES,
)
