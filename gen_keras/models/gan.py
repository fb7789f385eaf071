"""The textbook GAN (Goodfellow et al. 2014, "Generative Adversarial Nets"): dense G and D,
k discriminator steps per generator step, each on its own noise (``model.d_steps``).

LeakyReLU hidden layers (the paper used maxout and dropout; neither is needed at this size),
tanh output. No batch norm, so every example is independent of the rest of its batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers

from gen_keras.errors import ConfigError
from gen_keras.models.adversarial import AdversarialConfig, AdversarialModel
from gen_keras.models.registry import register_model


@dataclass
class GANConfig(AdversarialConfig):
    kind: str = "gan"
    g_hidden: list[int] = field(default_factory=lambda: [256, 512])
    d_hidden: list[int] = field(default_factory=lambda: [512, 256])

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        for name in ("g_hidden", "d_hidden"):
            units = getattr(self, name)
            if not units or any(u < 1 for u in units):
                raise ConfigError(f"{prefix}.{name}={units} must be a non-empty list of sizes >= 1")


def dense_generator(image_shape, latent_dim: int, hidden: list[int], name="generator") -> keras.Model:
    z_in = keras.Input((latent_dim,), name="z")
    h = z_in
    for i, units in enumerate(hidden):
        h = layers.LeakyReLU(0.2)(layers.Dense(units, name=f"hidden{i}")(h))
    h = layers.Dense(int(np.prod(image_shape)), activation="tanh", dtype="float32", name="pixels")(h)
    return keras.Model(z_in, layers.Reshape(tuple(image_shape), dtype="float32", name="image")(h),
                       name=name)


def dense_discriminator(image_shape, hidden: list[int], name="discriminator") -> keras.Model:
    x_in = keras.Input(tuple(image_shape), name="x")
    h = layers.Flatten()(x_in)
    for i, units in enumerate(hidden):
        h = layers.LeakyReLU(0.2)(layers.Dense(units, name=f"hidden{i}")(h))
    return keras.Model(x_in, layers.Dense(1, dtype="float32", name="score")(h), name=name)


@register_model("gan", GANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class GAN(AdversarialModel):
    def build_generator(self, name):
        c = self.config
        return dense_generator(c.image_shape, c.latent_dim, c.g_hidden, name=name)

    def build_discriminator(self):
        c = self.config
        return dense_discriminator(c.image_shape, c.d_hidden)
