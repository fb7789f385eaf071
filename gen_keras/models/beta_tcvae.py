"""beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in
Variational Autoencoders"): the VAE's KL term split into index-code mutual information, total
correlation and dimension-wise KL, the total correlation weighted by beta. Per example:

    -log p(x|z) + alpha * (log q(z|x) - log q(z))                      index-code MI
                + beta  * (log q(z) - sum_d log q(z_d))                total correlation
                + gamma * (sum_d log q(z_d) - log p(z))                dimension-wise KL

with ``log q(z)`` and ``sum_d log q(z_d)`` estimated over the minibatch by minibatch weighted
sampling (:func:`gen_keras.disentanglement_losses.mws_log_densities`), which needs N, the number
of training examples: ``model.dataset_size``. Left at 0 in a config, the training pipeline
(:func:`gen_keras.training.train`) fills it with the number of training images the run reads
(after ``data.limit_train``) before the model is built, so it is saved with the model and logged
as the param ``model.dataset_size``; building the model with 0 is refused.

Under a distribution strategy each replica estimates q(z) from its own share of the batch
(M = the per-replica batch): the objective then differs slightly from one device's on the same
global batch, as it does for any change of batch size.

Networks, likelihood (Bernoulli logits for binary sets) and everything else are the VAE's.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from gen_keras import disentanglement_losses as dl
from gen_keras import losses
from gen_keras.errors import ConfigError
from gen_keras.models.beta_vae import kl_schedule
from gen_keras.models.registry import register_model
from gen_keras.models.vae import VAE, VAEConfig


@dataclass
class BetaTCVAEConfig(VAEConfig):
    kind: str = "beta_tcvae"
    # Chen et al. keep alpha = gamma = 1 and vary beta; 6 is the middle of the 1-10 range of
    # their dSprites sweep and of the beta-TCVAE grid of Locatello et al. 2019 ({1,2,4,6,8,10}).
    alpha: float = 1.0  # index-code mutual information
    beta: float = 6.0  # total correlation
    gamma: float = 1.0  # dimension-wise KL
    # N of the minibatch weighted sampling estimator. 0 = filled by the training pipeline with
    # the number of training images; set it yourself when building the model outside it.
    dataset_size: int = 0
    # > 0: the whole KL part (the three weighted terms) is multiplied by min(1, t / warmup_steps)
    # at optimizer step t, the KL warm-up of Bowman et al. 2016 (as the beta_vae kind's).
    warmup_steps: int = 0

    def validate(self, prefix="model"):
        super().validate(prefix)
        for name in ("alpha", "beta", "gamma"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"{prefix}.warmup_steps={self.warmup_steps} must be >= 0")
        if self.dataset_size < 0:
            raise ConfigError(f"{prefix}.dataset_size={self.dataset_size} must be >= 0 "
                              "(0: the training pipeline fills in the number of training images)")


@register_model("beta_tcvae", BetaTCVAEConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class BetaTCVAE(VAE):
    """A :class:`VAE` trained on the TC-decomposed objective. Reports the three KL parts
    (``mi``, ``tc``, ``dim_kl``; batch means are the estimates) beside the closed-form ``kl``."""

    tracker_names = ("loss", "reconstruction", "kl", "mi", "tc", "dim_kl")

    def __init__(self, config=None, *args, **kwargs):
        size = config.get("dataset_size", 0) if isinstance(config, dict) else config.dataset_size
        if size < 1:
            raise ConfigError(
                f"model.dataset_size={size}: beta_tcvae's minibatch weighted sampling needs the "
                "number of training images N. gen_keras.training.train fills it from the data "
                "when it is 0; set model.dataset_size=N when building the model yourself")
        super().__init__(config, *args, **kwargs)

    def warmup_weight(self):
        """``min(1, t / warmup_steps)`` at the optimizer's step t (1 without an optimizer: a
        model loaded for inference is at the end of its schedule)."""
        optimizer = getattr(self, "optimizer", None)
        step = self.config.warmup_steps if optimizer is None else optimizer.iterations
        return kl_schedule(step, 1.0, self.config.warmup_steps)[0]

    def loss_terms(self, x, labels=None, training=False):
        """Per-example ``{"loss", "reconstruction", "kl", "mi", "tc", "dim_kl"}`` (nats)."""
        c = self.config
        mean, log_var = self.encode(x, labels, training=training)
        z = self.reparameterize(mean, log_var)
        reconstruction = -self.log_likelihood(x, self.decoder_output(z, labels, training))
        parts = dl.tc_decomposition(z, mean, log_var, c.dataset_size)
        penalty = dl.beta_tcvae_penalty(parts, c.alpha, c.beta, c.gamma)
        if c.warmup_steps:
            penalty = self.warmup_weight() * penalty
        return {"loss": reconstruction + penalty,
                "reconstruction": reconstruction, "kl": losses.kl_divergence(mean, log_var), **parts}
