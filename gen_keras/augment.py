"""Differentiable augmentation for GAN training (Zhao et al. 2020, "Differentiable Augmentation
for Data-Efficient GAN Training", DiffAugment).

The same random transformations are applied to the real images AND to the generated ones, in
the discriminator's step and in the generator's step, so D never sees an un-augmented image
and the generator is never pushed to produce augmented-looking images: every operation is
differentiable with respect to the image, and G receives its gradient through it (Zhao et al.
sec. 3, "Augment both reals and fakes"; augmenting only reals makes G reproduce the
augmentations, their Fig. 2).

``diff_augment`` is a pure function: the randomness comes in as ``draws``, a ``[batch, k]``
tensor of Uniform[0, 1) numbers (``num_draws(policy)`` columns). The models pass their
per-replica seeded draws (``GenerativeModel.replica_uniform``), so replicas augment
differently and a step on N replicas equals a step on one device with the same global batch.

Operations (the paper's ``color,translation,cutout`` policy, their sec. 3 and code defaults):

* ``color``: brightness ``x + (u - 0.5)``; saturation ``m_c + (x - m_c) * 2u`` around the mean
  over channels (a no-op for one channel); contrast ``m + (x - m) * (u + 0.5)`` around the
  image mean — one u per example for each.
* ``translation``: an integer shift in each direction, up to ``translation_ratio`` of the image
  size, the uncovered border filled with 0 (the middle of [-1, 1], as the paper does).
* ``cutout``: a square of side ``cutout_ratio`` of the image size, centred at a random pixel
  (possibly partly outside the image), set to 0.
"""
from __future__ import annotations

import tensorflow as tf

OPERATIONS = ("color", "translation", "cutout")
_DRAWS = {"color": 3, "translation": 2, "cutout": 2}


def num_draws(policy) -> int:
    """How many uniform numbers per example ``diff_augment`` reads for ``policy``."""
    return sum(_DRAWS[op] for op in policy)


def diff_augment(images: tf.Tensor, policy, draws: tf.Tensor, *, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> tf.Tensor:
    """``images`` ``[B, H, W, C]`` transformed by each operation of ``policy`` in order.

    ``draws``: ``[B, num_draws(policy)]`` Uniform[0, 1) numbers, consumed left to right by the
    operations in ``policy`` order (color: 3, translation: 2, cutout: 2).
    """
    unknown = [op for op in policy if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; known: {list(OPERATIONS)}")
    x = tf.convert_to_tensor(images)
    draws = tf.cast(draws, x.dtype)
    col = 0
    for op in policy:
        u = draws[:, col:col + _DRAWS[op]]
        col += _DRAWS[op]
        if op == "color":
            x = color(x, u)
        elif op == "translation":
            x = translate(x, u, translation_ratio)
        else:
            x = cutout(x, u, cutout_ratio)
    return x


def color(x: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """Brightness, saturation and contrast with ``u[:, 0]``, ``u[:, 1]``, ``u[:, 2]``."""
    u = u[:, None, None, :]
    x = x + (u[..., 0:1] - 0.5)
    channel_mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = channel_mean + (x - channel_mean) * (2.0 * u[..., 1:2])
    image_mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return image_mean + (x - image_mean) * (u[..., 2:3] + 0.5)


def _shift_matrices(size: int, shift: tf.Tensor, dtype) -> tf.Tensor:
    """``[B, size, size]`` 0/1 matrices S with ``(S v)[i] = v[i - shift]`` (0 outside)."""
    i = tf.range(size)[None, :, None]
    j = tf.range(size)[None, None, :]
    return tf.cast(tf.equal(j, i - shift[:, None, None]), dtype)


def shifts(u: tf.Tensor, size: int, ratio: float) -> tf.Tensor:
    """Integer shifts in ``[-s, s]``, ``s = int(size * ratio + 0.5)``, from Uniform[0, 1) ``u``."""
    s = int(size * ratio + 0.5)
    return tf.cast(tf.floor(u * (2 * s + 1)), tf.int32) - s


def translate(x: tf.Tensor, u: tf.Tensor, ratio: float = 0.125) -> tf.Tensor:
    """Shift example b by ``dy`` rows and ``dx`` columns (from ``u[b]``), zero-filled.

    Written as ``S_y x S_x^T`` with one-hot shift matrices: exact, and differentiable in x.
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    dy, dx = shifts(u[:, 0], h, ratio), shifts(u[:, 1], w, ratio)
    sy, sx = _shift_matrices(h, dy, x.dtype), _shift_matrices(w, dx, x.dtype)
    return tf.einsum("bih,bhwc,bjw->bijc", sy, x, sx)


def cutout(x: tf.Tensor, u: tf.Tensor, ratio: float = 0.5) -> tf.Tensor:
    """Zero a ``k x k`` square (``k = int(size * ratio + 0.5)``) whose centre pixel
    ``(floor(u0 H), floor(u1 W))`` is uniform over the image; rows ``cy - k//2 ..
    cy - k//2 + k - 1`` and the same for columns."""
    h, w = int(x.shape[1]), int(x.shape[2])
    kh, kw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = tf.cast(tf.floor(u[:, 0] * h), tf.int32)[:, None]
    cx = tf.cast(tf.floor(u[:, 1] * w), tf.int32)[:, None]
    rows, cols = tf.range(h)[None, :] - (cy - kh // 2), tf.range(w)[None, :] - (cx - kw // 2)
    in_rows = (rows >= 0) & (rows < kh)
    in_cols = (cols >= 0) & (cols < kw)
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return x * tf.cast(~inside, x.dtype)[..., None]
