"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising"): the VAE objective plus gamma
times the total correlation of the aggregate posterior, estimated by a discriminator on codes.

Per example, with D(z) the discriminator's probability that a code comes from q(z) rather than
from the product of its marginals (eq. 2 and 3 of the paper):

    VAE:            -log p(x|z) + KL(q(z|x) || N(0, I)) + gamma * log(D(z) / (1 - D(z)))
    discriminator:  -log D(z) - log(1 - D(z_perm))

``z_perm`` is a batch of codes with every latent dimension shuffled independently across the
batch (:func:`gen_keras.disentanglement_losses.permute_dims`): samples of prod_d q(z_d).

One ``train_step`` (the paper's Algorithm 2) on a per-replica batch of b images: the VAE step on
all b (its gradient reaches the encoder through D, whose weights it does not change), then one
discriminator step on the same step's codes, stopped from the VAE's graph: the first b // 2 as
samples of q(z), the other b // 2 permuted. The two halves are independent samples, as the
paper's two minibatches are, and the data are read once per epoch. The permutation is drawn
per replica (from ``replica_uniform``): under a distribution strategy every replica shuffles its
own half-batch, so the permuted codes mix examples of one replica only.

The discriminator is an MLP of ``discriminator_layers`` dense layers of ``discriminator_units``
units with leaky ReLU (slope 0.2) and one logit output — the paper uses 6 layers of 1000 units
and two softmax outputs (the same thing: log D / (1 - D) = l0 - l1); 4 x 256 here (~0.2 M
weights instead of ~5 M) keeps the step dominated by the conv VAE on a CPU and is ample for a
10-dimensional code. It has its OWN optimizer (``d_optimizer``, Adam with the paper's
lr 1e-4, beta_1 0.5, beta_2 0.9); the VAE's is the model's ``optimizer`` (the ``train``
section). Both are in ``optimizers_to_track()`` (epoch checkpoints) and in the compile config
and the saved model (``load_model`` restores both, moments and iteration counts included).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import disentanglement_losses as dl
from gen_keras import losses
from gen_keras.errors import ConfigError
from gen_keras.models.base import make_optimizer
from gen_keras.models.registry import register_model
from gen_keras.models.vae import VAE, VAEConfig


@dataclass
class FactorVAEConfig(VAEConfig):
    kind: str = "factor_vae"
    # The TC weight. Kim & Mnih sweep gamma in {10, 20, 30, 40, 50, 100} on dSprites (fig. 4),
    # as does Locatello et al. 2019's grid; 40 sits where the paper's trade-off curve flattens.
    gamma: float = 40.0
    discriminator_layers: int = 4
    discriminator_units: int = 256
    d_learning_rate: float = 1e-4
    d_beta_1: float = 0.5
    d_beta_2: float = 0.9

    def validate(self, prefix="model"):
        super().validate(prefix)
        if not self.gamma >= 0:
            raise ConfigError(f"{prefix}.gamma={self.gamma} must be >= 0")
        for name in ("discriminator_layers", "discriminator_units"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 1")
        if self.d_learning_rate <= 0:
            raise ConfigError(f"{prefix}.d_learning_rate={self.d_learning_rate} must be > 0")
        for name in ("d_beta_1", "d_beta_2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be in [0, 1)")


def tc_discriminator(latent_dim: int, layers: int, units: int, name: str = "discriminator") -> keras.Model:
    """Code ``z [latent_dim]`` → ``layers`` x (dense ``units``, leaky ReLU 0.2) → one logit."""
    z = keras.Input((latent_dim,), name="z")
    h = z
    for i in range(layers):
        h = keras.layers.Dense(units, name=f"dense{i}")(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    return keras.Model(z, keras.layers.Dense(1, dtype="float32", name="logit")(h), name=name)


@register_model("factor_vae", FactorVAEConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class FactorVAE(VAE):
    """A :class:`VAE` with a total-correlation discriminator (see the module docstring).

    Reported: ``loss`` (the VAE's objective), ``reconstruction``, ``kl``, ``tc`` (the density-ratio
    estimate, mean logit of D on the data's codes) and ``d_loss`` (the discriminator's
    cross-entropy; 2 log 2 = 1.386 is chance).
    """

    tracker_names = ("loss", "reconstruction", "kl", "tc", "d_loss")

    def build_networks(self):
        super().build_networks()
        c = self.config
        self.discriminator = tc_discriminator(c.latent_dim, c.discriminator_layers, c.discriminator_units)

    @property
    def vae_variables(self):
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    # -- the objective ----------------------------------------------------------------------------
    def discriminate(self, z, training=False):
        """D's logits ``[batch]`` (float32) for codes ``z``."""
        return tf.reshape(tf.cast(self.discriminator(z, training=training), tf.float32), [-1])

    def loss_terms(self, x, labels=None, training=False):
        """Per-example ``{"loss", "reconstruction", "kl", "tc"}`` (nats)."""
        terms, _ = self.terms_and_codes(x, labels, training)
        return terms

    def terms_and_codes(self, x, labels=None, training=False):
        """The VAE's per-example terms and the sampled codes z they were computed from."""
        mean, log_var = self.encode(x, labels, training=training)
        z = self.reparameterize(mean, log_var)
        reconstruction = -self.log_likelihood(x, self.decoder_output(z, labels, training))
        kl = losses.kl_divergence(mean, log_var)
        tc = dl.factorvae_total_correlation(self.discriminate(z, training))
        return {"loss": reconstruction + kl + self.config.gamma * tc, "reconstruction": reconstruction,
                "kl": kl, "tc": tc}, z

    def discriminator_terms(self, z):
        """``d_loss`` per pair on codes ``z`` (stopped): the first half as samples of q(z), the
        second half permuted dimension-wise (per-replica noise)."""
        z = tf.stop_gradient(tf.cast(z, tf.float32))
        half = tf.shape(z)[0] // 2
        permuted = dl.permute_dims(z[half:2 * half], self.replica_uniform(half, [self.latent_dim]))
        return dl.factorvae_discriminator_loss(self.discriminate(z[:half], True),
                                               self.discriminate(permuted, True))

    def train_step(self, data):
        x, labels = data
        x = self.binarize_input(x)
        with tf.GradientTape() as tape:
            terms, z = self.terms_and_codes(x, labels, training=True)
            loss = losses.average_over_global_batch(terms["loss"], self.global_batch_size(x))
        self.apply_loss(tape, loss, self.vae_variables)
        with tf.GradientTape() as tape:
            d_loss = self.discriminator_terms(z)
            d_mean = losses.average_over_global_batch(d_loss, self.global_batch_size(d_loss))
        self.apply_loss(tape, d_mean, self.discriminator.trainable_variables, self.d_optimizer)
        return self.update_trackers({**terms, "d_loss": d_loss})

    def test_step(self, data):
        x, labels = data
        terms, z = self.terms_and_codes(x, labels, training=False)
        return self.update_trackers({**terms, "d_loss": self.discriminator_terms(z)})

    # -- two optimizers ---------------------------------------------------------------------------
    def compile(self, optimizer="adam", d_optimizer=None, **kwargs):
        """``optimizer``: the VAE's (encoder + decoder); ``d_optimizer``: the discriminator's
        (default: Adam with the config's ``d_*`` settings). Both are built here, on their own
        variables, so create the model and call this inside the strategy scope."""
        c = self.config
        super().compile(optimizer=optimizer, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(
            c.d_learning_rate, beta_1=c.d_beta_1, beta_2=c.d_beta_2, name="d_adam")
        self.optimizer.build(self.vae_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self._factor_compile_kwargs = {k: v for k, v in kwargs.items()
                                       if k in ("jit_compile", "steps_per_execution", "run_eagerly")}

    def get_compile_config(self):
        if not getattr(self, "compiled", False) or not hasattr(self, "d_optimizer"):
            return {}
        return {"optimizer": keras.optimizers.serialize(self.optimizer),
                "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
                **self._factor_compile_kwargs}

    def compile_from_config(self, config):
        config = dict(config)
        self.compile(optimizer=keras.optimizers.deserialize(config.pop("optimizer")),
                     d_optimizer=keras.optimizers.deserialize(config.pop("d_optimizer")), **config)

    def compile_for_training(self, plan) -> None:
        """The VAE's optimizer from the ``train`` section, the discriminator's from the model
        config's ``d_*`` fields (``train.optimizer`` and ``train.lr_scaling`` apply to both)."""
        c = self.config
        self.vector_metrics = plan.vector_metrics
        self.compile(optimizer=make_optimizer(plan, self.precision),
                     d_optimizer=make_optimizer(plan, self.precision, learning_rate=c.d_learning_rate,
                                                beta_1=c.d_beta_1, beta_2=c.d_beta_2),
                     jit_compile=plan.train.jit_compile, steps_per_execution=plan.steps_per_execution)

    def optimizers_to_track(self) -> dict:
        return {"optimizer": self.optimizer, "d_optimizer": self.d_optimizer}
