"""A deterministic convolutional autoencoder: x → z = f(x) → x_hat = g(z)."""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import losses
from gen_keras.config import ModelConfig
from gen_keras.errors import ConfigError
from gen_keras.models.base import Endpoint, GenerativeModel
from gen_keras.models.networks import TensorFunction, conv_decoder, conv_encoder
from gen_keras.models.registry import register_model


@dataclass
class AutoencoderConfig(ModelConfig):
    kind: str = "autoencoder"
    filters: int = 32
    hidden: int = 256
    reconstruction: str = "bce"  # bce (logits, [0,1] images) | mse

    def validate(self, prefix="model"):
        super().validate(prefix)
        if self.reconstruction not in ("bce", "mse"):
            raise ConfigError(f"{prefix}.reconstruction={self.reconstruction!r} is not one of "
                              "['bce', 'mse']")


@register_model("autoencoder", AutoencoderConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class Autoencoder(GenerativeModel):
    """Trains on the per-example reconstruction loss, averaged over the global batch."""

    tracker_names = ("loss", "reconstruction")
    # No prior over codes: ``generate`` decodes N(0, I) draws the model never trained on.
    has_prior = False

    def build_networks(self):
        c = self.config
        self.encoder = conv_encoder(c.image_shape, [c.latent_dim], filters=c.filters,
                                    hidden=c.hidden, out_names=["z"])
        self.decoder = conv_decoder(c.image_shape, c.latent_dim, filters=c.filters, hidden=c.hidden)

    def call(self, x, training=False):
        return self.decode(self.encoder(x, training=training), training=training)

    def encode(self, x, training=False):
        return self.encoder(x, training=training)

    def decode(self, z, training=False):
        """Images in [0, 1] (sigmoid of the decoder's logits for bce; clipped for mse)."""
        out = self.decoder(z, training=training)
        return keras.ops.sigmoid(out) if self.config.reconstruction == "bce" else out

    def generate(self, z, labels=None):
        return self.decode(z)

    def reconstruct(self, x, labels=None):
        return self.decode(self.encoder(x))

    def corrupt(self, x, training):
        """The input the encoder sees: x itself (the denoising autoencoder overrides this)."""
        return x

    def reconstruction_loss(self, x, x_in, training=False):
        """The loss of reconstructing ``x`` from the encoder input ``x_in``, per example."""
        return self.reconstruction_error(x, self.decoder(self.encoder(x_in, training=training),
                                                         training=training))

    def reconstruction_error(self, x, decoder_out):
        """Per example: binary cross-entropy from the decoder's logits, or the squared error."""
        if self.config.reconstruction == "bce":
            return losses.binary_crossentropy_per_example(x, decoder_out)
        return losses.squared_error_per_example(x, decoder_out)

    def train_step(self, data):
        x, _ = data
        with tf.GradientTape() as tape:
            per_example = self.reconstruction_loss(x, self.corrupt(x, True), training=True)
            loss = losses.average_over_global_batch(per_example, self.global_batch_size(x))
        self.apply_loss(tape, loss, self.trainable_variables)
        return self.update_trackers({"loss": per_example, "reconstruction": per_example})

    def test_step(self, data):
        x, _ = data
        per_example = self.reconstruction_loss(x, x)
        return self.update_trackers({"loss": per_example, "reconstruction": per_example})

    def score(self, x):
        """Per-example anomaly score: the reconstruction loss of the clean input."""
        return self.reconstruction_loss(x, x)

    def export_endpoints(self):
        """``generate`` (z → image, alias ``decode``), ``encode`` (x → z), ``reconstruct`` and
        ``score`` (x → the reconstruction loss of the clean input, as :meth:`score`)."""
        z = keras.Input((self.latent_dim,), name="z")
        x = keras.Input(self.image_shape, name="x")
        code = self.encoder(x)
        decoded = self.decoder(code)
        score = TensorFunction(self.reconstruction_error, "reconstruction_error")([x, decoded])
        return [Endpoint("generate", keras.Model(z, self._image_head(self.decoder(z)), name="generate"),
                         ["image"], aliases=["decode"]),
                Endpoint("encode", keras.Model(x, code, name="encode"), ["z"]),
                Endpoint("reconstruct", keras.Model(x, self._image_head(decoded), name="reconstruct"), ["image"]),
                Endpoint("score", keras.Model(x, score, name="score"), ["score"])]

    def _image_head(self, out):
        if self.config.reconstruction == "bce":
            return keras.layers.Activation("sigmoid", dtype="float32")(out)
        return out
