"""A deterministic convolutional autoencoder: x → z = f(x) → x_hat = g(z)."""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import losses
from gen_keras.config import ConfigError, ModelConfig
from gen_keras.models.base import Endpoint, GenerativeModel
from gen_keras.models.networks import conv_decoder, conv_encoder
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
        out = self.decoder(self.encoder(x_in, training=training), training=training)
        if self.config.reconstruction == "bce":
            return losses.binary_crossentropy_per_example(x, out)
        return losses.squared_error_per_example(x, out)

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
        z = keras.Input((self.latent_dim,), name="z")
        x = keras.Input(self.image_shape, name="x")
        gen = keras.Model(z, self._image_head(self.decoder(z)), name="generate")
        enc = keras.Model(x, self.encoder(x), name="encode")
        rec = keras.Model(x, self._image_head(self.decoder(self.encoder(x))), name="reconstruct")
        return [Endpoint("generate", gen, ["image"], aliases=["decode"]),
                Endpoint("encode", enc, ["z"]),
                Endpoint("reconstruct", rec, ["image"])]

    def _image_head(self, out):
        if self.config.reconstruction == "bce":
            return keras.layers.Activation("sigmoid", dtype="float32")(out)
        return out
