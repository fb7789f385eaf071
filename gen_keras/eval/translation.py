"""Translation quality: PSNR and SSIM, upsampling baselines, and the metric family of each task
(:func:`translation_metrics`, which :func:`gen_keras.eval.evaluate_model` calls for translation
models at the end of training).

Every image is compared in [0, 1] (the model's [-1, 1] mapped linearly). The digit evaluator is
the project's own classifier (:mod:`gen_keras.eval.evaluator`), trained on the mnist10k train
split at the image's side, grey; a 3-channel image reaches it through its BT.601 luma (exact
for the grey domain, whose channels are equal).

The colour domain of ``unpaired:mnistm`` has its own evaluator: the recipe (wider, longer:
``COLOUR_RECIPE``) trained on the train digits in colour, tested on the test digits in colour.
It judges the A → B translations (class preservation, FID in B). The greyscale route — the
digit evaluator on the luma of colour digits — was measured first and reads only ~44% of REAL
colour test digits (the textures confuse a classifier that has only seen black backgrounds),
so it cannot tell a preserved class from a lost one; it is still reported, with that ceiling
beside it (``class_preservation_a2b_greyscale``, ``real_b_greyscale_evaluator_accuracy``).

* ``pairs:sr4``: ``psnr``, ``ssim``, ``evaluator_accuracy`` (against the digits' labels) and
  ``fid_N`` (against the original test images) of the model's outputs, and the same four for
  bicubic and nearest-neighbour upsampling of the same inputs (``bicubic_*``, ``nearest_*``);
  ``target_evaluator_accuracy``: the originals' (the ceiling).
* ``pairs:inpaint``: ``l1_in_mask`` (mean |output - target| over the hole's pixels, [0, 1]
  units), ``evaluator_accuracy``, ``psnr``, ``ssim``, ``fid_N``, with the masked input itself
  as the baseline (``masked_input_*``) and ``target_evaluator_accuracy``.
* ``unpaired:mnistm``: ``class_preservation_a2b`` (the colour evaluator's accuracy on G(a)
  against the SOURCE labels of a) and ``class_preservation_b2a`` (the digit evaluator's on F(b)
  against the labels of b), ``cycle_l1_a`` / ``_b`` (mean |F(G(a)) - a|, |G(F(b)) - b| in [0, 1]
  units), ``fid_b_N`` (G(a) against real B, colour evaluator features) and ``fid_a_N`` (F(b)
  against real A, digit evaluator features); the ceilings ``real_a_evaluator_accuracy`` and
  ``colour_evaluator_test_accuracy`` (each evaluator on real images of its domain), and the
  greyscale route described above.
* ``pairs:scenes``: the FCN score (Isola et al. 2017, sec. 4.1; :mod:`gen_keras.eval.segmenter`)
  — ``fcn_pixel_accuracy``, ``fcn_class_accuracy``, ``fcn_mean_iou`` and per class
  ``fcn_iou_<class>`` (background, floor, wall, object) of the segmenter's prediction on the generated scenes against the input label maps — with its
  ceiling, the same on the real test scenes (``real_fcn_*``), and its floor for a generator that
  ignores its input, real test scenes scored against the label map of ANOTHER test scene
  (``mismatched_real_fcn_*``: the layouts of the data vary little, so this is high, ~0.89);
  ``fid_N`` against the real test scenes in the segmenter's pooled features;
  ``segmenter_test_pixel_accuracy`` as measured when it was trained.

N = the test examples used (``data.limit_test`` honoured; 2000, or 1000 per domain).
"""
from __future__ import annotations

import numpy as np

SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. 2004, sec. III-C
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
PSNR_CAP_DB = 100.0  # an exact reconstruction scores this instead of infinity in averages


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM
# ----------------------------------------------------------------------------------------------
def psnr(x, y, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image, in dB: ``10 log10(data_range^2 / MSE)`` with the
    MSE over all pixels and channels of ``[N, H, W, C]`` images; ``inf`` where they are equal."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {x.shape} vs {y.shape}")
    mse = np.mean(np.square(x - y).reshape(len(x), -1), axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalized 1-D Gaussian of the SSIM window (the 2-D window is its outer product)."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-t * t / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` correlated with ``outer(g, g)`` at every position the window fits."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.tensordot(sliding_window_view(x, len(g), axis=1), g, axes=([-1], [0]))
    return np.tensordot(sliding_window_view(x, len(g), axis=2), g, axes=([-1], [0]))


def ssim(x, y, data_range: float = 1.0, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Mean structural similarity per image (Wang et al. 2004, "Image Quality Assessment: From
    Error Visibility to Structural Similarity", eq. 13 with the 11x11 Gaussian window of
    sigma 1.5 and K1 = 0.01, K2 = 0.03 of sec. III-C):

        SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

    with C1 = (K1 L)^2, C2 = (K2 L)^2, L = ``data_range``, the local statistics weighted by the
    window at every position where it fits inside the image (no padding), averaged over
    positions and channels. 1 for identical images."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim: needs two [N, H, W, C] arrays of one shape, got {x.shape} and {y.shape}")
    if min(x.shape[1:3]) < window:
        raise ValueError(f"ssim: images of {x.shape[1]}x{x.shape[2]} are smaller than the {window}x{window} window")
    g = gaussian_window(window, sigma)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x ** 2
    var_y = _filter_valid(y * y, g) - mu_y ** 2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.reshape(len(x), -1).mean(axis=1)


def upsample(images, size, method: str) -> np.ndarray:
    """``[N, h, w, C]`` images up to ``size`` by ``"nearest"`` (pixel repetition: the integer
    factor) or ``"bicubic"`` (Keys' cubic convolution, a = -0.5, as ``tf.image.resize``),
    clipped to the inputs' range."""
    images = np.asarray(images, np.float32)
    if method == "nearest":
        fy, fx = size[0] // images.shape[1], size[1] // images.shape[2]
        return np.repeat(np.repeat(images, fy, axis=1), fx, axis=2)
    if method != "bicubic":
        raise ValueError(f"unknown upsampling {method!r}")
    import tensorflow as tf

    out = tf.image.resize(images, size, method="bicubic").numpy()
    return np.clip(out, images.min(), images.max())


def masked_l1(x, y, mask) -> float:
    """Mean |x - y| over the pixels (and channels) where ``mask`` is True, over all images."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mask = np.broadcast_to(np.asarray(mask, bool), x.shape)
    return float(np.abs(x - y)[mask].mean())


# ----------------------------------------------------------------------------------------------
# Evaluators
# ----------------------------------------------------------------------------------------------
def digit_evaluator(run_config, image_shape):
    """The project's digit evaluator (mnist10k train split) at ``image_shape``'s side, grey.

    Loaded (or trained, on first use) outside any distribution strategy: when the caller is
    inside a strategy's scope (a model compiled for training), in a thread of its own, since
    strategy scopes are per thread — the cached evaluator is then the same whoever asks first."""
    import tensorflow as tf

    from gen_keras.config import DataConfig, ModelConfig, RunConfig
    from gen_keras.eval.evaluator import get_evaluator

    h, w = int(image_shape[0]), int(image_shape[1])
    digits = RunConfig(model=ModelConfig(image_shape=(h, w, 1)),
                       data=DataConfig(dataset="mnist10k", data_dir=run_config.data.data_dir))
    if not tf.distribute.has_strategy():
        return get_evaluator(digits)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(get_evaluator, digits).result()


def hand_in_pretrained(model, run_config) -> None:
    """Give ``model`` the trained networks it declares (``model.pretrained_parts()``: SRGAN's
    content network is the digit evaluator): training calls this after ``compile_for_training``
    and before ``fit``. A model that declares none is left as it is."""
    parts = getattr(model, "pretrained_parts", dict)()
    for part, need in parts.items():
        if need.get("network") != "digit_evaluator":
            raise ValueError(f"{type(model).__name__} asks for a pretrained {need.get('network')!r} "
                             f"network for {part!r}; only 'digit_evaluator' is provided")
        model.load_pretrained(part, digit_evaluator(run_config, need["image_shape"]).classifier)


# The colour evaluator's recipe: twice the digit evaluator's width and epochs. MNIST-M-like
# digits are harder to read than grey ones: with the digit recipe it reached 96.5% on the colour
# test digits, with this one 98.3% (8,000 colour train digits), about the digit evaluator's 98.5%.
COLOUR_RECIPE = {"epochs": 12, "filters": (32, 64)}


def colour_evaluator(image_shape):
    """The evaluator trained on colour digits: every train digit in the colour it has as a domain
    B image (``colour_split``: the translation model saw only half of them, in domain B; the
    judge may see all), tested on every test digit in colour."""
    from gen_keras.data.translation import colour_split
    from gen_keras.eval.evaluator import Recipe, evaluator_for_arrays

    def unit(split):
        images, labels = colour_split(split, tuple(image_shape))
        return images.astype(np.float32) / 255.0, labels

    x_train, y_train = unit("train")
    return evaluator_for_arrays("mnistm-colour-digits", image_shape, x_train, y_train, lambda: unit("test"),
                                recipe=Recipe(**COLOUR_RECIPE))


def to_unit(images, value_range) -> np.ndarray:
    from gen_keras.eval.evaluator import to_unit_range

    return to_unit_range(images, value_range)


def grey(images) -> np.ndarray:
    from gen_keras.data.translation import to_greyscale

    return to_greyscale(images)


# ----------------------------------------------------------------------------------------------
# The metric families
# ----------------------------------------------------------------------------------------------
def is_translator(model) -> bool:
    """Whether ``model`` translates images (it declares its ``translators``)."""
    return callable(getattr(model, "translators", None))


def translation_metrics(model, run_config, *, seed: int = 0, evaluator=None) -> dict:
    """The metric family of ``run_config.data.dataset``'s task (see the module docstring)."""
    from gen_keras.data.translation import check_translation_name, load_translation_split, split_task_name

    name = run_config.data.dataset
    check_translation_name(name)
    split = load_translation_split(name, "test", tuple(model.image_shape), limit=run_config.data.limit_test,
                                   data_dir=run_config.data.data_dir)
    task = split_task_name(name)[1]
    if task == "scenes":
        return scene_metrics(model, split, scene_segmenter(run_config))
    evaluator = evaluator or digit_evaluator(run_config, model.image_shape)
    if task == "mnistm":
        out = cycle_metrics(model, split, evaluator, colour_evaluator(tuple(model.image_shape)))
    elif task == "sr4":
        out = super_resolution_metrics(model, split, evaluator)
    else:
        out = inpainting_metrics(model, split, evaluator)
    out["evaluator_test_accuracy"] = evaluator.test_accuracy
    return out


def _model_unit(model, images_uint8, operation=None):
    """Model outputs in [0, 1] for uint8 inputs."""
    lo, hi = model.value_range
    x = images_uint8.astype(np.float32) / 255.0 * (hi - lo) + lo
    return to_unit(model.translate(x, operation), model.value_range)


def _accuracy(evaluator, images01, labels) -> float:
    """The evaluator's accuracy; a 3-channel image reaches a grey evaluator through its luma."""
    channels = int(evaluator.classifier.input.shape[-1])
    x = grey(images01) if channels == 1 else np.asarray(images01, np.float32)
    return float(np.mean(evaluator.predict(x, (0.0, 1.0)) == np.asarray(labels)))


def _fid(evaluator, real01, fake01) -> float:
    from gen_keras.eval.frechet import frechet_distance_of_features

    return frechet_distance_of_features(evaluator.features(real01, (0.0, 1.0)),
                                        evaluator.features(fake01, (0.0, 1.0)))


def _quality(prefix, images01, targets01, labels, evaluator, n) -> dict:
    p = f"{prefix}_" if prefix else ""
    return {f"{p}psnr": float(np.mean(np.minimum(psnr(images01, targets01), PSNR_CAP_DB))),
            f"{p}ssim": float(np.mean(ssim(images01, targets01))),
            f"{p}evaluator_accuracy": _accuracy(evaluator, images01, labels),
            f"{p}fid_{n}": _fid(evaluator, grey(targets01), grey(images01))}


def super_resolution_metrics(model, split, evaluator) -> dict:
    targets = split.targets.astype(np.float32) / 255.0
    inputs = split.inputs.astype(np.float32) / 255.0
    n, size = len(targets), targets.shape[1:3]
    out = _quality("", _model_unit(model, split.inputs), targets, split.target_labels, evaluator, n)
    for method in ("bicubic", "nearest"):
        out.update(_quality(method, upsample(inputs, size, method), targets, split.target_labels, evaluator, n))
    out["target_evaluator_accuracy"] = _accuracy(evaluator, targets, split.target_labels)
    return out


def inpainting_metrics(model, split, evaluator) -> dict:
    targets = split.targets.astype(np.float32) / 255.0
    inputs = split.inputs.astype(np.float32) / 255.0
    n = len(targets)
    outputs = _model_unit(model, split.inputs)
    out = _quality("", outputs, targets, split.target_labels, evaluator, n)
    out["l1_in_mask"] = masked_l1(outputs, targets, split.masks)
    out.update(_quality("masked_input", inputs, targets, split.target_labels, evaluator, n))
    out["masked_input_l1_in_mask"] = masked_l1(inputs, targets, split.masks)
    out["target_evaluator_accuracy"] = _accuracy(evaluator, targets, split.target_labels)
    return out


def cycle_metrics(model, split, evaluator, colour) -> dict:
    a = split.inputs.astype(np.float32) / 255.0
    b = split.targets.astype(np.float32) / 255.0
    lo, hi = model.value_range
    ab = _model_unit(model, split.inputs, "translate_a2b")
    ba = _model_unit(model, split.targets, "translate_b2a")
    aba = to_unit(model.translate(ab * (hi - lo) + lo, "translate_b2a"), model.value_range)
    bab = to_unit(model.translate(ba * (hi - lo) + lo, "translate_a2b"), model.value_range)
    n_a, n_b = len(a), len(b)
    return {
        "class_preservation_a2b": _accuracy(colour, ab, split.input_labels),
        "class_preservation_b2a": _accuracy(evaluator, ba, split.target_labels),
        "class_preservation_a2b_greyscale": _accuracy(evaluator, ab, split.input_labels),
        "cycle_l1_a": float(np.mean(np.abs(aba - a))),
        "cycle_l1_b": float(np.mean(np.abs(bab - b))),
        f"fid_b_{n_a}": _fid(colour, b, ab),
        f"fid_a_{n_b}": _fid(evaluator, grey(a), grey(ba)),
        "real_a_evaluator_accuracy": _accuracy(evaluator, a, split.input_labels),
        "real_b_colour_evaluator_accuracy": _accuracy(colour, b, split.target_labels),
        "real_b_greyscale_evaluator_accuracy": _accuracy(evaluator, b, split.target_labels),
        "colour_evaluator_test_accuracy": colour.test_accuracy,
    }


# ----------------------------------------------------------------------------------------------
# Label map -> scene: the FCN score
# ----------------------------------------------------------------------------------------------
def scene_segmenter(run_config):
    """The segmenter of the task's real train scenes (cached; trained on first use), loaded
    outside any distribution strategy (see :func:`digit_evaluator`)."""
    import tensorflow as tf

    from gen_keras.data.translation import load_translation_split
    from gen_keras.eval.segmenter import segmenter_for_arrays

    name, data_dir = run_config.data.dataset, run_config.data.data_dir

    def scenes(split):
        s = load_translation_split(name, split, (64, 64, 3), data_dir=data_dir)
        return s.targets, s.label_maps

    def load():
        return segmenter_for_arrays(name, *scenes("train"), lambda: scenes("test"), num_classes=4)

    if not tf.distribute.has_strategy():
        return load()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(load).result()


def scene_metrics(model, split, segmenter) -> dict:
    from gen_keras.data.render_shapes3d import LABEL_MAP_CLASSES
    from gen_keras.eval.frechet import frechet_distance_of_features
    from gen_keras.eval.segmenter import confusion_matrix, segmentation_scores

    real = split.targets.astype(np.float32) / 255.0
    fake_features, fake_maps = segmenter.features_and_label_maps(_model_unit(model, split.inputs), (0.0, 1.0))
    real_features, real_maps = segmenter.features_and_label_maps(real, (0.0, 1.0))
    # Real scenes scored against the label map of the next test scene: what ignoring the input
    # and drawing any realistic scene scores.
    mismatched = np.roll(split.label_maps, 1, axis=0)
    out = {}
    for prefix, truth, predicted in (("fcn", split.label_maps, fake_maps), ("real_fcn", split.label_maps, real_maps),
                                     ("mismatched_real_fcn", mismatched, real_maps)):
        scores = segmentation_scores(confusion_matrix(truth, predicted, segmenter.num_classes), LABEL_MAP_CLASSES)
        out.update({f"{prefix}_{k}": v for k, v in scores.items()})
    out[f"fid_{len(real)}"] = frechet_distance_of_features(real_features, fake_features)
    out["segmenter_test_pixel_accuracy"] = segmenter.test_pixel_accuracy
    return out
