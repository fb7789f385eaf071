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
    # x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - softplus(l): exact and stable, and
    # it converts to ONNX (Softplus), where TF's fused form needs Log1p, which ONNX lacks.
    return _sum_except_batch(x * logits - tf.nn.softplus(logits))


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


# ----------------------------------------------------------------------------------------------
# --- GAN losses ---
#
# Every function takes the discriminator's (critic's) raw outputs — logits for the
# cross-entropy losses, unbounded scores for the others — of shape ``[batch]`` or ``[batch, 1]``
# and returns a ``[batch]`` tensor; the caller averages over the global batch. The discriminator
# minimizes the ``*_discriminator_loss`` / ``*_critic_loss``, the generator its
# ``*_generator_loss``.
# ----------------------------------------------------------------------------------------------
def _scores(t: tf.Tensor) -> tf.Tensor:
    """``[batch]`` or ``[batch, 1]`` discriminator outputs → float32 ``[batch]``."""
    return _sum_except_batch(tf.cast(tf.convert_to_tensor(t), tf.float32)[:, None])


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor,
                       label_smoothing: float = 0.0) -> tf.Tensor:
    """The discriminator's binary cross-entropy, per example.

    Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1: D maximizes
    ``log D(x) + log(1 - D(G(z)))``, i.e. minimizes
    ``-log sigmoid(l_real) - log(1 - sigmoid(l_fake)) = softplus(-l_real) + softplus(l_fake)``.

    ``label_smoothing = s`` is the one-sided label smoothing of Salimans et al. 2016, "Improved
    Techniques for Training GANs", sec. 3.4: the REAL target becomes ``1 - s`` (fake stays 0),
    so the real term is ``-(1-s) log sigmoid(l) - s log(1 - sigmoid(l))``.

    >>> discriminator_loss([0.0], [0.0])  # 2 log 2 = 1.3863
    """
    real, fake = _scores(real_logits), _scores(fake_logits)
    real_target = tf.fill(tf.shape(real), 1.0 - float(label_smoothing))
    return (tf.nn.sigmoid_cross_entropy_with_logits(labels=real_target, logits=real)
            + tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake))


def minimax_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """The saturating generator loss ``log(1 - D(G(z))) = -softplus(l_fake)``, per example.

    Goodfellow et al. 2014, eq. 1 (the generator's side of the minimax game). Its gradient
    vanishes when D confidently rejects the samples, which is why it is not the default.

    >>> minimax_generator_loss([0.0])  # log(1/2) = -0.6931
    """
    return -tf.nn.softplus(_scores(fake_logits))


def non_saturating_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """The non-saturating generator loss ``-log D(G(z)) = softplus(-l_fake)``, per example.

    Goodfellow et al. 2014, sec. 3 (maximize log D(G(z)) instead of minimizing
    log(1 - D(G(z)))): the same fixed point, strong gradients early in training. The default.

    >>> non_saturating_generator_loss([0.0])  # log 2 = 0.6931
    """
    return tf.nn.softplus(-_scores(fake_logits))


def least_squares_discriminator_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor,
                                     real_target: float = 1.0, fake_target: float = 0.0) -> tf.Tensor:
    """LSGAN discriminator loss ``1/2 (D(x) - b)^2 + 1/2 (D(G(z)) - a)^2``, per example.

    Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2, with the 0-1 coding
    ``a = 0`` (fake), ``b = 1`` (real) of their eq. 9.

    >>> least_squares_discriminator_loss([0.5], [0.5])  # 0.125 + 0.125 = 0.25
    """
    real, fake = _scores(real_scores), _scores(fake_scores)
    return 0.5 * tf.square(real - real_target) + 0.5 * tf.square(fake - fake_target)


def least_squares_generator_loss(fake_scores: tf.Tensor, target: float = 1.0) -> tf.Tensor:
    """LSGAN generator loss ``1/2 (D(G(z)) - c)^2`` with ``c = 1``; Mao et al. 2017, eq. 2 / eq. 9.

    >>> least_squares_generator_loss([0.0])  # 0.5
    """
    return 0.5 * tf.square(_scores(fake_scores) - target)


