"""WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"): a critic without a
sigmoid, trained ``n_critic = 5`` times per generator step on the Wasserstein loss plus
lambda = 10 times the gradient penalty at random interpolates (weight ~ Uniform[0, 1], safe norm;
see ``losses.gradient_penalty``), Adam with lr 1e-4, beta_1 = 0, beta_2 = 0.9 (their Algorithm 1).

The networks are DCGAN's, with layer norm instead of batch norm in the critic (paper sec. 4:
batch norm would make the penalized per-example gradients depend on the rest of the batch).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from gen_keras.errors import ConfigError
from gen_keras.models.dcgan import DCGAN, DCGANConfig
from gen_keras.models.registry import register_model


@dataclass
class WGANGPConfig(DCGANConfig):
    kind: str = "wgan_gp"
    d_loss: str = "wasserstein"
    g_loss: str = "wasserstein"
    d_steps: int = 5  # n_critic
    gradient_penalty_weight: float = 10.0
    d_norm: str = "layer"
    d_learning_rate: float = 1e-4
    g_learning_rate: float = 1e-4
    beta_1: float = 0.0
    beta_2: float = 0.9

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        if self.d_loss != "wasserstein":
            raise ConfigError(f"{prefix}.d_loss={self.d_loss!r}: WGAN-GP's critic uses "
                              "'wasserstein' (use kind 'dcgan' for the other losses)")
        if self.gradient_penalty_weight <= 0:
            raise ConfigError(f"{prefix}.gradient_penalty_weight={self.gradient_penalty_weight} "
                              "must be > 0 for WGAN-GP (the paper uses 10)")


@register_model("wgan_gp", WGANGPConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class WGANGP(DCGAN):
    """The critic's ``d_real`` / ``d_fake`` are raw scores; ``d_real - d_fake`` estimates the
    Wasserstein-1 distance (up to the critic's Lipschitz constant)."""
