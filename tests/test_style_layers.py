"""The pieces of the style-based GAN and of the data-efficient recipe against numpy and values
computed by hand: equalized-lr scaling, modulation/demodulation, minibatch stddev, style mixing,
truncation, R1 against a finite difference, DiffAugment, spectral normalization."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gen_keras import augment, losses
from gen_keras.models import spectral_norm as sn
from gen_keras.models import style_layers as sl


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=0, atol=tol)


# ----------------------------------------------------------------------------------------------
# Equalized learning rate
# ----------------------------------------------------------------------------------------------
def test_equalized_lr_scale_by_hand():
    close(sl.equalized_lr_scale(9 * 16), 1 / 12)
    close(sl.equalized_lr_scale(4, lr_multiplier=0.01), 0.005)


def test_equalized_layers_scale_their_weights_at_run_time():
    conv = sl.EqualizedConv2D(1, 3, use_bias=False)
    conv.build((None, 5, 5, 2))
    conv.kernel.assign(tf.ones_like(conv.kernel))
    # Interior pixel: 3 * 3 * 2 = 18 ones times 1 / sqrt(18) = sqrt(18); a corner sees 2 * 2 * 2.
    out = conv(tf.ones([1, 5, 5, 2]))
    close(out[0, 2, 2, 0], math.sqrt(18))
    close(out[0, 0, 0, 0], 8 / math.sqrt(18))
    # The stored weights are N(0, 1) (the initializer), not N(0, 1/fan_in).
    fresh = sl.EqualizedConv2D(64, 3)
    fresh.build((None, 8, 8, 64))
    assert 0.9 < float(np.std(fresh.kernel.numpy())) < 1.1

    wide = sl.EqualizedDense(64, lr_multiplier=0.01)
    wide.build((None, 64))  # stored ~N(0, 1 / 0.01^2): the multiplier slows learning 100x
    assert 90 < float(np.std(wide.kernel.numpy())) < 110
    dense = sl.EqualizedDense(1, lr_multiplier=0.01, bias_init=0.5)
    dense.build((None, 4))
    dense.kernel.assign(tf.ones_like(dense.kernel))
    # 4 ones * (0.01 / sqrt(4)) + the bias: stored 0.5 / 0.01, used x 0.01 = 0.5.
    close(dense(tf.ones([1, 4])), [[0.02 + 0.5]])
    close(dense.bias.numpy(), [50.0])
    lrelu = sl.EqualizedDense(1, activation="lrelu", use_bias=False)
    lrelu.build((None, 1))
    lrelu.kernel.assign([[1.0]])
    close(lrelu(tf.constant([[2.0], [-2.0]])), [[2 * math.sqrt(2)], [-0.4 * math.sqrt(2)]])


# ----------------------------------------------------------------------------------------------
# Modulated / demodulated convolution
# ----------------------------------------------------------------------------------------------
def _conv_same_numpy(x, w):
    """x [H, W, I], w [k, k, I, O], stride 1, zero 'same' padding."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    h, wd = x.shape[:2]
    out = np.zeros((h, wd, w.shape[3]))
    for i in range(h):
        for j in range(wd):
            out[i, j] = np.einsum("abi,abio->o", xp[i:i + k, j:j + k], w)
    return out


def test_modulation_and_demodulation_by_hand():
    # 1x1 kernel, one channel: w = 2, s = 3 -> w' = 6; demodulated w'' = 6 / sqrt(36) = 1.
    x = tf.ones([1, 2, 2, 1])
    w = tf.constant([[[[2.0]]]])
    s = tf.constant([[3.0]])
    close(sl.modulated_conv2d(x, w, s, demodulate=False), np.full([1, 2, 2, 1], 6.0))
    close(sl.modulated_conv2d(x, w, s, demodulate=True), np.ones([1, 2, 2, 1]))


