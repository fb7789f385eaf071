"""GAN losses and the diversity measure against values computed by hand (math, not TF)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from gen_keras import losses
from gen_keras.training.guards import mean_pairwise_distance, sample_diversity


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=0, atol=tol)


def test_discriminator_bce_by_hand():
    # -log s(2) - log(1 - s(-1)), and at logits 0 both terms are log 2.
    want = -math.log(sigmoid(2.0)) - math.log(1.0 - sigmoid(-1.0))
    close(losses.discriminator_loss([2.0, 0.0], [-1.0, 0.0]), [want, 2 * math.log(2)])
    # [batch, 1] outputs (a Dense(1) head) give the same [batch] result.
    close(losses.discriminator_loss([[2.0]], [[-1.0]]), [want])


def test_one_sided_label_smoothing_changes_only_the_real_target():
    s = 0.1
    real = -(1 - s) * math.log(sigmoid(2.0)) - s * math.log(1.0 - sigmoid(2.0))
    fake = -math.log(1.0 - sigmoid(-1.0))  # fake target stays 0 (one-sided)
    close(losses.discriminator_loss([2.0], [-1.0], label_smoothing=s), [real + fake])


def test_generator_losses_by_hand():
    close(losses.minimax_generator_loss([0.0, 1.0]),
          [math.log(0.5), math.log(1.0 - sigmoid(1.0))])
    close(losses.non_saturating_generator_loss([0.0, 1.0]),
          [math.log(2.0), -math.log(sigmoid(1.0))])
    # The non-saturating loss keeps a gradient where D rejects the fakes; minimax saturates.
    logit = tf.constant([-8.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logit)
        mm = losses.minimax_generator_loss(logit)
        ns = losses.non_saturating_generator_loss(logit)
    assert abs(float(tape.gradient(mm, logit)[0])) < 1e-3
    assert abs(float(tape.gradient(ns, logit)[0])) > 0.99


def test_least_squares_hinge_and_wasserstein_by_hand():
    close(losses.least_squares_discriminator_loss([0.5, 2.0], [0.5, -1.0]),
          [0.5 * 0.25 + 0.5 * 0.25, 0.5 * 1.0 + 0.5 * 1.0])
    close(losses.least_squares_generator_loss([0.0, 3.0]), [0.5, 2.0])
    close(losses.hinge_discriminator_loss([0.5, 2.0], [-2.0, 0.5]), [0.5 + 0.0, 0.0 + 1.5])
    close(losses.hinge_generator_loss([0.7]), [-0.7])
    close(losses.wasserstein_critic_loss([3.0, -1.0], [1.0, 2.0]), [-2.0, 3.0])
    close(losses.wasserstein_generator_loss([1.5]), [-1.5])


def test_safe_l2_norm_by_hand():
    close(losses.safe_l2_norm(tf.constant([[3.0, 4.0], [0.0, 0.0]])), [5.0, 1e-6])


def test_gradient_penalty_on_critics_with_known_gradients():
    real = tf.fill([2, 2, 4, 1], 2.0)  # 8 values per example
    fake = tf.zeros([2, 2, 4, 1])
    # Linear critic c . x: its input gradient is c everywhere, norm sqrt(8 * 0.25) = sqrt(2).
    linear = lambda x: tf.reduce_sum(0.5 * x, axis=[1, 2, 3])  # noqa: E731
    alpha = tf.constant([0.3, 0.9])[:, None, None, None]
    close(losses.gradient_penalty(linear, real, fake, alpha), [(math.sqrt(2) - 1) ** 2] * 2)
    # Quadratic critic 0.5 ||x||^2: the gradient is the interpolate itself, so the penalty also
    # checks x_hat = alpha * real + (1 - alpha) * fake: alpha 0.25 → x_hat = 0.5, norm
    # sqrt(8 * 0.25) = sqrt(2); alpha 0.5 → x_hat = 1, norm sqrt(8). (Swapping real and fake
    # would give 1.5 and 1: different values.)
    quadratic = lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])  # noqa: E731
    alpha = tf.constant([0.25, 0.5])[:, None, None, None]
    close(losses.gradient_penalty(quadratic, real, fake, alpha),
          [(math.sqrt(2) - 1) ** 2, (math.sqrt(8) - 1) ** 2], tol=1e-4)


def test_gradient_penalty_gradient_is_finite_where_the_critic_gradient_is_zero():
    w = tf.Variable(tf.zeros([1, 2, 2, 1]))  # critic w . x: input gradient w = 0
    critic = lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3])  # noqa: E731
    real, fake = tf.ones([3, 2, 2, 1]), -tf.ones([3, 2, 2, 1])
    alpha = tf.fill([3, 1, 1, 1], 0.5)
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, real, fake, alpha)
        total = tf.reduce_sum(gp)
    grad = tape.gradient(total, w)
    assert np.all(np.isfinite(grad.numpy())), grad
    close(gp, [1.0] * 3)  # (0 - 1)^2 up to sqrt(1e-12)
    # What the safe norm prevents: the plain norm's gradient is NaN at 0.
    with tf.GradientTape() as tape:
        plain = tf.reduce_sum(tf.square(tf.norm(tf.reshape(w, [1, -1]), axis=1) - 1.0))
    assert np.isnan(tape.gradient(plain, w).numpy()).any()


def test_mean_pairwise_distance_by_hand():
    images = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    # pairs: sqrt(2)/sqrt(2) = 1, 2/sqrt(2) = sqrt(2), sqrt(2)/sqrt(2) = 1
    close(mean_pairwise_distance(images), (1 + math.sqrt(2) + 1) / 3)
    close(mean_pairwise_distance(np.ones((5, 4, 4, 1))), 0.0)
    # Within-label: [a, a] distance 0 and [b, c] distance 1 → mean 0.5.
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    close(sample_diversity(x, labels=[0, 0, 1, 1]), 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(np.zeros((1, 3)))
