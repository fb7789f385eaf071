"""Losses of image-to-image translation, as pure functions of tensors (the sibling of
:mod:`gen_keras.losses`; the same conventions: ``[batch, height, width, channels]`` images, every
function returns a ``[batch]`` tensor and the caller averages over the GLOBAL batch).

Unlike the likelihood losses of :mod:`gen_keras.losses` (summed over pixels, in nats), the
pixel and patch terms here are MEANS over pixels / patches: that is how the papers' weights are
defined (lambda = 100 for Pix2Pix's L1, 10 for CycleGAN's cycle loss — their reference code
averages over pixels), so the weights keep the papers' meaning at any image size.

Discriminator outputs are patch maps ``[batch, h, w, 1]`` (a PatchGAN scores every patch; Isola
et al. 2017, sec. 3.2.2, average its responses) — or ``[batch]`` / ``[batch, 1]`` scores, which
are patch maps of one patch.
"""
from __future__ import annotations

import tensorflow as tf


def _mean_except_batch(t: tf.Tensor) -> tf.Tensor:
    t = tf.cast(tf.convert_to_tensor(t), tf.float32)
    return tf.reduce_mean(tf.reshape(t, [tf.shape(t)[0], -1]), axis=-1)


def mean_absolute_error_per_example(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``mean_i |x_i - y_i|`` per example (the L1 distance of Isola et al. 2017, eq. 3, and
    Zhu et al. 2017, eq. 2, averaged over pixels).

    >>> mean_absolute_error_per_example([[1.0, -1.0]], [[0.0, 0.0]])  # 1.0
    """
    return _mean_except_batch(tf.abs(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)))


def cycle_consistency_loss(x: tf.Tensor, x_cycled: tf.Tensor) -> tf.Tensor:
    """``||F(G(x)) - x||_1`` per example, averaged over pixels: Zhu et al. 2017, "Unpaired
    Image-to-Image Translation using Cycle-Consistent Adversarial Networks", eq. 2 (one
    direction; the model adds both and multiplies by lambda = 10)."""
    return mean_absolute_error_per_example(x, x_cycled)


def identity_loss(y: tf.Tensor, g_of_y: tf.Tensor) -> tf.Tensor:
    """``||G(y) - y||_1`` per example, averaged over pixels: a generator fed an image of its
    OUTPUT domain should leave it alone (Zhu et al. 2017, sec. 5.2, after Taigman et al. 2017);
    it keeps colours from drifting. The reference weight is 0.5 lambda."""
    return mean_absolute_error_per_example(y, g_of_y)


def patch_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """The conditional GAN discriminator's cross-entropy, averaged over its patches, per example:
    ``mean_p [softplus(-l_real,p) + softplus(l_fake,p)]``.

    Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks", eq. 1
    (D maximizes ``log D(x, y) + log(1 - D(x, G(x)))``), with the PatchGAN's average over patches
    (sec. 3.2.2). The paper halves D's objective to slow D down; the model does that (not here).

    >>> patch_discriminator_loss([[0.0, 0.0]], [[0.0, 0.0]])  # 2 log 2 = 1.3863
    """
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return _mean_except_batch(tf.nn.softplus(-real)) + _mean_except_batch(tf.nn.softplus(fake))


def patch_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """The non-saturating generator loss ``-log D(x, G(x)) = softplus(-l)``, averaged over
    patches (Isola et al. 2017, sec. 3.3: "rather than training G to minimize log(1 - D(x, G(x))),
    we instead train to maximize log D(x, G(x))").

    >>> patch_generator_loss([[0.0]])  # log 2 = 0.6931
    """
    return _mean_except_batch(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def least_squares_patch_discriminator_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """``1/2 [mean_p (D(y)_p - 1)^2 + mean_p D(G(x))_p^2]`` per example: the least-squares GAN
    loss CycleGAN uses (Zhu et al. 2017, sec. 4 "Training details": the LSGAN objective of Mao et
    al. 2017 with targets 1 (real) and 0 (fake); "we divide the objective by 2 while optimizing
    D").

    >>> least_squares_patch_discriminator_loss([[1.0, 0.0]], [[0.0, 1.0]])  # 0.5 (0.5 + 0.5) = 0.5
    """
    real = tf.cast(real_scores, tf.float32)
    fake = tf.cast(fake_scores, tf.float32)
    return 0.5 * (_mean_except_batch(tf.square(real - 1.0)) + _mean_except_batch(tf.square(fake)))


def least_squares_patch_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """``mean_p (D(G(x))_p - 1)^2`` per example (Zhu et al. 2017, sec. 4: G minimizes
    ``E_x[(D(G(x)) - 1)^2]``).

    >>> least_squares_patch_generator_loss([[0.0, 2.0]])  # (1 + 1) / 2 = 1.0
    """
    return _mean_except_batch(tf.square(tf.cast(fake_scores, tf.float32) - 1.0))


def feature_content_loss(real_features: tf.Tensor, fake_features: tf.Tensor) -> tf.Tensor:
    """``mean_j (phi_j(I_HR) - phi_j(G(I_LR)))^2`` per example: the content loss of Ledig et al.
    2017, "Photo-Realistic Single Image Super-Resolution Using a GAN", eq. 5 — the squared
    distance between feature maps ``phi`` of a fixed classifier (VGG19 in the paper; here the
    project's digit evaluator), normalized by the feature map's size.

    >>> feature_content_loss([[1.0, 2.0]], [[1.0, 0.0]])  # (0 + 4) / 2 = 2.0
    """
    return _mean_except_batch(tf.square(tf.cast(real_features, tf.float32)
                                        - tf.cast(fake_features, tf.float32)))
