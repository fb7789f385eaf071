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

Two schedules (both off by default; ``model.warmup_steps``, ``model.capacity_*``): a linear KL
warm-up of the whole penalty (Bowman et al. 2016), and capacity control (Burgess et al. 2018):
the penalty becomes ``(beta - 1) * tc + capacity_weight * |KL(q(z|x) || p(z)) - C(t)|`` with the
closed-form KL and C(t) rising linearly to ``capacity_max`` nats
(:func:`gen_keras.disentanglement_losses.capacity_tc_penalty`) — with ``capacity_weight = 1``
and ``C = 0`` that is beta-TCVAE's own ``KL + (beta - 1) * TC`` (alpha = gamma = 1).

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
    # The minibatch estimator of log q(z) and log q(z_d) (Chen et al. 2018, appendix C):
    # "mws" minibatch weighted sampling, every member weighted 1/(N M); "mss" minibatch
    # stratified sampling, the own example 1/N and the others as the rest of the data.
    tc_estimator: str = "mws"
    # > 0: the whole KL part (the three weighted terms) is multiplied by min(1, t / warmup_steps)
    # at optimizer step t, the KL warm-up of Bowman et al. 2016 (as the beta_vae kind's).
    warmup_steps: int = 0
    # Capacity control (Burgess et al. 2018, eq. 8) on top of the TC penalty: with
    # capacity_max > 0 the KL part becomes (beta - 1) * tc + capacity_weight * |KL - C(t)|, the
    # target C(t) rising linearly 0 -> capacity_max nats over capacity_steps (alpha = gamma = 1).
    capacity_max: float = 0.0
    capacity_steps: int = 0
    capacity_weight: float = 1.0

    def validate(self, prefix="model"):
        super().validate(prefix)
        for name in ("alpha", "beta", "gamma"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"{prefix}.warmup_steps={self.warmup_steps} must be >= 0")
        if not self.capacity_max >= 0 or self.capacity_steps < 0 or not self.capacity_weight > 0:
            raise ConfigError(f"{prefix}.capacity_max={self.capacity_max}, capacity_steps="
                              f"{self.capacity_steps}, capacity_weight={self.capacity_weight}: "
                              "need capacity_max >= 0, capacity_steps >= 0, capacity_weight > 0")
        if self.capacity_max > 0 and (self.alpha != 1.0 or self.gamma != 1.0):
            raise ConfigError(f"{prefix}.capacity_max={self.capacity_max} replaces the mi and dim_kl "
                              f"weights by the capacity term: leave alpha and gamma at 1 (got "
                              f"{self.alpha}, {self.gamma})")
        if self.tc_estimator not in dl.ESTIMATORS:
            raise ConfigError(f"{prefix}.tc_estimator={self.tc_estimator!r}: one of "
                              f"{', '.join(sorted(dl.ESTIMATORS))}")
        if self.dataset_size < 0:
            raise ConfigError(f"{prefix}.dataset_size={self.dataset_size} must be >= 0 "
                              "(0: the training pipeline fills in the number of training images)")

    def validate_run(self, run) -> None:
        """MSS counts a minibatch's other members as the rest of the data set, so a data set
        smaller than a batch has no weights: an N set below the batch size is refused here,
        before anything is read (an N filled from the data cannot be: a batch larger than the
        data is refused when the data is opened). The global batch is checked, which is
        stricter than each replica's share needs."""
        if self.tc_estimator == "mss" and 0 < self.dataset_size < run.train.batch_size:
            raise ConfigError(f"model.tc_estimator=mss needs at least train.batch_size="
                              f"{run.train.batch_size} training images, and model.dataset_size is "
                              f"{self.dataset_size}: lower the batch size or use tc_estimator=mws")


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

    def schedule(self):
        """``(w, C)`` at the optimizer's step t: the warm-up weight ``min(1, t / warmup_steps)``
        and the capacity target C(t) (nats), by :func:`~gen_keras.models.beta_vae.kl_schedule`. A
        model without an optimizer (loaded for inference) is at the end of its schedule."""
        c = self.config
        optimizer = getattr(self, "optimizer", None)
        step = max(c.warmup_steps, c.capacity_steps) if optimizer is None else optimizer.iterations
        return kl_schedule(step, 1.0, c.warmup_steps, c.capacity_max, c.capacity_steps)

    def loss_terms(self, x, labels=None, training=False):
        """Per-example ``{"loss", "reconstruction", "kl", "mi", "tc", "dim_kl"}`` (nats)."""
        c = self.config
        mean, log_var = self.encode(x, labels, training=training)
        z = self.reparameterize(mean, log_var)
        reconstruction = -self.log_likelihood(x, self.decoder_output(z, labels, training))
        parts = dl.tc_decomposition(z, mean, log_var, c.dataset_size, c.tc_estimator)
        kl = losses.kl_divergence(mean, log_var)
        weight, capacity = self.schedule()
        if c.capacity_max > 0:
            penalty = dl.capacity_tc_penalty(parts["tc"], kl, c.beta, capacity, c.capacity_weight)
        else:
            penalty = dl.beta_tcvae_penalty(parts, c.alpha, c.beta, c.gamma)
        return {"loss": reconstruction + weight * penalty, "reconstruction": reconstruction, "kl": kl, **parts}