def test_modulated_conv_equals_per_example_weights_of_the_paper():
    """Scaling activations + shared conv + output scaling (our implementation) equals a
    convolution with each example's own weights w''_ijk (Karras et al. 2020, eqs. 1 and 3)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3))
    w = rng.standard_normal((3, 3, 3, 2))
    s = rng.uniform(0.2, 2.0, (2, 3))
    for demod in (False, True):
        got = sl.modulated_conv2d(tf.constant(x, tf.float32), tf.constant(w, tf.float32),
                                  tf.constant(s, tf.float32), demodulate=demod)
        for n in range(2):
            w1 = w * s[n][None, None, :, None]
            if demod:
                w1 = w1 / np.sqrt(np.sum(w1 ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
            close(got[n], _conv_same_numpy(x[n], w1), tol=1e-4)


def test_demodulation_restores_unit_output_scale_whatever_the_style():
    # With unit-variance iid inputs, demodulated outputs have unit variance for any style size.
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((4, 16, 16, 32)), tf.float32)
    w = tf.constant(rng.standard_normal((3, 3, 32, 8)), tf.float32)
    for scale in (0.1, 10.0):
        y = sl.modulated_conv2d(x, w, tf.fill([4, 32], scale))
        assert 0.8 < float(tf.math.reduce_std(y[:, 1:-1, 1:-1])) < 1.2


# ----------------------------------------------------------------------------------------------
# Minibatch standard deviation
# ----------------------------------------------------------------------------------------------
def test_minibatch_stddev_by_hand():
    x = tf.constant([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0], [1.0, 1.0]])[:, None, None, :]
    out = sl.minibatch_stddev(x, group_size=2)
    assert out.shape == (4, 1, 1, 3)
    close(out[..., :2], x)  # the input passes through
    # Group {0, 1}: population stds 1 and 2 -> 1.5; group {2, 3}: 0 (+ sqrt(1e-8)).
    close(out[:, 0, 0, 2], [1.5, 1.5, 1e-4, 1e-4])


def test_minibatch_stddev_against_numpy_and_consecutive_groups():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 3, 4)).astype(np.float32)
    out = sl.minibatch_stddev(tf.constant(x), group_size=4).numpy()
    for g in range(2):
        block = x[4 * g:4 * g + 4]
        want = np.mean(np.sqrt(np.var(block, axis=0) + 1e-8))
        close(out[4 * g:4 * g + 4, :, :, 4], np.full((4, 3, 3), want))
    # Consecutive groups: two replicas holding halves see what one device sees.
    halves = np.concatenate([sl.minibatch_stddev(tf.constant(x[:4]), 4).numpy(),
                             sl.minibatch_stddev(tf.constant(x[4:]), 4).numpy()])
    close(halves, out)
    # A batch the group size does not divide uses its largest divisor: 6 -> groups of 3.
    six = sl.minibatch_stddev(tf.constant(x[:6]), 4).numpy()
    close(six[0, 0, 0, 4], np.mean(np.sqrt(np.var(x[:3], axis=0) + 1e-8)))


# ----------------------------------------------------------------------------------------------
# Style mixing and truncation
# ----------------------------------------------------------------------------------------------
def test_mix_styles_crossover_by_hand():
    w1 = tf.fill([3, 2], 1.0)
    w2 = tf.fill([3, 2], 2.0)
    ws = sl.mix_styles(w1, w2, tf.constant([1, 3, 4]), num_ws=4).numpy()
    assert ws.shape == (3, 4, 2)
    close(ws[..., 0], [[1, 2, 2, 2], [1, 1, 1, 2], [1, 1, 1, 1]])  # crossover 4: no mixing


def test_truncate_by_hand():
    w = tf.constant([[2.0, 4.0], [2.0, 4.0], [2.0, 4.0]])
    w_avg = tf.constant([1.0, 1.0])
    close(sl.truncate(w, w_avg, tf.constant([0.5, 0.0, 1.0])), [[1.5, 2.5], [1.0, 1.0], [2.0, 4.0]])
    layer = sl.Truncation(2)
    layer.build(None)
    layer.w_avg.assign([1.0, 1.0])
    close(layer([w[:1], tf.constant([0.5])]), [[1.5, 2.5]])


# ----------------------------------------------------------------------------------------------
# R1
# ----------------------------------------------------------------------------------------------
def _critic_numpy(x, c):
    """D(x) = sum_j c_j tanh(x_j) + 0.5 (sum_j x_j)^2 per example (float64)."""
    flat = x.reshape(len(x), -1)
    return np.sum(c * np.tanh(flat), axis=1) + 0.5 * np.sum(flat, axis=1) ** 2


def test_r1_penalty_against_a_finite_difference():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (3, 2, 3, 1))
    c = rng.standard_normal(6)

    def critic(t):
        flat = tf.reshape(t, [tf.shape(t)[0], -1])
        return (tf.reduce_sum(tf.constant(c, tf.float32) * tf.tanh(flat), axis=1)
                + 0.5 * tf.square(tf.reduce_sum(flat, axis=1)))

    got = losses.r1_penalty(critic, tf.constant(x, tf.float32)).numpy()
    h = 1e-5
    want = []
    for n in range(len(x)):
        grad = np.zeros(x[n].size)
        for j in range(x[n].size):
            e = np.zeros(x[n].size)
            e[j] = h
            plus = _critic_numpy((x[n].ravel() + e).reshape(1, -1), c)[0]
            minus = _critic_numpy((x[n].ravel() - e).reshape(1, -1), c)[0]
            grad[j] = (plus - minus) / (2 * h)
        want.append(np.sum(grad ** 2))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # A linear critic 3 * sum(x): gradient 3 at each of 4 pixels -> 36.
    close(losses.r1_penalty(lambda t: 3.0 * tf.reduce_sum(t, [1, 2, 3]), tf.ones([2, 2, 2, 1])), [36.0] * 2)


# ----------------------------------------------------------------------------------------------
# DiffAugment
# ----------------------------------------------------------------------------------------------
def test_translation_by_hand():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    # ratio 0.25 on 4 pixels: shifts in [-1, 1] = floor(u * 3) - 1; u 0.9 -> +1 row, 0.1 -> -1 col.
    out = augment.translate(tf.constant(x), tf.constant([[0.9, 0.1]]), ratio=0.25).numpy()[0, :, :, 0]
    want = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            si, sj = i - 1, j + 1  # out[i, j] = x[i - dy, j - dx]
            if 0 <= si < 4 and 0 <= sj < 4:
                want[i, j] = x[0, si, sj, 0]
    close(out, want)
    close(augment.shifts(tf.constant([0.0, 0.5, 0.999]), 28, 0.125), [-4, 0, 4])


def test_cutout_by_hand():
    x = tf.ones([1, 6, 6, 2])
    # ratio 0.5: a 3x3 square centred at (floor(0.5 * 6), floor(0 * 6)) = (3, 0): rows 2..4, cols -1..1.
    out = augment.cutout(x, tf.constant([[0.5, 0.0]]), ratio=0.5).numpy()
    want = np.ones((6, 6))
    want[2:5, 0:2] = 0.0
    close(out[0, :, :, 0], want)
    close(out[0, :, :, 1], want)


def test_color_by_hand():
    # One channel: brightness +0.25 (u = 0.75), saturation a no-op, contrast x0.5 (u = 0).
    x = tf.constant([0.0, 1.0])[None, None, :, None]
    close(augment.color(x, tf.constant([[0.75, 0.9, 0.0]]))[0, 0, :, 0], [0.5, 1.0])
    # Three channels, brightness 0 (u = 0.5), saturation x0.5 (u = 0.25), contrast 1 (u = 0.5).
    rgb = tf.constant([0.0, 0.3, 0.6])[None, None, None, :]
    close(augment.color(rgb, tf.constant([[0.5, 0.25, 0.5]]))[0, 0, 0], [0.15, 0.3, 0.45])


def test_diff_augment_is_pure_ordered_and_differentiable():
    policy = ["color", "translation", "cutout"]
    assert augment.num_draws(policy) == 7 and augment.num_draws(["cutout"]) == 2
    rng = np.random.default_rng(4)
    x = tf.Variable(rng.uniform(-1, 1, (3, 8, 8, 1)).astype(np.float32))
    draws = tf.constant(rng.uniform(0, 1, (3, 7)), tf.float32)
    with tf.GradientTape() as tape:
        a = augment.diff_augment(x, policy, draws)
        total = tf.reduce_sum(a * a)
    close(a, augment.diff_augment(x, policy, draws))  # same draws, same images
    # The columns are consumed in policy order: color takes 0..2, translation 3..4, cutout 5..6.
    step = augment.color(x, draws[:, 0:3])
    step = augment.translate(step, draws[:, 3:5])
    close(a, augment.cutout(step, draws[:, 5:7]))
    grad = tape.gradient(total, x)
    assert np.all(np.isfinite(grad.numpy())) and float(tf.reduce_max(tf.abs(grad))) > 0
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        augment.diff_augment(x, ["blur"], draws)


# ----------------------------------------------------------------------------------------------
# Spectral normalization
# ----------------------------------------------------------------------------------------------
def test_power_iteration_finds_the_top_singular_value():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((12, 5)).astype(np.float32)
    u = tf.constant(rng.standard_normal(5), tf.float32)
    for _ in range(50):
        sigma, u = sn.spectral_norm(tf.constant(w), u)
    close(sigma, np.linalg.svd(w, compute_uv=False)[0], tol=1e-3)
    # By hand: diag(3, 1) with u = e1 -> v = e1, sigma = 3 at once.
    sigma, _ = sn.spectral_norm(tf.constant([[3.0, 0.0], [0.0, 1.0]]), tf.constant([1.0, 0.0]))
    close(sigma, 3.0)


def test_spectral_layers_normalize_and_update_their_estimate_only_in_training():
    # Seeded: the kernel drawn from the worker's random state (which the tests before it move)
    # once had its two largest singular values so close that 30 power iterations were 2e-3 off;
    # seeds 0-19 all come within 1e-5.
    keras.utils.set_random_seed(0)
    layer = sn.SpectralDense(3)
    layer.build((None, 6))
    x = tf.random.stateless_normal([4, 6], seed=[1, 2])
    u0 = layer.u.numpy().copy()
    layer(x, training=False)
    close(layer.u.numpy(), u0)  # inference: no update
    for _ in range(30):
        layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), u0)
    w_sn = layer.normalized_kernel(training=False).numpy()
    close(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, tol=1e-3)
    conv = sn.SpectralConv2D(4, 4, strides=2)
    y = conv(tf.ones([2, 8, 8, 3]), training=True)
    assert y.shape == (2, 4, 4, 4) and conv.compute_output_shape((2, 8, 8, 3)) == (2, 4, 4, 4)
