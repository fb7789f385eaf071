"""Progressive growing (Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation", sec. 2 and appendix A) for the convolutional GANs.

Training starts at a low resolution and doubles it on a schedule; each new resolution's layers
are faded in: while a resolution ``r`` is being added, G's output is
``(1 - alpha) * upsample(rgb_{r/2}) + alpha * rgb_r`` and D's input path
``(1 - alpha) * fromRGB(downsample(x)) + alpha * block_r(fromRGB_r(x))``, alpha going 0 → 1.

As in the paper's own implementation, the networks are built ONCE at full size and the growth is
a continuous "level" in [0, n] (n = number of doublings above the base resolution): level k means
resolution ``base * 2**k``; level ``k - 1 + alpha`` means fading in resolution k. G's output is
always a full-size image (the current level's picture upsampled by nearest neighbour), so one
compiled ``train_step``, the preview grids, the checkpoints and the export serve every phase.
The level lives in a non-trainable variable of each network (so it is checkpointed, saved and
exported with the weights) and is set at the start of every training step from the images seen
(``optimizer iterations x global batch size``): a run resumed from a checkpoint is at the same
level and alpha as when it stopped.

The real images D sees go through the same pyramid (:func:`images_at_level`): average-pooled to
the current resolution and, during a fade, blended with the next lower one, exactly as G's
output is — "we similarly interpolate between two resolutions of the real images" (sec. 2).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers


def growth_level(images_seen, start_level: int, levels: int, fade_images: int, stable_images: int):
    """The level (in [start_level, levels]) after ``images_seen`` training images: the first
    resolution trains for ``stable_images``; then each further resolution fades in over
    ``fade_images`` (the level rising linearly by 1) and trains stable for ``stable_images``.

    ``images_seen`` may be a Python/numpy number or a tensor; so is the result.
    """
    level = start_level
    for phase in range(levels - start_level):
        start = stable_images + phase * (fade_images + stable_images)
        level = level + _clip01((images_seen - start) / fade_images)
    return level


def _clip01(value):
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.clip_by_value(value, 0.0, 1.0)
    return np.clip(value, 0.0, 1.0)


def blend(low, high, weight):
    """``(1 - w) * low + w * high``: the one fade-in formula of G's output and of the real
    images. Written as the convex sum so that w = 0 or 1 gives exactly one path, even in
    bfloat16."""
    return (1.0 - weight) * low + weight * high


def level_weights(level, levels: int):
    """Fade-in weight of every resolution k = 0..levels at ``level``: ``clip(level - k + 1, 0, 1)``
    — 1 for the resolutions already grown, alpha for the one fading in, 0 above (k = 0 is
    always 1)."""
    return [_clip01(level - k + 1.0) for k in range(levels + 1)]


def resolution_at(level, base: int) -> int:
    """The resolution whose layers are (partly) in use at ``level``: ``base * 2**ceil(level)``."""
    return int(base * 2 ** int(np.ceil(float(level) - 1e-6)))


@keras.saving.register_keras_serializable(package="gen_keras")
class GrowthLevel(layers.Layer):
    """Holds the growth level (a non-trainable scalar) and turns it into the per-resolution
    fade-in weights, shape ``[batch, levels + 1]`` (tiled over the batch of its input so the
    functional graph stays batch-shaped)."""

    def __init__(self, levels: int, start: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.levels, self.start = levels, start

    def build(self, input_shape):
        # Starts at the schedule's first level (what an untrained network samples and exports);
        # set by the model's train step on the first replica and mirrored to the others.
        self.level = self.add_weight(shape=(), initializer=keras.initializers.Constant(float(self.start)),
                                     trainable=False, name="level", aggregation="only_first_replica")

    def call(self, inputs):
        weights = tf.stack(level_weights(tf.convert_to_tensor(self.level), self.levels))
        batch = tf.shape(inputs)[0]
        return tf.tile(weights[None, :], [batch, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.levels + 1)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "start": self.start}


@keras.saving.register_keras_serializable(package="gen_keras")
class FadeIn(layers.Layer):
    """``[low, high, weights] -> (1 - w) * low + w * high`` with ``w = weights[:, k]``:
    resolution k's path faded in over the path that skips it (both at the same size), by
    :func:`blend`."""

    def __init__(self, k: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.k = k

    def call(self, inputs):
        low, high, weights = inputs
        w = tf.reshape(tf.cast(weights[:, self.k], low.dtype), [-1, 1, 1, 1])
        return blend(low, tf.cast(high, low.dtype), w)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def compose_pyramid(pictures, weights):
    """G's output from one picture per resolution (``pictures[k]`` at ``base * 2**k``, k =
    0..n): starting from the lowest, each level's picture is faded in over the upsampled
    picture so far; the result is full size. Keras tensors (inside a functional model)."""
    image = pictures[0]
    for k, picture in enumerate(pictures[1:], start=1):
        up = layers.UpSampling2D(2, interpolation="nearest", dtype="float32", name=f"grow_up{k}")(image)
        image = FadeIn(k, name=f"fade_in{k}")([up, picture, weights])
    return image


def images_at_level(images, level, levels: int):
    """Real (full-size) images as D should see them at ``level``: the same pyramid G's output
    goes through — average-pooled to each resolution, composed by the fade-in weights, so a
    grown level shows its resolution upsampled by nearest neighbour and a fading one the blend of
    two. Plain tensors; ``level`` a scalar."""
    images = tf.convert_to_tensor(images)
    pyramid = [images]
    for _ in range(levels):
        pyramid.insert(0, tf.nn.avg_pool2d(pyramid[0], 2, 2, "VALID"))
    weights = level_weights(tf.cast(level, images.dtype), levels)
    out = pyramid[0]
    for k in range(1, levels + 1):
        up = tf.repeat(tf.repeat(out, 2, axis=1), 2, axis=2)
        out = blend(up, pyramid[k], weights[k])
    return out


def set_level(networks, level) -> None:
    """Write ``level`` into every :class:`GrowthLevel` of ``networks``."""
    for network in networks:
        for layer in network.layers:
            if isinstance(layer, GrowthLevel):
                layer.level.assign(tf.cast(level, layer.level.dtype))


def current_level_tensor(network):
    """The growth level variable's value (a scalar tensor) of a progressive network."""
    for layer in network.layers:
        if isinstance(layer, GrowthLevel):
            return tf.convert_to_tensor(layer.level)
    raise ValueError(f"{network.name} is not a progressive network")


def current_level(network) -> float:
    return float(np.asarray(current_level_tensor(network)))
