"""Pix2Pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks"): a U-Net generator G(x) and a conditional PatchGAN D(x, y), trained on paired
(input x, target y) images with

    G* = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G),      lambda = 100       (eq. 4)

where L_cGAN is the cross-entropy of D telling (x, y) from (x, G(x)) patch by patch (eq. 1) and
L_L1 = E ||y - G(x)||_1 (eq. 3). G gets no noise vector: "we provide noise only in the form of
dropout" (sec. 2), on the first decoder layers, at training time here (the paper keeps it at
test time too; the export is deterministic).

One ``train_step`` on a batch: one generator step (non-saturating adversarial term + lambda L1),
then one discriminator step on the same batch with the generated images detached, its loss
halved as in the paper (sec. 3.3) — the order of the reference code for CycleGAN; the paper's
D-then-G is the same alternation shifted by half a step, with one more generator pass. Every
loss is per example (means over pixels / patches, so lambda keeps its meaning) and averaged over
the GLOBAL batch; batch norm uses each replica's batch statistics, as in Keras.

Receptive field: see :func:`gen_keras.models.translation_networks.patchgan_discriminator` —
16x16 patches at 28x28 (1 strided layer), 34x34 at 64x64 (2), the paper's 70x70 at 256x256 (3).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import translation_losses as tl
from gen_keras.errors import ConfigError
from gen_keras.models.registry import register_model
from gen_keras.models.translation import TranslationConfig, TranslationModel, check_positive
from gen_keras.models.translation_networks import (
    patchgan_discriminator,
    patchgan_receptive_field,
    patchgan_strided_layers,
    unet_generator,
)


@dataclass
class Pix2PixConfig(TranslationConfig):
    kind: str = "pix2pix"
    default_dataset: typing.ClassVar[str] = "pairs:inpaint"  # data.dataset when the config names none
    g_filters: int = 32  # width of the U-Net's first layer (64 in the paper, for 256x256)
    d_filters: int = 32  # width of D's first layer (64 in the paper)
    d_strided_layers: int = 0  # 0 = by image side: 1 at 28/32 (16x16 patches), 2 at 64 (34x34)
    l1_weight: float = 100.0  # lambda of eq. 4
    dropout: float = 0.5  # on the first decoder layers: G's only noise

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        check_positive(self, prefix, "g_filters", "d_filters")
        if self.l1_weight < 0:
            raise ConfigError(f"{prefix}.l1_weight={self.l1_weight} must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{prefix}.dropout={self.dropout} must be in [0, 1)")
        patchgan_strided_layers(prefix, self.d_strided_layers, self.image_shape[0])

    @property
    def strided_layers(self) -> int:
        return patchgan_strided_layers("model", self.d_strided_layers, self.image_shape[0])


@register_model("pix2pix", Pix2PixConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class Pix2Pix(TranslationModel):
    """Reported per epoch: ``g_loss`` (everything G minimizes), ``g_adv``, ``l1`` (mean |y - G(x)|
    in [-1, 1] units), ``d_loss`` (halved cross-entropy), ``d_real`` / ``d_fake`` (mean patch
    probability D gives real and generated pairs)."""

    tracker_names = ("g_loss", "g_adv", "l1", "d_loss", "d_real", "d_fake")

    def build_networks(self):
        c = self.config
        self.generator = unet_generator(c.input_shape, c.image_shape[-1], c.g_filters, dropout=c.dropout)
        self.discriminator = patchgan_discriminator(c.image_shape, c.d_filters, strided_layers=c.strided_layers,
                                                    condition_shape=c.input_shape, norm="batch")

    @property
    def receptive_field(self) -> int:
        return patchgan_receptive_field(self.config.strided_layers)

    def optimizer_variables(self, name):
        net = self.generator if name == "g_optimizer" else self.discriminator
        return net.trainable_variables

    def terms(self, x, y, training: bool):
        """Per-example losses of both players on one batch (G's and D's steps use them)."""
        fake = self.generator(x, training=training)
        fake_logits = self.discriminator([x, fake], training=training)
        g_adv = tl.patch_generator_loss(fake_logits)
        l1 = tl.mean_absolute_error_per_example(y, fake)
        return fake, {"g_adv": g_adv, "l1": l1, "g_loss": g_adv + self.config.l1_weight * l1}

    def discriminator_terms(self, x, y, fake, training: bool):
        real_logits = self.discriminator([x, y], training=training)
        fake_logits = self.discriminator([x, tf.stop_gradient(fake)], training=training)
        return {"d_loss": 0.5 * tl.patch_discriminator_loss(real_logits, fake_logits),
                "d_real": _mean_probability(real_logits), "d_fake": _mean_probability(fake_logits)}

    def train_step(self, data):
        return self.paired_adversarial_step(*data)

    def test_step(self, data):
        return self.paired_adversarial_test(*data)


def _mean_probability(logits) -> tf.Tensor:
    """Per example: the mean over patches of sigmoid(logit)."""
    p = tf.sigmoid(tf.cast(logits, tf.float32))
    return tf.reduce_mean(tf.reshape(p, [tf.shape(p)[0], -1]), axis=-1)
