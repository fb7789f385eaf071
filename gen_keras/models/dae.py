"""The denoising autoencoder (Vincent et al. 2008, 2010): the encoder sees a corrupted copy
x~ ~ q(x~|x) of each training image and the loss asks the decoder for the CLEAN x.

The three corruptions of Vincent et al. 2010 ("Stacked Denoising Autoencoders", sec. 4.2):

- ``gaussian``: additive isotropic noise, x~ = x + sigma * eps, eps ~ N(0, I), sigma = amount
  (not clipped, so the corruption is exactly the Gaussian of the paper);
- ``masking``: a random fraction ``amount`` of the pixels is forced to the low end of the
  value range (0), the rest is kept;
- ``salt_and_pepper``: a random fraction ``amount`` of the pixels is set to the low or the high
  end of the value range (0 or 1) with probability 1/2 each.

Corruption happens in training only; evaluation, ``score`` and the export see clean inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras.errors import ConfigError
from gen_keras.models.autoencoder import Autoencoder, AutoencoderConfig
from gen_keras.models.registry import register_model

NOISE_KINDS = ("gaussian", "masking", "salt_and_pepper")


@dataclass
class DenoisingAutoencoderConfig(AutoencoderConfig):
    kind: str = "dae"
    noise: str = "gaussian"  # gaussian | masking | salt_and_pepper
    # gaussian: the noise std; masking / salt_and_pepper: the fraction of pixels corrupted
    noise_amount: float = 0.3

    def validate(self, prefix="model"):
        super().validate(prefix)
        if self.noise not in NOISE_KINDS:
            raise ConfigError(f"{prefix}.noise={self.noise!r} is not one of {list(NOISE_KINDS)}")
        if self.noise == "gaussian" and not self.noise_amount > 0:
            raise ConfigError(f"{prefix}.noise_amount={self.noise_amount} must be > 0 (the std "
                              "of the Gaussian noise)")
        if self.noise != "gaussian" and not 0 < self.noise_amount <= 1:
            raise ConfigError(f"{prefix}.noise_amount={self.noise_amount} must be in (0, 1] (the "
                              f"fraction of pixels {self.noise} corrupts)")


@register_model("dae", DenoisingAutoencoderConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class DenoisingAutoencoder(Autoencoder):
    """An :class:`Autoencoder` whose only change is :meth:`corrupt`."""

    def corrupt(self, x, training):
        """The encoder's input: a corrupted copy of ``x`` when ``training``, else ``x`` itself.

        Noise comes from the per-replica seeded draws of the base class, so replicas corrupt
        their shards differently and N replicas corrupt a global batch as one device does.
        """
        if not training:
            return x
        c = self.config
        lo, hi = self.value_range
        batch, shape = tf.shape(x)[0], list(self.image_shape)
        amount = tf.cast(c.noise_amount, x.dtype)
        if c.noise == "gaussian":
            return x + amount * tf.cast(self.replica_normal(batch, shape), x.dtype)
        u = tf.cast(self.replica_uniform(batch, shape), x.dtype)
        if c.noise == "masking":
            return tf.where(u < amount, tf.cast(lo, x.dtype), x)
        # One uniform draw decides both: u < amount/2 → pepper (lo), amount/2 <= u < amount → salt.
        salted = tf.where(u < amount / 2, tf.cast(lo, x.dtype), tf.cast(hi, x.dtype))
        return tf.where(u < amount, salted, x)

    def denoise(self, x):
        """The clean image the model infers from a (possibly noisy) input: decode(encode(x))."""
        return self.reconstruct(x)

    def export_endpoints(self):
        endpoints = super().export_endpoints()
        for ep in endpoints:
            if ep.name == "reconstruct":
                ep.aliases = [*ep.aliases, "denoise"]
        return endpoints


__all__ = ["DenoisingAutoencoder", "DenoisingAutoencoderConfig", "NOISE_KINDS"]
