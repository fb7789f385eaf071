"""The tf.data pipeline every source goes through: decode → resize/crop → scale → cache →
shuffle (seeded) → batch to the GLOBAL batch → prefetch.

The cache keeps the prepared float32 images in memory after the first epoch. A split whose
prepared images would not fit ``data.cache_budget_mb`` (:func:`cache_fits`) is streamed instead:
read from its shards every epoch (sources that have shards interleave them), shuffled through the
shuffle buffer while still uint8, then scaled, batched and prefetched — so memory stays bounded
by the buffer (``data.shuffle_buffer`` elements), whatever the set's size.
"""
from __future__ import annotations

import math

import tensorflow as tf


def cached_bytes(num_examples: int, image_shape) -> int:
    """Bytes the cache would hold: the prepared float32 images (labels are negligible)."""
    return int(num_examples) * math.prod(int(d) for d in image_shape) * 4


def cache_fits(num_examples: int, image_shape, budget_mb: float) -> bool:
    """Whether a split of ``num_examples`` images at ``image_shape`` fits the cache budget.

    mnist10k's 8,000 training digits take 25 MB; the full dsprites training split (663,083
    images at 64x64x1) would take 10.9 GB, so it streams.
    """
    return cached_bytes(num_examples, image_shape) <= budget_mb * 2**20


def to_model_range(image: tf.Tensor, value_range: tuple[float, float]) -> tf.Tensor:
    """uint8 [0, 255] → float32 in ``value_range`` ([0, 1] for Bernoulli decoders, [-1, 1] for tanh)."""
    lo, hi = value_range
    return tf.cast(image, tf.float32) / 255.0 * (hi - lo) + lo


def fit_image(image: tf.Tensor, image_shape: tuple[int, int, int]) -> tf.Tensor:
    """Bring one uint8 image to ``image_shape``: channels (gray<->RGB), central square crop, resize."""
    h, w, c = image_shape
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels != c:
        if c == 1 and channels == 3:
            image = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
        elif c == 3 and channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 4:
            image = image[..., :c] if c == 3 else tf.cast(
                tf.round(tf.image.rgb_to_grayscale(tf.cast(image[..., :3], tf.float32))), tf.uint8)
    static = image.shape
    if static[0] == h and static[1] == w:
        return image
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2,
                                          side, side)
    image = tf.image.resize(image, (h, w), method="area", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def make_pipeline(elements: tf.data.Dataset, *, image_shape, value_range, batch_size: int,
                  training: bool, seed: int, cache: bool = True, shuffle_buffer: int = 10_000,
                  limit: int = 0, prefetch: bool = True,
                  parallel_map: bool = True) -> tf.data.Dataset:
    """Batches of ``(images float32 [B, H, W, C], labels int32 [B])``.

    ``batch_size`` is the GLOBAL batch (the strategy splits it across replicas). Training
    batches drop the remainder so every replica gets the same share.
    """
    ds = elements
    if limit:
        ds = ds.take(limit)

    def prepare(ex):
        image = to_model_range(fit_image(ex["image"], image_shape), value_range)
        image = tf.ensure_shape(image, image_shape)
        return image, tf.cast(ex["label"], tf.int32)

    def shuffle(d):
        return d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    # A streamed split shuffles its uint8 elements, before they become float32: the buffer
    # is 4x smaller. (The order is the same either way: a shuffle's permutation depends on the
    # seed and the buffer, not on the elements.)
    if training and not cache:
        ds = shuffle(ds)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE if parallel_map else None,
                deterministic=True)
    if cache:
        ds = ds.cache()
        if training:
            ds = shuffle(ds)
    return batch_and_finish(ds, batch_size, training, prefetch)


def batch_and_finish(ds: tf.data.Dataset, batch_size: int, training: bool, prefetch: bool) -> tf.data.Dataset:
    """Batches (whole ones only when training), prefetch, and the options of every pipeline here."""
    ds = ds.batch(batch_size, drop_remainder=training)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # DATA sharding on purpose: every source here is in memory or a TFDS reader whose file count
    # is smaller than a multi-worker cluster may be; FILE sharding would starve workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)
