"""The variational autoencoder (Kingma & Welling 2014): Gaussian q(z|x), N(0, I) prior,
Bernoulli (logits) or Gaussian p(x|z), trained on -ELBO."""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import losses
from gen_keras.config import ModelConfig
from gen_keras.errors import ConfigError
from gen_keras.models.base import Endpoint, GenerativeModel
from gen_keras.models.networks import (TensorFunction, broadcast_decoder, conv_decoder, conv_encoder,
                                      mlp_decoder, mlp_encoder)
from gen_keras.models.registry import register_model


@dataclass
class VAEConfig(ModelConfig):
    kind: str = "vae"
    filters: int = 32
    hidden: int = 256
    likelihood: str = "bernoulli"  # bernoulli (decoder gives logits) | gaussian (decoder gives means)
    gaussian_sigma: float = 0.1  # fixed decoder std for the gaussian likelihood
    # Bernoulli only: "dynamic" draws a fresh binarization of each training batch (x ~ Bern(pixel)),
    # the convention behind the published MNIST likelihoods; "none" trains on grey levels.
    binarize: str = "dynamic"
    # "conv" (transposed convolutions) | "mlp" (`decoder_layers` dense layers of `hidden` units):
    # ~50x cheaper per call, which makes the k = 5000 importance-sampled NLL affordable on a CPU
    # | "broadcast" (a spatial broadcast decoder: the code and each cell's coordinates through
    # `decoder_layers` per-cell layers of `broadcast_units`, on a `broadcast_grid`-square lattice
    # of pixel blocks; networks.broadcast_decoder).
    decoder: str = "conv"
    decoder_layers: int = 2
    broadcast_grid: int = 16
    broadcast_units: int = 64
    # "conv" (strided convolutions + one dense layer of `hidden`) | "mlp" (`encoder_layers` dense
    # layers of `hidden` units on the flattened image; Chen et al. 2018's dSprites encoder is
    # 4096-1200-1200-z): on a CPU a dense layer runs near the matmul peak, convolutions do not.
    encoder: str = "conv"
    encoder_layers: int = 2

    def validate(self, prefix="model"):
        super().validate(prefix)
        for part, kinds in (("encoder", ["conv", "mlp"]), ("decoder", ["conv", "mlp", "broadcast"])):
            if getattr(self, part) not in kinds:
                raise ConfigError(f"{prefix}.{part}={getattr(self, part)!r} is not one of {kinds}")
            if getattr(self, f"{part}_layers") < 1:
                raise ConfigError(f"{prefix}.{part}_layers={getattr(self, f'{part}_layers')} must be >= 1")
        if self.decoder == "broadcast":
            if self.broadcast_units < 1:
                raise ConfigError(f"{prefix}.broadcast_units={self.broadcast_units} must be >= 1")
            height, width = self.image_shape[0], self.image_shape[1]
            if self.broadcast_grid < 1 or height % self.broadcast_grid or width % self.broadcast_grid:
                raise ConfigError(f"{prefix}.broadcast_grid={self.broadcast_grid} must divide the "
                                  f"image's height and width ({height} x {width})")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ConfigError(f"{prefix}.likelihood={self.likelihood!r} is not one of "
                              "['bernoulli', 'gaussian']")
        if self.binarize not in ("none", "dynamic"):
            raise ConfigError(f"{prefix}.binarize={self.binarize!r} is not one of ['none', 'dynamic']")
        if self.gaussian_sigma <= 0:
            raise ConfigError(f"{prefix}.gaussian_sigma={self.gaussian_sigma} must be > 0")