def hinge_discriminator_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """Hinge loss ``max(0, 1 - D(x)) + max(0, 1 + D(G(z)))``, per example.

    Lim & Ye 2017, "Geometric GAN"; in the form of Miyato et al. 2018, "Spectral Normalization
    for GANs", eq. 16.

    >>> hinge_discriminator_loss([0.5], [-2.0])  # 0.5 + 0
    """
    real, fake = _scores(real_scores), _scores(fake_scores)
    return tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake)


def hinge_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """The hinge generator loss ``-D(G(z))``; Miyato et al. 2018, eq. 17."""
    return -_scores(fake_scores)


def wasserstein_critic_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """The critic's loss ``D(G(z)) - D(x)``, per example (the critic maximizes E D(x) - E D(G(z))).

    Arjovsky et al. 2017, "Wasserstein GAN", eq. 3 (Kantorovich-Rubinstein duality); the first two
    terms of Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", eq. 3 (the gradient
    penalty is :func:`gradient_penalty`).

    >>> wasserstein_critic_loss([3.0], [1.0])  # -2
    """
    return _scores(fake_scores) - _scores(real_scores)


def wasserstein_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """The generator's loss ``-D(G(z))``; Arjovsky et al. 2017, Algorithm 1 (line 10)."""
    return -_scores(fake_scores)


def safe_l2_norm(t: tf.Tensor, epsilon: float = 1e-12) -> tf.Tensor:
    """``sqrt(sum(t^2) + epsilon)`` over all but the batch axis.

    The plain norm's derivative ``t / ||t||`` is 0/0 = NaN at ``t = 0``; the epsilon keeps the
    gradient finite (exactly 0 there) and changes the value by at most ``sqrt(epsilon)``.
    """
    return tf.sqrt(_sum_except_batch(tf.square(tf.cast(t, tf.float32))) + epsilon)


def gradient_penalty(critic, real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor,
                     target_norm: float = 1.0) -> tf.Tensor:
    """WGAN-GP penalty ``(||grad_x̂ D(x̂)||_2 - 1)^2`` at ``x̂ = alpha x + (1 - alpha) x̃``, per example.

    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", eq. 3 and Algorithm 1
    (lines 4-7): ``alpha ~ Uniform[0, 1]`` per example (shape ``[batch, 1, 1, 1]`` for images),
    ``x̃ = G(z)``; the caller multiplies by lambda (10 in the paper). The norm is
    :func:`safe_l2_norm`, so the penalty's own gradient stays finite where the critic's input
    gradient is zero.

    ``critic`` is a function of a batch of inputs returning ``[batch]`` or ``[batch, 1]`` scores;
    it must treat examples independently (no batch normalization, paper sec. 4), or the
    per-example gradients mix.
    """
    real = tf.convert_to_tensor(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    alpha = tf.cast(alpha, tf.float32)
    interpolates = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        # Examples are independent, so the gradient of the sum is each example's own gradient.
        total = tf.reduce_sum(_scores(critic(interpolates)))
    grads = tape.gradient(total, interpolates)
    return tf.square(safe_l2_norm(grads) - target_norm)


def r1_penalty(discriminator, real: tf.Tensor) -> tf.Tensor:
    """The R1 regularizer's ``||grad_x D(x)||^2`` on REAL data, per example.

    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", eq. 9:
    ``R1 = gamma / 2 * E_x ||grad_x D(x)||^2`` (the caller multiplies by ``gamma / 2``),
    penalizing D's gradient on the data only, which makes the Dirac-GAN and, in their
    experiments, real GANs converge locally. Used by StyleGAN (Karras et al. 2019, sec. 4 of the
    appendix) and, lazily every k steps, StyleGAN2 (Karras et al. 2020, sec. 3.1).

    ``discriminator`` maps a batch to ``[batch]`` or ``[batch, 1]`` raw outputs (logits). The
    gradient of the SUM of the outputs is each example's own gradient when D treats examples
    independently (no batch normalization); a minibatch-stddev layer couples them slightly,
    as in StyleGAN2.

    >>> r1_penalty(lambda x: 3.0 * tf.reduce_sum(x, [1, 2, 3]), tf.ones([1, 2, 2, 1]))  # 4 * 9 = 36
    """
    real = tf.convert_to_tensor(real, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(_scores(discriminator(real)))
    grads = tape.gradient(total, real)
    return _sum_except_batch(tf.square(tf.cast(grads, tf.float32)))
