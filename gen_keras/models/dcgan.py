"""DCGAN (Radford et al. 2015, "Unsupervised Representation Learning with Deep Convolutional
GANs"): strided transposed convolutions with batch norm and ReLU in G, a tanh output; strided
convolutions with LeakyReLU(0.2) in D; no pooling, no hidden dense layers.

For 28x28 images G starts from 7x7, for 32x32 / 64x64 from 4x4, doubling the resolution and
halving the channels at each layer (64x64x3 with ``g_filters=128`` is the paper's generator:
1024 → 512 → 256 → 128 → 3 channels).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras
import tensorflow as tf
from keras import layers

from gen_keras.errors import ConfigError
from gen_keras.models import progressive as pg
from gen_keras.models.adversarial import AdversarialConfig, AdversarialModel
from gen_keras.models.networks import OneHot
from gen_keras.models.registry import register_model
from gen_keras.models.spectral_norm import SpectralConv2D, SpectralDense

D_NORMS = ("none", "batch", "layer", "spectral")


@dataclass
class DCGANConfig(AdversarialConfig):
    kind: str = "dcgan"
    g_filters: int = 64  # channels of G's last hidden layer (doubling towards the input)
    d_filters: int = 64  # channels of D's first layer (doubling with depth)
    # Radford et al. use batch norm in D; "layer" or "none" where examples must stay independent
    # (a gradient penalty, R1). Batch norm is never applied to D's input layer. "spectral":
    # spectral normalization of every D weight (Miyato et al. 2018), no normalization layers.
    d_norm: str = "batch"
    bn_momentum: float = 0.9  # moving averages that keep up with a fast-changing G
    # Progressive growing (Karras et al. 2018; gen_keras.models.progressive): the resolutions
    # trained in turn, each doubling the last and the last the image size, e.g. [7, 14, 28];
    # [] = off. The first trains for progressive_stable_images; each next one fades in over
    # progressive_fade_images, then trains stable for progressive_stable_images (images counted
    # as training steps x train.batch_size); after the schedule, the full size trains on.
    progressive: list[int] = field(default_factory=list)
    progressive_fade_images: int = 16000
    progressive_stable_images: int = 16000

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        if self.progressive:
            self.growth_schedule(prefix)  # raises ConfigError when the schedule is not a doubling run
            if self.progressive_fade_images < 1 or self.progressive_stable_images < 0:
                raise ConfigError(f"{prefix}.progressive_fade_images={self.progressive_fade_images} must be "
                                  f">= 1 and {prefix}.progressive_stable_images="
                                  f"{self.progressive_stable_images} >= 0")
        if self.d_norm not in D_NORMS:
            raise ConfigError(f"{prefix}.d_norm={self.d_norm!r} is not one of {list(D_NORMS)}")
        if self.d_norm == "batch" and (self.gradient_penalty_weight or self.r1_gamma):
            raise ConfigError(f"{prefix}.d_norm='batch' cannot be used with a gradient penalty "
                              "(gradient_penalty_weight > 0 or r1_gamma > 0): batch norm mixes the "
                              "examples whose input gradients are penalized; use 'layer', "
                              "'spectral' or 'none'")
        for name in ("g_filters", "d_filters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.bn_momentum < 1.0:
            raise ConfigError(f"{prefix}.bn_momentum={self.bn_momentum} must be in (0, 1)")


    def growth_schedule(self, prefix: str = "model") -> tuple[int, int]:
        """``(start level, levels)`` of the progressive schedule (level k = resolution
        ``base * 2**k``); a ConfigError naming the field when ``progressive`` is not a run of
        doublings from one of the generator's resolutions up to the image size."""
        base, n = _base_and_upsamplings(self.image_shape)
        valid = [base * 2 ** k for k in range(n + 1)]
        got = [int(r) for r in self.progressive]  # the config loader has checked they are integers
        if (got[-1] != self.image_shape[0] or got[0] not in valid
                or got != valid[valid.index(got[0]):]):
            raise ConfigError(
                f"{prefix}.progressive={list(self.progressive)} must be resolutions doubling up to the "
                f"image size {self.image_shape[0]}, starting from one of {valid[:-1]} (e.g. {valid})")
        if len(got) < 2:
            raise ConfigError(f"{prefix}.progressive={got} grows nothing: list at least two "
                              f"resolutions (e.g. {valid}) or leave it empty")
        return valid.index(got[0]), n


