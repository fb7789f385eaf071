"""Super-resolution by a residual sub-pixel network trained with L1 alone: the non-adversarial
baseline of SRGAN (Ledig et al. 2017 train the same generator, "SRResNet", with MSE; L1 is the
usual choice since Lim et al. 2017, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", sec. 4.1, who found it converges better).

The generator (:func:`gen_keras.models.translation_networks.subpixel_generator`) works at the
input's resolution and upsamples at the end by ``log2(scale)`` depth-to-space stages (Shi et al.
2016): a 7x7 digit becomes 28x28. One ``train_step``: one step on ``mean |y - G(x)|`` per
example, averaged over the GLOBAL batch.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import tensorflow as tf

from gen_keras import translation_losses as tl
from gen_keras.errors import ConfigError
from gen_keras.models.registry import register_model
from gen_keras.models.translation import TranslationConfig, TranslationModel, check_positive
from gen_keras.models.translation_networks import subpixel_generator


@dataclass
class SRL1Config(TranslationConfig):
    kind: str = "sr_l1"
    default_dataset: typing.ClassVar[str] = "pairs:sr4"  # data.dataset when the config names none
    scale: int = 4  # the input is image_shape / scale on a side
    g_filters: int = 32  # 64 in the paper
    residual_blocks: int = 4  # 16 in the paper
    g_learning_rate: float = 1e-3
    beta_1: float = 0.9  # Ledig et al.: Adam(beta_1 = 0.9)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = (int(d) for d in self.image_shape)
        return (h // self.scale, w // self.scale, self.input_channels or c)

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        check_positive(self, prefix, "g_filters", "residual_blocks")
        if self.scale not in (2, 4, 8) or self.image_shape[0] % self.scale:
            raise ConfigError(f"{prefix}.scale={self.scale} must be 2, 4 or 8 and divide the image side "
                              f"{self.image_shape[0]}")


@register_model("sr_l1", SRL1Config)
@keras.saving.register_keras_serializable(package="gen_keras")
class SRL1(TranslationModel):
    """Reported per epoch: ``l1`` (mean |y - G(x)| in [-1, 1] units)."""

    tracker_names = ("l1",)
    optimizer_names = ("g_optimizer",)

    def build_networks(self):
        c = self.config
        self.generator = subpixel_generator(c.input_shape, c.image_shape[-1], c.g_filters,
                                            blocks=c.residual_blocks, scale=c.scale)

    def optimizer_variables(self, name):
        return self.generator.trainable_variables

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            l1 = tl.mean_absolute_error_per_example(y, self.generator(x, training=True))
            loss = self.global_mean(l1, x)
        self.apply_loss(tape, loss, self.generator.trainable_variables, self.g_optimizer)
        return self.update_trackers({"l1": l1})

    def test_step(self, data):
        x, y = data
        return self.update_trackers({"l1": tl.mean_absolute_error_per_example(y, self.generator(x, training=False))})
