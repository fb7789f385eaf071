"""Image-to-image translation tasks built from the bundled digits, offline.

``data.dataset`` names a task as ``<pairing>:<task>``:

* ``pairs:sr4`` — x4 super-resolution: the input is the digit area-downsampled by 4 (28x28 →
  7x7: each input pixel is the mean of a 4x4 block, rounded to uint8), the target the original.
* ``pairs:inpaint`` — inpainting: the input is the digit with a square hole filled with mid-grey
  (128 of 255, so the hole differs from the black background); the target the whole digit. The
  square's side is 3/7 of the image side (12 px at 28x28) and its top-left corner is drawn
  uniformly so the square stays in the central region where the strokes are (4..12 px at 28x28),
  from a generator seeded by ``(TASK_SEED, image index)``: every image has its own fixed hole,
  the same in every run and whatever ``data.limit_*`` says.
* ``unpaired:mnistm`` — grey digits (domain A) and colour digits (domain B), an MNIST-M-like
  domain (Ganin et al. 2016 composite MNIST digits onto photo patches; there are no photos here,
  so the backgrounds are procedural colour textures): each colour digit is a grey digit's stroke
  mask composited, in a bright colour, over a texture of two dark colours mixed by a random
  sinusoidal grating plus smooth colour noise (:func:`colour_digits`). The two domains come from
  DISJOINT images — A from the first half of a split, B from the second — so no image has its
  pair in the other domain. Both domains are RGB (grey digits replicate their channel), so one
  generator shape serves both directions and the identity loss is defined. Strokes are always
  brighter than the texture in luma (>= 0.6 against <= 0.4), so the greyscale conversion of a
  colour digit is still a light-on-dark digit (how class preservation is scored).
* ``pairs:scenes`` (or ``pairs:scenes:<count>``) — label map → colour scene: the input is the
  per-pixel label map of a ``shapes3d`` scene drawn in a fixed colour per class, the target the
  scene (:mod:`gen_keras.data.scenes`, which has the palette, the sizes and the split).

The digit tasks share one split: ``train`` = mnist10k images 0..7999, ``test`` =
8000..9999 (for ``unpaired:mnistm``: A = train 0..3999 / test 8000..8999, B = train 4000..7999 /
test 9000..9999). Everything is computed once per process in numpy (the whole data set is
10,000 digits) and reaches the model as ``(input, target)`` (paired) or ``(a, b)`` (unpaired,
two independently shuffled streams) float batches in the model's value range.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from gen_keras.errors import ConfigError

PAIRED_TASKS = ("sr4", "inpaint", "scenes")
UNPAIRED_TASKS = ("mnistm",)
TASKS = {"pairs": PAIRED_TASKS, "unpaired": UNPAIRED_TASKS}
TASK_SEED = 2017  # fixed: every run sees the same holes and textures
SR_FACTOR = 4
HOLE_FILL = 128
MAX_BACKGROUND_LUMA = 0.4
MIN_STROKE_LUMA = 0.6
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as tf.image.rgb_to_grayscale


def is_translation_dataset(name: str) -> bool:
    return name.partition(":")[0] in TASKS


def split_task_name(name: str) -> tuple[str, str, str]:
    """``"pairs:scenes:2000"`` → ``("pairs", "scenes", "2000")``; the argument is ``""`` when
    absent (only ``scenes`` takes one: the size of the ``shapes3d`` subset)."""
    pairing, _, rest = name.partition(":")
    task, _, argument = rest.partition(":")
    return pairing, task, argument


def check_translation_name(name: str, field: str = "data.dataset") -> None:
    pairing, task, argument = split_task_name(name)
    if task not in TASKS.get(pairing, ()):
        known = [f"{p}:{t}" for p, tasks in TASKS.items() for t in tasks] + ["pairs:scenes:<count>"]
        raise ConfigError(f"{field}={name!r} is not a known image-to-image task; use one of {known}")
    if task == "scenes":
        from gen_keras.data.scenes import check_subset

        check_subset(name, argument, field)
    elif argument:
        raise ConfigError(f"{field}={name!r}: task {task!r} takes no argument after '{pairing}:{task}'")


@dataclasses.dataclass
class TranslationSplit:
    """One split as uint8 arrays. Paired: ``inputs[i]`` → ``targets[i]`` (same label). Unpaired:
    ``inputs`` are domain A, ``targets`` domain B, of different digits (and lengths)."""
    inputs: np.ndarray
    targets: np.ndarray
    input_labels: np.ndarray
    target_labels: np.ndarray
    masks: np.ndarray | None = None  # inpainting: True inside the hole, [N, H, W, 1]
    label_maps: np.ndarray | None = None  # scenes: class ids of the input, uint8 [N, H, W, 1]


@dataclasses.dataclass
class TranslationInfo:
    """What the trainer and MLflow need to know of a task (the ``SourceInfo`` fields, plus the
    shapes and the pairing)."""
    name: str
    paired: bool
    input_shape: tuple[int, int, int]
    image_shape: tuple[int, int, int]  # the target (paired) / both domains (unpaired)
    num_train: int
    num_test: int
    source_uri: str
    num_classes: int = 10
    skipped: int = 0
    skipped_files: list = dataclasses.field(default_factory=list)


def task_shapes(name: str, image_shape) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(input shape, target shape) of task ``name`` for targets of ``image_shape``."""
    check_translation_name(name)
    h, w, c = (int(d) for d in image_shape)
    task = split_task_name(name)[1]
    if task == "scenes" and (h, w, c) != (64, 64, 3):
        raise ConfigError(f"data.dataset={name!r} translates 64x64 colour-coded label maps into 64x64 "
                          f"colour scenes: model.image_shape must be [64, 64, 3], got {[h, w, c]}")
    if task == "sr4":
        if h % SR_FACTOR or w % SR_FACTOR:
            raise ConfigError(f"data.dataset={name!r} needs an image side divisible by {SR_FACTOR}; "
                              f"model.image_shape is {[h, w, c]}")
        return (h // SR_FACTOR, w // SR_FACTOR, c), (h, w, c)
    if task == "mnistm" and c != 3:
        raise ConfigError(f"data.dataset={name!r} translates grey <-> colour digits, both as RGB: "
                          f"model.image_shape must have 3 channels, got {[h, w, c]}")
    return (h, w, c), (h, w, c)


def split_indices(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """mnist10k indices of the (input / domain A, target / domain B) images of ``split``."""
    from gen_keras.data import mnist10k

    if split not in ("train", "test"):
        raise ConfigError(f"split={split!r} is not one of ['train', 'test']")
    start, n = (0, mnist10k.NUM_TRAIN) if split == "train" else (mnist10k.NUM_TRAIN, mnist10k.NUM_TEST)
    idx = np.arange(start, start + n)
    if name.startswith("unpaired:"):
        return idx[: n // 2], idx[n // 2:]
    return idx, idx


def load_translation_split(name: str, split: str, image_shape, limit: int = 0,
                           data_dir: str = "") -> TranslationSplit:
    """Split ``split`` of task ``name`` as uint8 arrays at ``image_shape`` (the first ``limit``
    examples of each side when ``limit`` > 0). ``data_dir``: where prepared data sets live
    (``data.data_dir``; the scenes' ``shapes3d`` subset)."""
    out = _build_split(name, split, tuple(int(d) for d in image_shape), data_dir)
    if not limit:
        return out
    parts = (getattr(out, f.name) for f in dataclasses.fields(out))  # (astuple would deep-copy)
    return TranslationSplit(*(None if a is None else a[:limit] for a in parts))


@functools.lru_cache(maxsize=8)
def _build_split(name: str, split: str, image_shape: tuple[int, int, int], data_dir: str = "") -> TranslationSplit:
    from gen_keras.data import mnist10k

    check_translation_name(name)
    task_shapes(name, image_shape)  # raises on shapes the task cannot make
    _, task, argument = split_task_name(name)
    if task == "scenes":
        from gen_keras.data.scenes import load_scenes

        if split not in ("train", "test"):
            raise ConfigError(f"split={split!r} is not one of ['train', 'test']")
        inputs, scenes, labels, label_maps = load_scenes(argument, split, data_dir)
        return TranslationSplit(inputs, scenes, labels, labels, label_maps=label_maps)
    images, labels = mnist10k.load_arrays()
    a_idx, b_idx = split_indices(name, split)
    if task == "sr4":
        target = fit_digits(images[a_idx], image_shape)
        return TranslationSplit(area_downsample(target, SR_FACTOR), target, labels[a_idx], labels[a_idx])
    if task == "inpaint":
        target = fit_digits(images[a_idx], image_shape)
        masks = hole_masks(a_idx, image_shape[:2])
        return TranslationSplit(punch_holes(target, masks), target, labels[a_idx], labels[a_idx], masks)
    grey = fit_digits(images[a_idx], image_shape)
    colour = colour_digits(fit_digits(images[b_idx], image_shape[:2] + (1,)), b_idx)
    return TranslationSplit(grey, colour, labels[a_idx], labels[b_idx])


@functools.lru_cache(maxsize=4)
def colour_split(split: str, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """EVERY digit of ``split`` in colour (uint8 ``[N, *image_shape]``, the texture and stroke
    colour of its index, as domain B draws them) and its labels: the data of the colour-domain
    evaluator, which judges translations and so may see more colour digits than domain B has."""
    from gen_keras.data import mnist10k

    images, labels = mnist10k.load_arrays()
    start, n = (0, mnist10k.NUM_TRAIN) if split == "train" else (mnist10k.NUM_TRAIN, mnist10k.NUM_TEST)
    idx = np.arange(start, start + n)
    return colour_digits(fit_digits(images[idx], tuple(image_shape[:2]) + (1,)), idx), labels[idx]


def fit_digits(images: np.ndarray, image_shape) -> np.ndarray:
    """uint8 ``[N, 28, 28, 1]`` digits → uint8 ``[N, *image_shape]`` (area resize as the
    image pipeline's ``fit_image``; grey replicated to RGB)."""
    h, w, c = image_shape
    x = images
    if x.shape[1:3] != (h, w):
        import tensorflow as tf

        x = tf.image.resize(x, (h, w), method="area", antialias=True).numpy()
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if c == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x)


def area_downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor x factor`` block, rounded to uint8 (a low-resolution sensor)."""
    n, h, w, c = images.shape
    blocks = images.astype(np.float32).reshape(n, h // factor, factor, w // factor, factor, c)
    return np.clip(np.round(blocks.mean(axis=(2, 4))), 0, 255).astype(np.uint8)


def hole_masks(indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One square hole per image, seeded by ``(TASK_SEED, mnist10k index)``: bool ``[N, H, W, 1]``."""
    h, w = size
    side = round(h * 3 / 7)
    margin = round(h / 7)
    masks = np.zeros((len(indices), h, w, 1), bool)
    for k, index in enumerate(indices):
        top, left = np.random.default_rng([TASK_SEED, int(index)]).integers(
            margin, h - side - margin + 1, size=2)
        masks[k, top:top + side, left:left + side] = True
    return masks


def punch_holes(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return np.where(masks, np.uint8(HOLE_FILL), images)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``[..., 3]`` values (any range), ``[...]``."""
    return np.asarray(rgb, np.float32) @ LUMA


def colour_digits(digits: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Grey digits uint8 ``[N, H, W, 1]`` → colour digits uint8 ``[N, H, W, 3]``, each with its
    own texture and stroke colour from a generator seeded by ``(TASK_SEED + 1, index)``.

    Texture: two dark colours mixed by a sinusoidal grating ``0.5 + 0.5 sin(2 pi (fx x + fy y)
    + phase)`` (1-4 cycles per image, any direction) plus smooth colour noise (a 4x4 grid of
    random colours, bilinearly upsampled), scaled so its luma stays <= ``MAX_BACKGROUND_LUMA``.
    Strokes: one colour of random hue and saturation, lightened towards white until its luma is
    >= ``MIN_STROKE_LUMA``; composited with the digit's intensity as alpha.
    """
    from scipy.ndimage import zoom

    n, h, w, _ = digits.shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32),
                         indexing="ij")
    out = np.empty((n, h, w, 3), np.uint8)
    for k, index in enumerate(indices):
        rng = np.random.default_rng([TASK_SEED + 1, int(index)])
        c1, c2 = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
        fx, fy = rng.uniform(-4, 4, 2)
        phase = rng.uniform(0, 2 * np.pi)
        grating = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None]
        noise = zoom(rng.uniform(0, 1, (4, 4, 3)).astype(np.float32), (h / 4, w / 4, 1), order=1)
        texture = np.clip(c1 * (1 - grating) + c2 * grating + 0.5 * (noise - 0.5), 0.0, 1.0)
        top = float(luma(texture).max())
        texture *= min(1.0, MAX_BACKGROUND_LUMA / max(top, 1e-6))
        stroke = _stroke_colour(rng)
        alpha = digits[k].astype(np.float32) / 255.0
        out[k] = np.clip(np.round((texture * (1 - alpha) + stroke * alpha) * 255), 0, 255).astype(np.uint8)
    return out


def _stroke_colour(rng) -> np.ndarray:
    import colorsys

    rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.5, 1.0), 1.0), np.float32)
    y = float(luma(rgb))
    if y < MIN_STROKE_LUMA:  # mix with white: luma rises linearly to exactly the minimum
        t = (MIN_STROKE_LUMA - y) / (1.0 - y)
        rgb = rgb + (1.0 - rgb) * t
    return rgb