def _base_and_upsamplings(image_shape) -> tuple[int, int]:
    h = image_shape[0]
    base = 7 if h % 7 == 0 else 4
    n = 0
    while base * 2 ** n < h:
        n += 1
    return base, n


def dcgan_generator(image_shape, latent_dim: int, filters: int, *, label_count: int = 0,
                    bn_momentum: float = 0.9, progressive: bool = False, start_level: int = 0,
                    name: str = "generator") -> keras.Model:
    """``z`` [and int ``label``] → image in [-1, 1].

    The label (conditional GAN) is one-hot encoded and concatenated to ``z`` (Mirza & Osindero
    2014, sec. 4.1) and, as a constant plane per class, to the first feature map.

    ``progressive``: a 1x1 "toRGB" convolution (tanh) on the features of every lower resolution
    too, composed into the full-size output by the growth level (:mod:`gen_keras.models.progressive`).
    """
    base, n = _base_and_upsamplings(image_shape)
    z_in = keras.Input((latent_dim,), name="z")
    inputs, h = [z_in], z_in
    if label_count:
        y_in = keras.Input((), dtype="int32", name="label")
        inputs.append(y_in)
        one_hot = OneHot(label_count, name="label_one_hot")(y_in)
        h = layers.Concatenate(name="z_label")([z_in, one_hot])
    top = filters * 2 ** (n - 1)
    h = layers.Dense(base * base * top, use_bias=False, name="project")(h)
    h = layers.BatchNormalization(momentum=bn_momentum, name="project_bn")(h)
    h = layers.ReLU()(h)
    h = layers.Reshape((base, base, top))(h)
    if label_count:
        plane = layers.Dense(base * base * label_count, use_bias=False, name="label_plane")(one_hot)
        h = layers.Concatenate(name="features_label")(
            [h, layers.Reshape((base, base, label_count))(plane)])
    pictures = []

    def to_rgb(features, k):
        return layers.Conv2D(image_shape[-1], 1, activation="tanh", dtype="float32", name=f"to_rgb{k}")(features)

    for i in reversed(range(n - 1)):
        if progressive:
            pictures.append(to_rgb(h, len(pictures)))
        h = layers.Conv2DTranspose(filters * 2 ** i, 4, strides=2, padding="same", use_bias=False,
                                   name=f"deconv{n - 1 - i}")(h)
        h = layers.BatchNormalization(momentum=bn_momentum, name=f"deconv{n - 1 - i}_bn")(h)
        h = layers.ReLU()(h)
    if progressive:
        pictures.append(to_rgb(h, len(pictures)))
    image = layers.Conv2DTranspose(image_shape[-1], 4, strides=2, padding="same",
                                   activation="tanh", dtype="float32", name="image")(h)
    if progressive:
        image = pg.compose_pyramid([*pictures, image], pg.GrowthLevel(n, start_level, name="growth")(z_in))
    return keras.Model(inputs if label_count else z_in, image, name=name)


