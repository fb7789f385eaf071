"""The evaluator network: a small CNN classifier the project trains itself on a data set's train
split, whose penultimate activations are the feature space of FID, KID and precision/recall and
whose class predictions give mode coverage and conditional accuracy.

Inception weights cannot be downloaded here, and MNIST-like data wants a domain network anyway
(TF-GAN's MNIST metrics use a small MNIST classifier the same way). One evaluator exists per
(data set, image shape, train-split content, recipe): it is trained once, saved with its sha256
under ``$GEN_KERAS_CACHE/evaluators`` (default ``~/.cache/gen_keras/evaluators``), and every later
call loads the checked file. Its test accuracy is stored beside it and reported with the metrics.

Input range: the network is trained on images in [0, 1]; :meth:`Evaluator.features` maps any
model's ``value_range`` (e.g. [-1, 1] for tanh generators) to [0, 1] first, so real and generated
images of every model kind reach it the same way.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from gen_keras.models.classifier import FEATURE_DIM, FEATURE_LAYER, FILTERS, image_classifier

log = logging.getLogger("gen_keras.eval")

# Bump when the architecture (gen_keras/models/classifier.py) or the training recipe changes: old
# cached evaluators are then ignored.
RECIPE = "cnn16-32-d128-aug2px-v1"


@dataclasses.dataclass
class Recipe:
    epochs: int = 6
    filters: tuple[int, ...] = FILTERS
    batch_size: int = 128
    learning_rate: float = 2e-3
    feature_dim: int = FEATURE_DIM
    shift_pixels: int = 2  # random translations: cheap augmentation, better test accuracy
    seed: int = 0


def cache_root() -> Path:
    from gen_keras.files import cache_dir

    return cache_dir("evaluators")


def to_unit_range(images, value_range) -> np.ndarray:
    """Images in ``value_range`` → [0, 1] (clipped: generators may overshoot a little)."""
    lo, hi = (float(v) for v in value_range)
    if hi <= lo:
        raise ValueError(f"value_range={value_range} must have lo < hi")
    x = (np.asarray(images, np.float32) - lo) / (hi - lo)
    return np.clip(x, 0.0, 1.0)


def build_classifier(image_shape, num_classes: int, recipe: Recipe):
    """The evaluator network (:func:`gen_keras.models.classifier.image_classifier`) of ``recipe``."""
    return image_classifier(image_shape, num_classes, recipe.filters, recipe.feature_dim)


class Evaluator:
    """A trained classifier: ``features`` (penultimate layer) and ``predict`` (class ids)."""

    def __init__(self, classifier, info: dict):
        import keras
        import tensorflow as tf

        self.classifier = classifier
        self.info = info
        self.num_classes = int(info["num_classes"])
        both = keras.Model(classifier.input, [classifier.get_layer(FEATURE_LAYER).output,
                                              classifier.output])
        self._both = tf.function(lambda x: both(x, training=False), reduce_retracing=True)

    @property
    def test_accuracy(self) -> float:
        return float(self.info["test_accuracy"])

    def features_and_classes(self, images, value_range, batch_size: int = 500):
        """(features ``[N, D]`` float64, predicted classes ``[N]``) of images in ``value_range``."""
        x = to_unit_range(images, value_range)
        if not len(x):
            return np.zeros((0, int(self.info["feature_dim"]))), np.zeros((0,), np.int64)
        return features_and_argmax(self._both, x, batch_size)

    def features(self, images, value_range) -> np.ndarray:
        return self.features_and_classes(images, value_range)[0]

    def predict(self, images, value_range) -> np.ndarray:
        return self.features_and_classes(images, value_range)[1]


def features_and_argmax(both, x, batch_size: int):
    """``both(batch) -> (features, logits)`` over ``x`` in batches: (features float64, the
    argmax of the logits over their last axis) — a classifier's classes, a segmenter's maps."""
    feats, picked = [], []
    for start in range(0, len(x), batch_size):
        f, logits = both(x[start:start + batch_size])
        feats.append(f.numpy().astype(np.float64))
        picked.append(np.argmax(logits.numpy(), axis=-1))
    return np.concatenate(feats), np.concatenate(picked)


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return h.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


def split_in_unit_range(run_config, split: str):
    """A whole split (ignoring ``data.limit_*``) in [0, 1], at the model's image shape."""
    from gen_keras.data import load_split_arrays

    images, labels = load_split_arrays(run_config, split)
    return to_unit_range(images, type(run_config.model).value_range), labels.astype(np.int64)


# Evaluators already loaded by this process, by (data set, data dir, image shape, recipe): a
# retraining job scores several models and need not re-read the train split for each.
_LOADED: dict[tuple, Evaluator] = {}


def get_evaluator(run_config, *, recipe: Recipe | None = None, retrain: bool = False) -> Evaluator:
    """The cached evaluator for the run's data set and image shape; trained on first use.

    Concurrent processes wait on a file lock, so the evaluator is trained once. Within one
    process the loaded evaluator is reused (a data set changed on disk meanwhile is noticed by
    the next process, whose cache key includes the train split's content).
    """
    recipe = recipe or Recipe()
    memo = (run_config.data.dataset, run_config.data.data_dir, str(cache_root()),
            tuple(run_config.model.image_shape), json.dumps(dataclasses.asdict(recipe)))
    if memo not in _LOADED or retrain:
        _LOADED[memo] = _load_or_train(run_config, recipe, retrain)
    return _LOADED[memo]


