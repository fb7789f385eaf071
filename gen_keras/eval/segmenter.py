"""The "FCN score" of Isola et al. 2017 (sec. 4.1, "Evaluation metrics", after Long et al.
2015): how well a semantic segmenter trained on REAL scenes recovers, from a generated scene,
the label map it was generated from. "If the generated images are realistic, classifiers trained on real images will
be able to classify the synthesized image correctly as well."

The paper uses FCN-8s trained on Cityscapes; here a small fully-convolutional network trained on
the real train scenes of ``pairs:scenes`` (:func:`build_segmenter`): two 3x3 convs (16 filters,
ReLU) at full resolution, a 1x1 conv to 32 ``features`` and a 1x1 classifier to the 4 classes.
Its receptive field is 5x5 pixels ON PURPOSE. The scenes' layouts vary little (the horizon and
the wall's top edge move a few pixels, the object stands in the middle), so a segmenter that
sees most of the scene learns WHERE the classes usually are: a first design with stride-2 and
dilated convs (a 55-px field) scored a constant grey image at 88% pixel accuracy against the
real 95%. With a 5-px field it must read each surface's own appearance (the renderer gives the
sky a fixed colour and floor, wall and object different saturations and shading, whatever their
hues), and a constant grey image scores ~0.2-0.45 (one class everywhere). It is trained once per
train split and cached like the evaluators (:func:`gen_keras.eval.evaluator.cached_network`).

Scores (:func:`segmentation_scores`, from the confusion matrix over all pixels, as the paper's
Table 2): per-pixel accuracy, mean per-class accuracy and mean class IoU. The segmenter's own
score on the real test scenes is the ceiling a perfect generator reaches.

FID in the same network: the ``features`` map (64x64x32) averaged over positions, a 32-d vector
per scene (:meth:`Segmenter.features`): a feature space trained on real scenes, as the digit
evaluator's is for digits. Being local and pooled, it describes the mix of surface appearances in
a scene (how much looks like real floor, wall, object, sky, and how sharply), not the layout.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import numpy as np

from gen_keras.eval.evaluator import cache_root, cached_network, data_fingerprint, features_and_argmax, to_unit_range

RECIPE = "fcn-3x3x2-1x1-v1"  # bump when the network or its training changes
FEATURE_LAYER = "features"


@dataclasses.dataclass
class SegmenterRecipe:
    epochs: int = 3
    conv_layers: int = 2
    filters: int = 16
    feature_dim: int = 32
    # Small batches, a high rate: each scene is 4,096 labelled pixels, so steps matter more than
    # scenes per step. Measured on 901 scenes, 3 epochs: batch 32 / 3e-3 never predicted
    # "object" (85% test pixel accuracy); 16 / 1e-2 reached 95.7%, 8 / 1e-2 97.9%.
    batch_size: int = 8
    learning_rate: float = 1e-2
    seed: int = 0


def build_segmenter(image_shape, num_classes: int, recipe: SegmenterRecipe):
    """The FCN (module docstring): ``[N, H, W, 3]`` in [0, 1] → logits ``[N, H, W, classes]``."""
    import keras
    from keras import layers

    x_in = keras.Input(tuple(image_shape), name="x", dtype="float32")
    h = x_in
    for i in range(recipe.conv_layers):
        h = layers.Conv2D(recipe.filters, 3, padding="same", activation="relu", dtype="float32",
                          name=f"conv{i}")(h)
    h = layers.Conv2D(recipe.feature_dim, 1, activation="relu", dtype="float32", name=FEATURE_LAYER)(h)
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="classifier")(h)
    return keras.Model(x_in, logits, name="segmenter")


def confusion_matrix(true_ids, predicted_ids, num_classes: int) -> np.ndarray:
    """``int64 [classes, classes]``: row = true class, column = predicted, over all pixels."""
    t = np.asarray(true_ids, np.int64).ravel()
    p = np.asarray(predicted_ids, np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray, class_names=()) -> dict:
    """Per-pixel accuracy, mean class accuracy and mean class IoU of a confusion matrix (Long et
    al. 2015, sec. 5: pixel accuracy sum_i n_ii / sum_i t_i, mean accuracy mean_i n_ii / t_i,
    mean IU mean_i n_ii / (t_i + sum_j n_ji - n_ii)), and ``iou_<name>`` per class when
    ``class_names`` are given. Class accuracy averages over the classes present in the truth,
    IoU over those present in the truth or the prediction (an absent class's IoU is 0/0: left
    out of the mean, reported as 1)."""
    c = np.asarray(confusion, np.float64)
    hits, truth, predicted = np.diag(c), c.sum(axis=1), c.sum(axis=0)
    union = truth + predicted - hits
    iou = np.divide(hits, union, out=np.ones_like(hits), where=union > 0)
    recall = np.divide(hits, truth, out=np.zeros_like(hits), where=truth > 0)
    out = {"pixel_accuracy": float(hits.sum() / max(c.sum(), 1.0)),
           "class_accuracy": float(recall[truth > 0].mean()) if (truth > 0).any() else 0.0,
           "mean_iou": float(iou[union > 0].mean()) if (union > 0).any() else 0.0}
    out.update({f"iou_{name}": float(v) for name, v in zip(class_names, iou)})
    return out


class Segmenter:
    """A trained segmenter: ``predict`` (class ids per pixel), ``features`` (pooled), ``score``."""

    def __init__(self, network, info: dict):
        import keras
        import tensorflow as tf

        self.network = network
        self.info = info
        self.num_classes = int(info["num_classes"])
        pooled = keras.layers.GlobalAveragePooling2D(dtype="float32")(network.get_layer(FEATURE_LAYER).output)
        both = keras.Model(network.input, [pooled, network.output])
        self._both = tf.function(lambda x: both(x, training=False), reduce_retracing=True)

    @property
    def test_pixel_accuracy(self) -> float:
        return float(self.info["test_accuracy"])

    def features_and_label_maps(self, images, value_range, batch_size: int = 250):
        """(pooled features ``[N, D]`` float64, class ids ``uint8 [N, H, W, 1]``)."""
        feats, maps = features_and_argmax(self._both, to_unit_range(images, value_range), batch_size)
        return feats, maps.astype(np.uint8)[..., None]

    def features(self, images, value_range) -> np.ndarray:
        return self.features_and_label_maps(images, value_range)[0]

    def predict(self, images, value_range) -> np.ndarray:
        return self.features_and_label_maps(images, value_range)[1]

    def score(self, images, value_range, label_maps) -> dict:
        """The FCN score of ``images`` against the label maps they should show."""
        return segmentation_scores(confusion_matrix(label_maps, self.predict(images, value_range),
                                                    self.num_classes))


def segmenter_for_arrays(name: str, x_train, y_train, test_split, num_classes: int, *,
                         recipe: SegmenterRecipe | None = None, retrain: bool = False) -> Segmenter:
    """The cached segmenter of real scenes ``x_train`` (uint8 ``[N, H, W, 3]``, kept as bytes:
    8,000 scenes are 98 MB, 393 MB as floats) with label maps ``y_train`` (``[N, H, W, 1]``
    class ids), trained on first use; ``test_split()`` gives the held-out ``(scenes, label
    maps)`` its test pixel accuracy is measured on."""
    if np.asarray(x_train).dtype != np.uint8:
        raise ValueError(f"segmenter_for_arrays takes uint8 scenes, got {np.asarray(x_train).dtype}")
    recipe = recipe or SegmenterRecipe()
    shape = tuple(int(d) for d in x_train.shape[1:])
    key = hashlib.sha256(json.dumps([RECIPE, dataclasses.asdict(recipe), list(shape), num_classes,
                                     data_fingerprint(x_train, y_train)]).encode()).hexdigest()[:16]

    def fit():
        x_test, y_test = test_split()
        network, info = train_segmenter(x_train, y_train, x_test, y_test, num_classes, recipe)
        info.update(dataset=name, image_shape=list(shape), recipe=RECIPE)
        return network, info

    folder = cache_root() / f"segmenter-{name.replace(':', '_')}-{'x'.join(map(str, shape))}-{key}"
    return Segmenter(*cached_network(folder, fit, retrain=retrain))


def train_segmenter(x_train, y_train, x_test, y_test, num_classes: int, recipe: SegmenterRecipe):
    """Per-pixel cross-entropy with Adam (cosine decay), random horizontal flips (a mirrored
    scene is a scene: the camera angles are symmetric), on uint8 scenes scaled to [0, 1];
    returns ``(network, info)``."""
    import keras
    import tensorflow as tf

    started = time.time()
    keras.utils.set_random_seed(recipe.seed)
    network = build_segmenter(x_train.shape[1:], num_classes, recipe)
    steps = recipe.epochs * int(np.ceil(len(x_train) / recipe.batch_size))
    network.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
                        recipe.learning_rate, steps, alpha=0.05)),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def flip(x, y):
        x = tf.cast(x, tf.float32) / 255.0
        mirror = tf.random.uniform([]) < 0.5
        return tf.where(mirror, x[:, ::-1], x), tf.where(mirror, y[:, ::-1], y)

    ds = (tf.data.Dataset.from_tensor_slices((x_train, y_train.astype(np.int32)))
          .shuffle(len(x_train), seed=recipe.seed)
          .map(flip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(recipe.batch_size).prefetch(tf.data.AUTOTUNE))
    network.fit(ds, epochs=recipe.epochs, shuffle=False, verbose=0)  # ds is shuffled
    logits = network.predict(x_test.astype(np.float32) / 255.0, batch_size=250, verbose=0)
    scores = segmentation_scores(confusion_matrix(y_test, np.argmax(logits, -1), num_classes))
    return network, {"test_accuracy": scores["pixel_accuracy"], "test_mean_iou": scores["mean_iou"],
                     "num_classes": int(num_classes), "train_images": len(x_train),
                     "test_images": len(x_test), "epochs": recipe.epochs,
                     "train_seconds": round(time.time() - started, 1)}
