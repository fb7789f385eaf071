"""Losses as pure functions of tensors. Models compose them; tests check each by hand.

Conventions: images are ``[batch, height, width, channels]``; every ``*_per_example`` function
returns a ``[batch]`` tensor (summed over pixels / latent dimensions), in nats. Reducing over the
batch (and scaling for distribution) is the caller's job, so the same function serves training,
evaluation and anomaly scoring.
"""
from __future__ import annotations

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def _sum_except_batch(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], -1]), axis=-1)


# ----------------------------------------------------------------------------------------------
# Autoencoder / VAE
# ----------------------------------------------------------------------------------------------
def kl_divergence(mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in closed form.

    Kingma & Welling 2014, "Auto-Encoding Variational Bayes", appendix B:
    ``-KL = 0.5 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)``.

    >>> kl_divergence([[1.0, 0.0]], [[0.0, 0.0]])  # 0.5 * mu^2 = 0.5
    """
    mean = tf.convert_to_tensor(mean, tf.float32)
    log_var = tf.convert_to_tensor(log_var, tf.float32)
    return -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mean) - tf.exp(log_var), axis=-1)


def bernoulli_log_likelihood(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """log p(x | logits) of a factorized Bernoulli decoder, per example.

    ``log p = sum_i x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))`` — the negative binary
    cross-entropy, computed from logits for stability. ``x`` may be in [0, 1] (continuous
    "binarization", the usual training convention) or exactly binary (the evaluation convention).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    logits = tf.cast(logits, tf.float32)
    return -_sum_except_batch(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def gaussian_log_likelihood(x: tf.Tensor, mean: tf.Tensor, log_sigma: tf.Tensor | float) -> tf.Tensor:
    """log N(x; mean, sigma^2 I) per example: ``sum_i -0.5 log(2 pi) - log sigma - (x-mu)^2/(2 sigma^2)``."""
    x = tf.convert_to_tensor(x, tf.float32)
    mean = tf.cast(mean, tf.float32)
    log_sigma = tf.cast(log_sigma, tf.float32)
    per_pixel = -0.5 * LOG_2PI - log_sigma - 0.5 * tf.square(x - mean) * tf.exp(-2.0 * log_sigma)
    return _sum_except_batch(per_pixel + tf.zeros_like(x))


def log_normal_diag(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; mean, diag(exp(log_var))) summed over the last axis (used by the IWAE bound)."""
    z = tf.convert_to_tensor(z, tf.float32)
    mean = tf.cast(mean, tf.float32)
    log_var = tf.cast(log_var, tf.float32)
    return -0.5 * tf.reduce_sum(
        LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var), axis=-1
    )


def log_standard_normal(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I) summed over the last axis."""
    z = tf.convert_to_tensor(z, tf.float32)
    return -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)


def negative_elbo(reconstruction_log_likelihood: tf.Tensor, kl: tf.Tensor, beta: float | tf.Tensor = 1.0) -> tf.Tensor:
    """-ELBO per example: ``-E_q[log p(x|z)] + beta * KL(q(z|x) || p(z))``.

    ``beta = 1`` is the evidence lower bound of Kingma & Welling 2014 (eq. 3); ``beta != 1`` is
    the beta-VAE objective of Higgins et al. 2017 (eq. 4).
    """
    return -reconstruction_log_likelihood + tf.cast(beta, tf.float32) * kl


def binary_crossentropy_per_example(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Autoencoder reconstruction loss for [0, 1] images from logits, summed over pixels."""
    return -bernoulli_log_likelihood(x, logits)


def squared_error_per_example(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """Autoencoder reconstruction loss ``sum_i (x_i - x_hat_i)^2``, per example."""
    x = tf.convert_to_tensor(x, tf.float32)
    return _sum_except_batch(tf.square(x - tf.cast(x_hat, tf.float32)))


def average_over_global_batch(per_example: tf.Tensor, global_batch_size: tf.Tensor | int) -> tf.Tensor:
    """Sum of a per-replica ``[batch]`` loss divided by the GLOBAL batch size.

    Under a distribution strategy the replicas' gradients are summed, so each replica must
    contribute ``sum(its examples) / global_batch``; the sum over replicas is then the mean over
    the global batch, and the gradients equal those of one device on the same global batch.
    """
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size, per_example.dtype)
