"""The label map → colour scene task (``pairs:scenes``), the analogue of Pix2Pix's "labels →
facades" (Isola et al. 2017, sec. 4): the input is a scene's per-pixel label map drawn as a
colour-coded image, one fixed colour per class, the target the scene itself.

The scenes are those of the colour factor data set ``shapes3d``
(:mod:`gen_keras.data.render_shapes3d`: sky, a wall, a floor and one shaded object, 64x64x3),
read from its prepared subset ``shapes3d:<count>`` (:mod:`gen_keras.data.factor_prepare`:
rendered once, cached on disk, verified on every open) on the data set's own hash split:

* ``pairs:scenes`` — the subset ``shapes3d:20000`` (18,029 train / 1,971 test scenes); the task
  takes the first :data:`MAX_TRAIN` = 8,000 train scenes (the shards hold a split in a seeded
  random order, so they are a uniform sample) and every test scene (at most :data:`MAX_TEST`).
* ``pairs:scenes:<count>`` — the same from ``shapes3d:<count>`` (e.g. ``pairs:scenes:2000``:
  1,823 / 177 scenes, prepared in seconds, for tests and smoke runs).

The input image (:data:`PALETTE`, :func:`label_map_to_palette`) is an ordinary RGB image a
user can draw: a pixel's class is that of the nearest palette colour
(:func:`palette_to_label_map`), so antialiased or slightly off colours still read. What the
label map does NOT say — the hues of floor, wall and object (10 each in the data), the object's
shading — the generator chooses freely, as facades' textures: a translation is right when its
layout is the map's, whatever its colours (the FCN score, :mod:`gen_keras.eval.segmenter`).
"""
from __future__ import annotations

import numpy as np

from gen_keras.data.render_shapes3d import LABEL_MAP_CLASSES

DEFAULT_SUBSET = 20_000
MAX_TRAIN = 8_000
MAX_TEST = 2_000
IMAGE_SHAPE = (64, 64, 3)

# One colour per class of LABEL_MAP_CLASSES, far apart (>= 100 in RGB distance): background
# (sky) steel blue, floor purple, wall orange, object crimson.
PALETTE = np.array([(70, 130, 180), (128, 64, 128), (250, 170, 30), (220, 20, 60)], np.uint8)
assert len(PALETTE) == len(LABEL_MAP_CLASSES)


def label_map_to_palette(label_map) -> np.ndarray:
    """Class ids (``[..., 1]`` as label maps are stored, or ``[...]``) → the colour-coded image
    ``uint8 [..., 3]``."""
    ids = np.asarray(label_map)
    if ids.ndim >= 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.size and (ids.min() < 0 or ids.max() >= len(PALETTE)):
        raise ValueError(f"label map values must be class ids 0..{len(PALETTE) - 1} "
                         f"({', '.join(LABEL_MAP_CLASSES)}), got {ids.min()}..{ids.max()}")
    return PALETTE[ids.astype(np.int64)]


def palette_to_label_map(image, value_range=(0.0, 255.0)) -> np.ndarray:
    """A colour-coded image ``[..., 3]`` with values in ``value_range`` → class ids ``uint8
    [..., 1]``: each pixel takes the class of the nearest palette colour (Euclidean, in RGB)."""
    lo, hi = (float(v) for v in value_range)
    rgb = (np.asarray(image, np.float32) - lo) * (255.0 / (hi - lo))
    if rgb.shape[-1] != 3:
        raise ValueError(f"a colour-coded label image has 3 channels (RGB), got shape {list(rgb.shape)}")
    distance = np.square(rgb[..., None, :] - PALETTE.astype(np.float32)).sum(axis=-1)
    return np.argmin(distance, axis=-1).astype(np.uint8)[..., None]


def subset_name(task_argument: str) -> str:
    """The ``shapes3d`` subset a task name's argument selects (``""`` → the default)."""
    return f"shapes3d:{task_argument or DEFAULT_SUBSET}"


def check_subset(name: str, task_argument: str, field: str) -> None:
    """``name`` = ``pairs:scenes[:<count>]`` must select a valid ``shapes3d`` subset."""
    from gen_keras.data.factor_specs import parse_factor_spec
    from gen_keras.errors import ConfigError

    try:
        parse_factor_spec(subset_name(task_argument), field)
    except ConfigError:
        raise ConfigError(f"{field}={name!r}: after 'pairs:scenes:' comes the subset size, the number "
                          f"of shapes3d scenes the task is drawn from, a whole number from 100 to "
                          f"480,000 (default {DEFAULT_SUBSET})") from None


def load_scenes(task_argument: str, split: str, data_dir: str = ""):
    """``(palette inputs, scenes, shape labels, label maps)`` of one split, uint8 (the label maps
    ``[N, 64, 64, 1]`` class ids)."""
    from types import SimpleNamespace

    from gen_keras.data import load_factor_split

    limit = MAX_TRAIN if split == "train" else MAX_TEST
    # The two fields load_factor_split reads (not gen_keras.config's DataConfig: config imports
    # the data sources, which import this module — no import cycle).
    source = SimpleNamespace(dataset=subset_name(task_argument), data_dir=data_dir)
    scenes = load_factor_split(source, split, limit=limit, label_maps=True)
    return label_map_to_palette(scenes.label_maps), scenes.images, scenes.labels, scenes.label_maps


def scenes_folder(task_argument: str, data_dir: str = "") -> str:
    """The prepared folder the scenes come from (prepared on first use)."""
    from gen_keras.data.factor_source import open_prepared
    from gen_keras.data.paths import default_data_dir

    return str(open_prepared(subset_name(task_argument), default_data_dir(data_dir)).folder.resolve())