@register_model("vae", VAEConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class VAE(GenerativeModel):
    """Subclasses change the objective through :meth:`kl_weight_and_penalty` only."""

    tracker_names = ("loss", "reconstruction", "kl")

    def build_networks(self):
        self.encoder = self.build_encoder()
        self.decoder = self.build_decoder()

    # -- networks -------------------------------------------------------------------------------
    def label_count(self) -> int:
        """Labels fed to encoder and decoder as one-hot inputs (0: unconditional)."""
        return 0

    def build_encoder(self):
        c = self.config
        if c.encoder == "mlp":
            return mlp_encoder(c.image_shape, [c.latent_dim, c.latent_dim], hidden=c.hidden,
                               num_layers=c.encoder_layers, out_names=["mean", "log_var"],
                               label_count=self.label_count())
        return conv_encoder(c.image_shape, [c.latent_dim, c.latent_dim], filters=c.filters,
                            hidden=c.hidden, out_names=["mean", "log_var"],
                            label_count=self.label_count())

    def build_decoder(self):
        c = self.config
        if c.decoder == "mlp":
            return mlp_decoder(c.image_shape, c.latent_dim, hidden=c.hidden,
                               num_layers=c.decoder_layers, label_count=self.label_count())
        if c.decoder == "broadcast":
            return broadcast_decoder(c.image_shape, c.latent_dim, units=c.broadcast_units,
                                     grid=c.broadcast_grid, num_layers=c.decoder_layers,
                                     label_count=self.label_count())
        return conv_decoder(c.image_shape, c.latent_dim, filters=c.filters, hidden=c.hidden,
                            label_count=self.label_count())

    def encoder_inputs(self, x, labels):
        return x

    def decoder_inputs(self, z, labels):
        return z

    # -- the model ------------------------------------------------------------------------------
    def encode(self, x, labels=None, training=False):
        """(mean, log_var) of q(z|x)."""
        mean, log_var = self.encoder(self.encoder_inputs(x, labels), training=training)
        return mean, log_var

    def reparameterize(self, mean, log_var):
        """z = mean + sigma * eps, eps ~ N(0, I) (per-replica seeded noise)."""
        eps = self.replica_normal(tf.shape(mean)[0], [self.latent_dim])
        return mean + tf.exp(0.5 * log_var) * tf.cast(eps, mean.dtype)

    def decoder_output(self, z, labels=None, training=False):
        """Logits (Bernoulli) or means (Gaussian) of p(x|z)."""
        return self.decoder(self.decoder_inputs(z, labels), training=training)

    def decode(self, z, labels=None, training=False):
        """Images in [0, 1]: the Bernoulli means sigmoid(logits), or the Gaussian means."""
        return self._image_head(self.decoder_output(z, labels, training))

    def generate(self, z, labels=None):
        return self.decode(z, labels)

    def reconstruct(self, x, labels=None):
        """The decoded posterior mean: a deterministic reconstruction."""
        mean, _ = self.encode(x, labels)
        return self.decode(mean, labels)

    def call(self, x, training=False):
        mean, _ = self.encode(x, training=training)
        return self.decode(mean, training=training)

    def log_likelihood(self, x, decoder_out):
        """log p(x|z) per example."""
        if self.config.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(x, decoder_out)
        return losses.gaussian_log_likelihood(x, decoder_out, math.log(self.config.gaussian_sigma))

    def kl_weight_and_penalty(self, kl):
        """The objective's KL part per example: beta * KL for the VAE (beta = 1).

        Beta-VAE variants override this (KL weight, warm-up, capacity).
        """
        return kl

    def loss_terms(self, x, labels=None, training=False):
        """Per-example ``{"loss", "reconstruction", "kl"}`` (nats); loss is the objective."""
        mean, log_var = self.encode(x, labels, training=training)
        z = self.reparameterize(mean, log_var)
        reconstruction = -self.log_likelihood(x, self.decoder_output(z, labels, training))
        kl = losses.kl_divergence(mean, log_var)
        return {"loss": reconstruction + self.kl_weight_and_penalty(kl),
                "reconstruction": reconstruction, "kl": kl}

    def binarize_input(self, x):
        """A fresh stochastic binarization of a training batch (Bernoulli + 'dynamic' only)."""
        if self.config.likelihood != "bernoulli" or self.config.binarize != "dynamic":
            return x
        u = self.replica_uniform(tf.shape(x)[0], list(self.image_shape))
        return tf.cast(u < x, x.dtype)

    def train_step(self, data):
        x, labels = data
        x = self.binarize_input(x)
        with tf.GradientTape() as tape:
            terms = self.loss_terms(x, labels, training=True)
            loss = losses.average_over_global_batch(terms["loss"], self.global_batch_size(x))
        self.apply_loss(tape, loss, self.trainable_variables)
        return self.update_trackers(terms)

    def test_step(self, data):
        x, labels = data
        return self.update_trackers(self.loss_terms(x, labels, training=False))

    def score(self, x, labels=None):
        """Per-example anomaly score: the single-sample negative ELBO."""
        terms = self.loss_terms(x, labels)
        return terms["reconstruction"] + terms["kl"]

    # -- export ---------------------------------------------------------------------------------
    def _image_head(self, out):
        if self.config.likelihood == "bernoulli":
            return keras.layers.Activation("sigmoid", dtype="float32")(out) if isinstance(
                out, keras.KerasTensor) else keras.ops.sigmoid(out)
        return out

    def export_endpoints(self):
        """``generate`` (z [, label] → image, alias ``decode``), ``encode`` (x [, label] → mean,
        log_var), ``reconstruct`` (x [, label] → the decoded posterior mean) and ``score`` (x, eps
        [, label] → the single-sample negative ELBO with z = mean + sigma * eps, the anomaly score
        of :meth:`score` with the noise given)."""
        z = keras.Input((self.latent_dim,), name="z")
        x = keras.Input(self.image_shape, name="x")
        eps = keras.Input((self.latent_dim,), name="eps")
        y = [keras.Input((), dtype="int32", name="label")] if self.label_count() else []

        def net(t):  # a network's input: the tensor, with the label when conditional
            return [t, *y] if y else t

        mean, log_var = self.encoder(net(x))
        z_eps = TensorFunction(lambda m, lv, e: m + tf.exp(0.5 * lv) * e, "reparameterize")([mean, log_var, eps])
        score = TensorFunction(lambda x_, out, m, lv: -self.log_likelihood(x_, out) + losses.kl_divergence(m, lv),
                               "negative_elbo")([x, self.decoder(net(z_eps)), mean, log_var])
        return [Endpoint("generate", keras.Model(net(z), self._image_head(self.decoder(net(z))), name="generate"),
                         ["image"], aliases=["decode"]),
                Endpoint("encode", keras.Model(net(x), [mean, log_var], name="encode"), ["mean", "log_var"]),
                Endpoint("reconstruct", keras.Model(net(x), self._image_head(self.decoder(net(mean))),
                                                    name="reconstruct"), ["image"]),
                Endpoint("score", keras.Model([x, eps, *y], score, name="score"), ["score"])]
