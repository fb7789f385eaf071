"""Conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"): the class
label conditions both G(z, y) and D(x, y), so sampling a chosen class works.

The networks are the DCGAN ones with labels (see ``dcgan_generator`` / ``dcgan_discriminator``):
G sees the one-hot label beside z and as planes on its first feature map; D sees a learned label
plane beside the image plus a projection term (Miyato & Koyama 2018). The fakes in each
discriminator step, and the generator step, use the labels of real images from the same batch,
so generated classes follow the data's class frequencies.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from gen_keras.models.dcgan import DCGAN, DCGANConfig
from gen_keras.models.registry import register_model


@dataclass
class ConditionalGANConfig(DCGANConfig):
    kind: str = "cgan"
    num_classes: int = 10

    conditional = True


@register_model("cgan", ConditionalGANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class ConditionalGAN(DCGAN):
    def generator_inputs(self, z, labels):
        if labels is None:
            raise ValueError(f"the conditional model {self.kind!r} needs labels (ints in "
                             f"[0, {self.config.num_classes})) to generate")
        return [z, labels]

    def discriminator_inputs(self, x, labels):
        return [x, labels]

    def generate(self, z, labels=None):
        """Images of class ``labels[i]`` for ``z[i]``; one int ``labels`` means the whole batch."""
        if labels is None:
            return super().generate(z, labels)  # raises: labels are required
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim == 0:
            labels = np.full([np.shape(z)[0]], labels)
        k = self.config.num_classes
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must be in [0, {k}); got values from {labels.min()} to "
                             f"{labels.max()}")
        return super().generate(z, labels.astype(np.int32))