# The evaluator trains on at most this many training images: the full dsprites training split
# (663,083 images at 64x64) would be 10.9 GB of float32 read twice (a run on it was killed by
# the OOM killer at 23 GB). Every shipped set below this size is read whole, as before.
EVALUATOR_TRAIN_IMAGES = 100_000


def _load_or_train(run_config, recipe: Recipe, retrain: bool) -> Evaluator:
    from gen_keras.data import load_split_arrays

    images, labels = load_split_arrays(run_config, "train", limit=EVALUATOR_TRAIN_IMAGES)
    x_train = to_unit_range(images, type(run_config.model).value_range)
    y_train = labels.astype(np.int64)
    shape = tuple(int(d) for d in run_config.model.image_shape)
    return evaluator_for_arrays(run_config.data.dataset, shape, x_train, y_train,
                                lambda: split_in_unit_range(run_config, "test"), recipe=recipe,
                                retrain=retrain)


def evaluator_for_arrays(name: str, image_shape, x_train, y_train, test_split, *,
                         recipe: Recipe | None = None, retrain: bool = False) -> Evaluator:
    """The cached evaluator for a labelled train split given as arrays (images in [0, 1] at
    ``image_shape``), trained on first use; ``test_split()`` returns the held-out ``(images,
    labels)`` its test accuracy is measured on. ``name`` names the data in the cache folder; the
    key is the recipe, the shape and the train split's content."""
    recipe = recipe or Recipe()
    num_classes = int(y_train.max()) + 1 if len(y_train) else 0
    if num_classes < 2 or y_train.min() < 0:
        raise ValueError(f"data.dataset={name!r} has no class labels: the "
                         "sample-quality evaluator is a classifier and needs a labelled data set")
    shape = tuple(int(d) for d in image_shape)
    key = hashlib.sha256(json.dumps([RECIPE, dataclasses.asdict(recipe), list(shape),
                                     data_fingerprint(x_train, y_train)]).encode()).hexdigest()[:16]

    def fit():
        x_test, y_test = test_split()
        classifier, info = train_classifier(x_train, y_train, x_test, y_test, num_classes, recipe)
        info.update(dataset=name, image_shape=list(shape), recipe=RECIPE)
        return classifier, info

    folder = cache_root() / f"{_slug(name)}-{'x'.join(map(str, shape))}-{key}"
    return Evaluator(*cached_network(folder, fit, retrain=retrain))


def cached_network(folder: Path, fit, *, retrain: bool = False):
    """``(keras model, info dict)`` cached in ``folder`` (``evaluator.keras`` with its sha256,
    ``info.json``): loaded and checked when there, else ``fit()`` trains them and they are saved.
    Under the folder's file lock, so concurrent processes train once. The folder's name must
    hold everything the network depends on (recipe, shape, a fingerprint of the data)."""
    from gen_keras.artifacts import load_model, save_model
    from gen_keras.errors import ArtifactIntegrityError
    from gen_keras.files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    model_path, info_path = folder / "evaluator.keras", folder / "info.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if model_path.exists() and info_path.exists() and not retrain:
            try:
                return load_model(model_path), json.loads(info_path.read_text())
            except (ArtifactIntegrityError, ValueError, OSError) as exc:
                log.warning("cached network %s is unusable (%s); training a new one", folder, exc)
        network, info = fit()
        save_model(network, model_path)
        info["sha256"] = (folder / "evaluator.keras.sha256").read_text().split()[0]
        atomic_write_text(info_path, json.dumps(info, indent=2))
        log.info("trained %s for %s: test accuracy %.4f in %.0f s (cached in %s)", network.name,
                 info.get("dataset"), info["test_accuracy"], info["train_seconds"], folder)
        return network, info


def train_classifier(x_train, y_train, x_test, y_test, num_classes: int, recipe: Recipe):
    """Train the CNN on [0, 1] images with small random shifts; returns (model, info)."""
    import keras
    import tensorflow as tf

    started = time.time()
    keras.utils.set_random_seed(recipe.seed)
    model = build_classifier(x_train.shape[1:], num_classes, recipe)
    steps = recipe.epochs * int(np.ceil(len(x_train) / recipe.batch_size))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                      recipe.learning_rate, steps, alpha=0.05)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    shift = recipe.shift_pixels

    def augment(x, y):
        # A random translation by up to `shift` pixels: pad with zeros, crop back.
        h, w = int(x.shape[0]), int(x.shape[1])
        padded = tf.pad(x, [[shift, shift], [shift, shift], [0, 0]])
        return tf.image.random_crop(padded, [h, w, int(x.shape[2])]), y

    ds = (tf.data.Dataset.from_tensor_slices((x_train.astype(np.float32), y_train.astype(np.int32)))
          .shuffle(len(x_train), seed=recipe.seed)
          .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(recipe.batch_size).prefetch(tf.data.AUTOTUNE))
    model.fit(ds, epochs=recipe.epochs, shuffle=False, verbose=0)  # ds is shuffled
    logits = model.predict(x_test.astype(np.float32), batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == y_test))
    return model, {"test_accuracy": accuracy, "num_classes": int(num_classes),
                   "feature_dim": recipe.feature_dim, "train_images": int(len(x_train)),
                   "test_images": int(len(x_test)), "epochs": recipe.epochs,
                   "train_seconds": round(time.time() - started, 1)}