def dcgan_discriminator(image_shape, filters: int, *, norm: str = "batch", label_count: int = 0,
                        bn_momentum: float = 0.9, progressive: bool = False, start_level: int = 0,
                        name: str = "discriminator") -> keras.Model:
    """Image [and int ``label``] → one raw score (a logit for the cross-entropy losses).

    The label enters as one learned plane per class concatenated to the image (the "one-hot
    concatenation" of Mirza & Osindero 2014, made spatial), and through the projection term
    ``<embed(y), features>`` of Miyato & Koyama 2018, "cGANs with Projection Discriminator",
    eq. 3, which is what makes D check that the image matches its label.

    ``progressive``: the image, average-pooled to every lower resolution, also enters through a
    1x1 "fromRGB" convolution there, faded in against the path from the resolution above by the
    growth level (so at a low level D reads the image at that level's resolution; the label plane
    then reaches D only through the projection term).
    """
    h_in, n = image_shape[0], _base_and_upsamplings(image_shape)[1]
    x_in = keras.Input(tuple(image_shape), name="x")
    inputs, h = [x_in], x_in
    if label_count:
        y_in = keras.Input((), dtype="int32", name="label")
        inputs.append(y_in)
        one_hot = OneHot(label_count, name="label_one_hot")(y_in)
        plane = layers.Dense(h_in * h_in, use_bias=False, name="label_plane")(one_hot)
        h = layers.Concatenate(name="image_label")([x_in, layers.Reshape((h_in, h_in, 1))(plane)])
    conv = SpectralConv2D if norm == "spectral" else layers.Conv2D
    weights = pg.GrowthLevel(n, start_level, name="growth")(x_in) if progressive else None
    for i in range(n):
        h = conv(filters * 2 ** i, 4, strides=2, padding="same",
                 use_bias=norm in ("none", "spectral") or i == 0, name=f"conv{i}")(h)
        if i > 0 and norm == "batch":
            h = layers.BatchNormalization(momentum=bn_momentum, name=f"conv{i}_bn")(h)
        elif i > 0 and norm == "layer":
            h = layers.LayerNormalization(axis=[1, 2, 3], name=f"conv{i}_ln")(h)
        h = layers.LeakyReLU(0.2)(h)
        if progressive:  # h is at level k = n - 1 - i; its own input path fades in under it
            k = n - 1 - i
            lowered = layers.AveragePooling2D(2 ** (i + 1), name=f"downscale{k}")(x_in)
            from_rgb = layers.LeakyReLU(0.2)(conv(filters * 2 ** i, 1, name=f"from_rgb{k}")(lowered))
            h = pg.FadeIn(k + 1, dtype=h.dtype, name=f"fade_in{k + 1}")([from_rgb, h, weights])
    features = layers.Flatten(name="features")(h)
    score = (SpectralDense if norm == "spectral" else layers.Dense)(1, dtype="float32", name="score")(features)
    if label_count:
        embed = layers.Dense(features.shape[-1], use_bias=False, name="label_embedding")(one_hot)
        projection = layers.Dot(axes=1, dtype="float32", name="projection")([embed, features])
        score = layers.Add(dtype="float32", name="score_with_label")([score, projection])
    return keras.Model(inputs if label_count else x_in, score, name=name)


@register_model("dcgan", DCGANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class DCGAN(AdversarialModel):
    def build_generator(self, name):
        c = self.config
        return dcgan_generator(c.image_shape, c.latent_dim, c.g_filters,
                               label_count=c.num_classes if self.conditional else 0,
                               bn_momentum=c.bn_momentum, progressive=bool(c.progressive),
                               start_level=self.start_level, name=name)

    def build_discriminator(self):
        c = self.config
        return dcgan_discriminator(c.image_shape, c.d_filters, norm=c.d_norm,
                                   label_count=c.num_classes if self.conditional else 0,
                                   bn_momentum=c.bn_momentum, progressive=bool(c.progressive),
                                   start_level=self.start_level)

    @property
    def conditional(self) -> bool:
        return type(self.config).conditional

    # -- progressive growing -------------------------------------------------------------------
    @property
    def start_level(self) -> int:
        """The level the networks are built at: the schedule's first resolution (0 when off)."""
        return self.config.growth_schedule()[0] if self.config.progressive else 0

    def growth_networks(self) -> list:
        return [self.generator, self.discriminator, *([self.generator_ema] if self.config.g_ema_decay else [])]

    def advance_growth(self, x):
        """Set every network's growth level from the images seen so far (generator steps x
        global batch size, so a restored optimizer restores the level); returns the level."""
        c = self.config
        start, levels = c.growth_schedule()
        seen = tf.cast(self.g_optimizer.iterations, tf.float32) * tf.cast(self.global_batch_size(x), tf.float32)
        level = pg.growth_level(seen, start, levels, c.progressive_fade_images, c.progressive_stable_images)
        pg.set_level(self.growth_networks(), level)
        return level

    def train_step(self, data):
        """With ``progressive``: the growth level for this step, then the usual update on the
        real images lowered to that level (the same pyramid G's output goes through)."""
        if not self.config.progressive:
            return super().train_step(data)
        x, labels = data
        level = self.advance_growth(x)
        logs = super().train_step((pg.images_at_level(x, level, self.config.growth_schedule()[1]), labels))
        return {**logs, "growth_level": tf.reshape(level, [1]) if self.vector_metrics else level}

    def test_step(self, data):
        if not self.config.progressive:
            return super().test_step(data)
        x, labels = data
        level = pg.current_level_tensor(self.discriminator)
        return super().test_step((pg.images_at_level(x, level, self.config.growth_schedule()[1]), labels))
