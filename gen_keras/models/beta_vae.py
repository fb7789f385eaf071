"""The beta-VAE (Higgins et al. 2017) and its capacity-controlled variant (Burgess et al. 2018).

Per example, with KL = KL(q(z|x) || N(0, I)) and the optimizer step t:

- beta-VAE (Higgins et al. 2017, eq. 4): ``-E_q[log p(x|z)] + w(t) * KL``;
- capacity (Burgess et al. 2018, "Understanding disentangling in beta-VAE", eq. 8):
  ``-E_q[log p(x|z)] + w(t) * |KL - C(t)|``, the target capacity C(t) rising linearly from 0
  to ``capacity_max`` nats over ``capacity_steps`` steps;

where ``w(t) = beta * min(1, t / warmup_steps)`` is the linear KL warm-up (Bowman et al. 2016,
sec. 3.1; Sonderby et al. 2016) and ``w = beta`` without warm-up. The paper's gamma is ``beta``.

The step t is the optimizer's ``iterations`` (the number of updates applied before this one),
so the schedule is saved with the model and restored from epoch checkpoints, which both carry
the optimizer's state. A model without an optimizer (loaded for inference, never compiled)
reports the end of the schedule: ``w = beta`` and ``C = capacity_max``.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras.errors import ConfigError
from gen_keras.models.registry import register_model
from gen_keras.models.vae import VAE, VAEConfig


@dataclass
class BetaVAEConfig(VAEConfig):
    kind: str = "beta_vae"
    beta: float = 4.0  # the KL weight (Higgins et al.), gamma in the capacity objective
    warmup_steps: int = 0  # > 0: the KL weight rises linearly 0 → beta over this many steps
    capacity_max: float = 0.0  # > 0 selects the capacity objective |KL - C| (nats)
    capacity_steps: int = 0  # C rises linearly 0 → capacity_max over this many steps (0: at once)

    def validate(self, prefix="model"):
        super().validate(prefix)
        if not self.beta >= 0:
            raise ConfigError(f"{prefix}.beta={self.beta} must be >= 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"{prefix}.warmup_steps={self.warmup_steps} must be >= 0")
        if not self.capacity_max >= 0:
            raise ConfigError(f"{prefix}.capacity_max={self.capacity_max} must be >= 0 (nats)")
        if self.capacity_steps < 0:
            raise ConfigError(f"{prefix}.capacity_steps={self.capacity_steps} must be >= 0")
        if self.capacity_steps and not self.capacity_max:
            raise ConfigError(f"{prefix}.capacity_steps={self.capacity_steps} has no effect "
                              "without model.capacity_max > 0")


def kl_schedule(step, beta: float, warmup_steps: int = 0, capacity_max: float = 0.0,
                capacity_steps: int = 0):
    """``(w, C)`` at optimizer step ``step``: the KL weight and the target capacity (nats).

    Worked example: half-way through a 100-step warm-up, ``kl_schedule(50, beta=4.0,
    warmup_steps=100)`` gives w = 2.0, C = 0.0; ``kl_schedule(30, 1.0, capacity_max=25.0,
    capacity_steps=100)`` gives w = 1.0, C = 7.5 nats. Both are float32 scalar tensors.
    """
    step = tf.cast(step, tf.float32)

    def ramp(n):
        return tf.minimum(1.0, step / float(n)) if n > 0 else tf.constant(1.0)

    return beta * ramp(warmup_steps), capacity_max * ramp(capacity_steps)


@register_model("beta_vae", BetaVAEConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class BetaVAE(VAE):
    """A :class:`VAE` whose KL term is weighted, warmed up, or capacity-controlled."""

    def schedule_step(self):
        """The optimizer's update count, or None without an optimizer (end of schedule)."""
        optimizer = getattr(self, "optimizer", None)
        return None if optimizer is None else optimizer.iterations

    def kl_weight_and_penalty(self, kl):
        """``w(t) * KL`` or, with ``capacity_max > 0``, ``w(t) * |KL - C(t)|`` (per example)."""
        c = self.config
        step = self.schedule_step()
        if step is None:  # inference: the end of the schedule
            step = max(c.warmup_steps, c.capacity_steps)
        weight, capacity = kl_schedule(step, c.beta, c.warmup_steps, c.capacity_max,
                                       c.capacity_steps)
        kl = tf.cast(kl, tf.float32)
        if c.capacity_max > 0:
            return weight * tf.abs(kl - capacity)
        return weight * kl