def to_greyscale(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` → ``[N, H, W, 1]`` by BT.601 luma (``[N, H, W, 1]`` passes through);
    any value range (luma weights sum to 1)."""
    images = np.asarray(images, np.float32)
    return images if images.shape[-1] == 1 else luma(images)[..., None]


# ----------------------------------------------------------------------------------------------
# The tf.data side
# ----------------------------------------------------------------------------------------------
def open_translation(data_cfg, image_shape) -> tuple[dict, TranslationInfo]:
    """``({"train": TranslationSplit, "test": TranslationSplit}, info)`` for the task."""
    from gen_keras.data import mnist10k

    name = data_cfg.dataset
    input_shape, target_shape = task_shapes(name, image_shape)
    splits = {s: load_translation_split(name, s, target_shape, data_dir=data_cfg.data_dir) for s in ("train", "test")}
    _, task, argument = split_task_name(name)
    if task == "scenes":
        from gen_keras.data.scenes import scenes_folder

        source_uri = scenes_folder(argument, data_cfg.data_dir)
    else:
        source_uri = str(mnist10k._file(mnist10k.FILES["images"][0]).parent)
    info = TranslationInfo(name, name.startswith("pairs:"), input_shape, target_shape,
                           len(splits["train"].inputs), len(splits["test"].inputs), source_uri=source_uri,
                           num_classes=4 if task == "scenes" else 10)
    return splits, info


def make_translation_pipeline(split: TranslationSplit, *, paired: bool, value_range, batch_size: int,
                              training: bool, seed: int, shuffle_buffer: int = 10_000, limit: int = 0,
                              prefetch: bool = True):
    """Batches of ``(input, target)`` (paired) or ``(a, b)`` (unpaired) float32 images in
    ``value_range``; ``batch_size`` is the GLOBAL batch. Paired examples are shuffled together;
    the two unpaired streams are shuffled independently (other seeds), so no pairing persists
    across epochs. Training batches drop the remainder (every replica gets the same share)."""
    import tensorflow as tf

    from gen_keras.data.pipeline import batch_and_finish, to_model_range

    def stream(images, stream_seed):
        ds = tf.data.Dataset.from_tensor_slices(images[:limit] if limit else images)
        ds = ds.map(lambda x: to_model_range(x, value_range), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True).cache()
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=stream_seed, reshuffle_each_iteration=True)
        return ds

    if paired:
        n = min(limit, len(split.inputs)) if limit else len(split.inputs)
        ds = tf.data.Dataset.from_tensor_slices((split.inputs[:n], split.targets[:n]))
        ds = ds.map(lambda x, y: (to_model_range(x, value_range), to_model_range(y, value_range)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        ds = tf.data.Dataset.zip((stream(split.inputs, seed), stream(split.targets, seed + 1)))
    return batch_and_finish(ds, batch_size, training, prefetch)
