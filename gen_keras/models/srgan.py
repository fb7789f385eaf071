"""SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network"): the ``sr_l1`` generator trained with a perceptual loss

    l_SR = content_weight l_content + pixel_weight l_L1 + adversarial_weight l_adv      (eq. 3)

* ``l_content`` (eq. 5): the mean squared distance between FEATURE MAPS of a fixed classifier
  on the real and the super-resolved image. The paper uses VGG19 (ImageNet); no such weights can
  be downloaded here, and digits want a digit network anyway, so the classifier is the
  project's own digit evaluator (its architecture: :mod:`gen_keras.models.classifier`; trained
  on the mnist10k train split at this image shape by evaluation), frozen; its layer
  ``content_layer`` (default ``conv1``: the last conv feature map, 14x14x32 at 28x28 — the
  analogue of the paper's VGG54, the last conv layer before the classifier head) is the feature
  space. The model only declares the trained network it needs (:meth:`SRGAN.pretrained_parts`);
  training hands the weights in before fitting (:meth:`SRGAN.load_pretrained`, called by
  :func:`gen_keras.eval.translation.hand_in_pretrained`), and they are saved with the model. Note
  that FID is measured with the same network's dense ``features`` layer: the content loss does
  not optimize FID's features directly, but the two are not independent (docs/translation.md).
* ``l_L1``: mean |y - G(x)| (0 in the paper's pure setting; a small pixel term is the usual
  stabilizer, e.g. ESRGAN; configurable).
* ``l_adv`` (eq. 6): the non-saturating ``-log D(G(x))``, weight 1e-3 as in the paper.

D is the SRGAN discriminator scaled to digits (:func:`~gen_keras.models.translation_networks.sr_discriminator`),
trained with the cross-entropy. One ``train_step``: a generator step, then a discriminator step
on the same generated batch (detached); losses per example, averaged over the GLOBAL batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import translation_losses as tl
from gen_keras.errors import ConfigError
from gen_keras.models.classifier import copy_weights_by_name, image_classifier
from gen_keras.models.registry import register_model
from gen_keras.models.sr_l1 import SRL1, SRL1Config
from gen_keras.models.translation import check_non_negative, check_positive
from gen_keras.models.translation_networks import sr_discriminator

CONTENT_LAYERS = ("conv0", "conv1", "features")


@dataclass
class SRGANConfig(SRL1Config):
    kind: str = "srgan"
    d_filters: int = 32
    d_strided_blocks: int = 2
    d_dense: int = 256
    content_layer: str = "conv1"  # a layer of the evaluator network (see the module docstring)
    content_weight: float = 1.0
    pixel_weight: float = 1.0
    adversarial_weight: float = 1e-3  # Ledig et al., eq. 3
    g_learning_rate: float = 1e-3
    d_learning_rate: float = 1e-4

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        check_positive(self, prefix, "d_filters", "d_strided_blocks", "d_dense")
        check_non_negative(self, prefix, "content_weight", "pixel_weight", "adversarial_weight")
        if self.content_layer not in CONTENT_LAYERS:
            raise ConfigError(f"{prefix}.content_layer={self.content_layer!r} is not one of {list(CONTENT_LAYERS)}")
        if 2 ** self.d_strided_blocks > self.image_shape[0] // 2:
            raise ConfigError(f"{prefix}.d_strided_blocks={self.d_strided_blocks} halves a "
                              f"{self.image_shape[0]}-pixel side below 2 pixels")


def content_network(image_shape, layer: str) -> keras.Model:
    """The digit evaluator's architecture (:func:`gen_keras.models.classifier.image_classifier`,
    float32) up to ``layer``: the frozen feature map of the content loss, on images in [0, 1]."""
    classifier = image_classifier(tuple(image_shape), 10)
    network = keras.Model(classifier.input, classifier.get_layer(layer).output, name="content_network")
    network.trainable = False
    return network


@register_model("srgan", SRGANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class SRGAN(SRL1):
    """Reported per epoch: ``g_loss`` (everything G minimizes), ``content``, ``l1``, ``g_adv``,
    ``d_loss``, ``d_real`` / ``d_fake`` (mean probability D gives real and super-resolved
    images)."""

    tracker_names = ("g_loss", "content", "l1", "g_adv", "d_loss", "d_real", "d_fake")
    optimizer_names = ("g_optimizer", "d_optimizer")

    def build_networks(self):
        super().build_networks()
        c = self.config
        self.discriminator = sr_discriminator(c.image_shape, c.d_filters, strided_blocks=c.d_strided_blocks,
                                              dense=c.d_dense)
        self.content_network = content_network(c.image_shape, c.content_layer)

    def optimizer_variables(self, name):
        return (self.generator if name == "g_optimizer" else self.discriminator).trainable_variables

    def pretrained_parts(self) -> dict[str, dict]:
        """The trained networks training must hand in before fitting, as data: ``{part: what}``.
        The content network is the digit evaluator at this image's side, grey."""
        h, w = int(self.image_shape[0]), int(self.image_shape[1])
        return {"content_network": {"network": "digit_evaluator", "image_shape": [h, w, 1]}}

    def load_pretrained(self, part: str, network) -> None:
        """Take ``network``'s weights into ``part`` (layer by layer, by name)."""
        if part != "content_network":
            raise ValueError(f"SRGAN has no pretrained part {part!r} (it has {list(self.pretrained_parts())})")
        copy_weights_by_name(self.content_network, network)
        self._content_weights_in = True

    def fit(self, *args, **kwargs):
        # Without the evaluator's weights the content loss would compare random features.
        if not getattr(self, "_content_weights_in", False):
            raise ConfigError("SRGAN's content network has no trained weights: training must hand "
                              "them in first (gen_keras.eval.translation.hand_in_pretrained(model, "
                              "run_config), after compile_for_training)")
        return super().fit(*args, **kwargs)

    def features(self, images) -> tf.Tensor:
        """The content feature map of images in [-1, 1] (the evaluator takes [0, 1])."""
        return self.content_network((tf.cast(images, tf.float32) + 1.0) * 0.5, training=False)

    def terms(self, x, y, training: bool):
        c = self.config
        fake = self.generator(x, training=training)
        fake_logits = self.discriminator(fake, training=training)
        terms = {"content": tl.feature_content_loss(self.features(y), self.features(fake)),
                 "l1": tl.mean_absolute_error_per_example(y, fake),
                 "g_adv": tl.patch_generator_loss(fake_logits)}
        terms["g_loss"] = (c.content_weight * terms["content"] + c.pixel_weight * terms["l1"]
                           + c.adversarial_weight * terms["g_adv"])
        return fake, terms

    def discriminator_terms(self, x, y, fake, training: bool):  # x: unused (an unconditional D)
        real_logits = self.discriminator(y, training=training)
        fake_logits = self.discriminator(tf.stop_gradient(fake), training=training)
        return {"d_loss": tl.patch_discriminator_loss(real_logits, fake_logits),
                "d_real": tf.reshape(tf.sigmoid(real_logits), [-1]),
                "d_fake": tf.reshape(tf.sigmoid(fake_logits), [-1])}

    def train_step(self, data):
        return self.paired_adversarial_step(*data)

    def test_step(self, data):
        return self.paired_adversarial_test(*data)
