"""A linear autoencoder: x → z = A x + a → x_hat = B z + b, trained on the squared error.

Baldi & Hornik 1989 ("Neural networks and principal component analysis: learning from
examples without local minima", Fact 3 and Theorem 1): for the squared error, every local
minimum is global, and at the global minimum the decoder's column space span(B) is the span of
the top-k eigenvectors of the covariance of the data, i.e. the top-k PCA subspace. With the
biases a and b the data need no centring: the optimal b makes the model fit x - mean(x), so the
subspace is that of the CENTRED covariance (the one PCA uses). The autoencoder learns the
subspace, not the individual components: any invertible k x k mixing C gives the same
reconstruction with B C^-1 and C A, so compare subspaces (principal angles), not vectors.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from gen_keras.config import ModelConfig
from gen_keras.errors import ConfigError
from gen_keras.models.autoencoder import Autoencoder
from gen_keras.models.registry import register_model


@dataclass
class LinearAutoencoderConfig(ModelConfig):
    kind: str = "linear_ae"
    latent_dim: int = 16

    # The squared error is what makes the optimum PCA (Baldi & Hornik 1989); a sigmoid/BCE
    # head would not be linear, so this is fixed rather than configurable.
    reconstruction: typing.ClassVar[str] = "mse"

    def validate(self, prefix="model"):
        super().validate(prefix)
        pixels = int(np.prod(self.image_shape))
        if self.latent_dim >= pixels:
            raise ConfigError(f"{prefix}.latent_dim={self.latent_dim} must be smaller than the "
                              f"{pixels} pixels of an image, or the linear autoencoder learns "
                              "the identity")


@register_model("linear_ae", LinearAutoencoderConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class LinearAutoencoder(Autoencoder):
    """An :class:`Autoencoder` with one dense (affine) layer each way on flattened images."""

    def build_networks(self):
        shape, k = tuple(self.config.image_shape), self.config.latent_dim
        x = keras.Input(shape, name="x")
        z = layers.Dense(k, dtype="float32", name="z")(layers.Flatten()(x))
        self.encoder = keras.Model(x, z, name="encoder")
        z_in = keras.Input((k,), name="z")
        flat = layers.Dense(int(np.prod(shape)), dtype="float32", name="x_hat")(z_in)
        self.decoder = keras.Model(z_in, layers.Reshape(shape)(flat), name="decoder")

    def decoder_basis(self) -> np.ndarray:
        """An orthonormal basis ``[pixels, k]`` of the decoder's column space span(B)."""
        kernel = np.asarray(self.decoder.get_layer("x_hat").kernel)  # [k, pixels]: x_hat = z B^T
        q, _ = np.linalg.qr(kernel.T)
        return q
