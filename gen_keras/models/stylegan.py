"""A style-based GAN (Karras et al. 2019, "A Style-Based Generator Architecture for GANs", and
the StyleGAN2 revision, Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), scaled to 28x28 / 32x32 / 64x64 images and a 2-core CPU.

Generator = mapping network + synthesis network:

* **mapping** (z → w): z normalized (:class:`PixelNorm`), then ``mapping_layers`` equalized-lr
  dense layers with leaky ReLU and a 0.01 learning-rate multiplier (Karras et al. 2019, sec. 2;
  they use 8 layers of 512, StyleGAN2-ADA's small-data configs 2; 4 of 128 here: the cost is
  negligible beside the convolutions either way).
* **synthesis** (per-layer styles ws ``[N, num_ws, w_dim]`` → image): a learned constant at the
  base resolution (7x7 for 28x28, else 4x4), then per resolution a 2x-upsampling modulated
  convolution and a modulated convolution, each with per-pixel noise times a learned strength;
  StyleGAN2's skip generator: every resolution adds its toRGB output (a modulated 1x1
  convolution without demodulation) to the upsampled RGB of the one before. Modulation and
  demodulation, not AdaIN: see :mod:`gen_keras.models.style_layers`. The output goes through
  tanh (the project's [-1, 1] image convention; StyleGAN itself clips a linear output).
  ``num_ws = 2 + 2 * doublings`` (6 for 28x28): a resolution's toRGB shares its style with the
  next resolution's first convolution, as in StyleGAN2.
* **discriminator**: StyleGAN2's residual D with equalized learning rate — fromRGB, then per
  resolution conv 3x3, 2x average pooling, conv 3x3 with a pooled 1x1 skip, summed and scaled
  by 1/sqrt(2); at the base resolution the minibatch standard deviation (groups of
  ``mbstd_group_size``), a conv, a dense layer and the score.

Training (the shared update of :mod:`gen_keras.models.adversarial`, non-saturating loss by
default, R1 on by default, lazily every ``r1_interval`` D steps): fakes come from
:meth:`StyleGAN.fake_images` — two z per example; with probability ``style_mixing`` the styles
switch from w1 to w2 at a crossover layer drawn uniformly from 1..num_ws-1 (style-mixing
regularization, Karras et al. 2019, sec. 3.1); fresh per-pixel noise for every layer. After each
step the average w is tracked (``w_avg <- w_mean + w_avg_decay (w_avg - w_mean)`` over the
GLOBAL batch) for the truncation trick; it lives in the generator's :class:`Truncation` layer, so
it is saved, checkpointed, averaged into the EMA generator's copy and exported.

Export surface (``export_endpoints``): ``generate`` (z → image, psi = 1: what the evaluator,
the latent tools and serving call), ``generate_truncated`` (z, psi ``[N]`` → image: the
truncation trick with the tracked w_avg), ``mapping`` (z → w), ``synthesis`` (ws → image) and
``mix`` (z, z_mix, crossover ``[N]`` → image: the styles of z before the crossover layer, those
of z_mix from it on); the manifest's ``facts.style`` gives num_ws, w_dim and the default
crossover, so no consumer works the layout out again.
At generation time each layer's noise is a FIXED map stored with the layer (deterministic
samples per z, ONNX parity); training draws fresh noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gen_keras.errors import ConfigError
from gen_keras.models import style_layers as sl
from gen_keras.models.adversarial import AdversarialConfig, AdversarialModel
from gen_keras.models.base import Endpoint, replica_info
from gen_keras.models.registry import register_model


@dataclass
class StyleGANConfig(AdversarialConfig):
    kind: str = "stylegan"
    latent_dim: int = 128  # z
    w_dim: int = 128  # the intermediate latent space W
    mapping_layers: int = 4
    mapping_lr_multiplier: float = 0.01  # Karras et al. 2019: the mapping learns 100x slower
    g_filters: int = 16  # channels at the output resolution, doubling towards the base ...
    d_filters: int = 16  # ... and in D from the input resolution down
    max_filters: int = 128  # ... up to this many
    style_mixing: float = 0.9  # probability of a mixed example (Karras et al. 2019: 90%)
    w_avg_decay: float = 0.995  # the tracked average w (StyleGAN's w_avg_beta)
    mbstd_group_size: int = 4
    # StyleGAN2 / ADA: Adam(0.0025, 0, 0.99); 0.002 for the smaller batch here.
    d_learning_rate: float = 0.002
    g_learning_rate: float = 0.002
    beta_1: float = 0.0
    beta_2: float = 0.99
    r1_gamma: float = 0.05
    r1_interval: int = 4
    g_ema_decay: float = 0.999

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        for name in ("w_dim", "mapping_layers", "g_filters", "d_filters", "max_filters",
                     "mbstd_group_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.mapping_lr_multiplier <= 1.0:
            raise ConfigError(f"{prefix}.mapping_lr_multiplier={self.mapping_lr_multiplier} "
                              "must be in (0, 1]")
        if not 0.0 <= self.style_mixing <= 1.0:
            raise ConfigError(f"{prefix}.style_mixing={self.style_mixing} must be in [0, 1]")
        if not 0.0 <= self.w_avg_decay < 1.0:
            raise ConfigError(f"{prefix}.w_avg_decay={self.w_avg_decay} must be in [0, 1)")


# ----------------------------------------------------------------------------------------------
# The networks
# ----------------------------------------------------------------------------------------------
def resolutions(image_shape) -> list[int]:
    """The synthesis resolutions, base first: [7, 14, 28] for 28x28, [4, 8, 16, 32] for 32x32."""
    h = int(image_shape[0])
    base = 7 if h % 7 == 0 else 4
    out = [base]
    while out[-1] < h:
        out.append(out[-1] * 2)
    return out


def num_styles(image_shape) -> int:
    """Per-layer styles: the base conv, two convs per doubling, and the last toRGB."""
    return 2 * len(resolutions(image_shape))


def _channels(res: int, top: int, filters: int, max_filters: int) -> int:
    return min(filters * (top // res), max_filters)


def mapping_network(latent_dim: int, w_dim: int, depth: int, lr_multiplier: float,
                    name: str = "mapping") -> keras.Model:
    """``z`` → ``w``: normalize z, then ``depth`` equalized-lr dense layers, leaky ReLU."""
    z = keras.Input((latent_dim,), name="z")
    h = sl.PixelNorm(name="normalize_z")(z)
    for i in range(depth):
        h = sl.EqualizedDense(w_dim, lr_multiplier=lr_multiplier, activation="lrelu",
                              dtype="float32" if i == depth - 1 else None, name=f"dense{i}")(h)
    return keras.Model(z, h, name=name)


def _synthesis_forward(layer, ws, noises, res_list):
    """The synthesis graph on ``ws``, with ``noises`` (one map per modulated conv, in order) or
    the layers' fixed noise (``noises=None``). ``layer(name)`` returns the named layer, so the
    same code wires the functional model and the training pass that feeds fresh noise."""
    noise_iter = iter(noises) if noises is not None else None

    def conv(name, x, index):
        inputs = [x, layer(f"style{index}")(ws)]
        if noise_iter is not None:
            inputs.append(next(noise_iter))
        return layer(name)(inputs)

    base = res_list[0]
    x = layer("const")(ws)
    x = conv(f"conv{base}", x, 0)
    rgb = layer(f"to_rgb{base}")([x, layer("style1")(ws)])
    index = 1
    for res in res_list[1:]:
        x = conv(f"conv{res}_up", x, index)
        x = conv(f"conv{res}", x, index + 1)
        index += 2
        rgb = layer(f"rgb{res}")([layer(f"rgb{res}_up")(rgb),
                                  layer(f"to_rgb{res}")([x, layer(f"style{index}")(ws)])])
    return layer("image")(rgb)


def synthesis_network(image_shape, w_dim: int, filters: int, max_filters: int,
                      name: str = "synthesis") -> keras.Model:
    """``ws`` ``[N, num_ws, w_dim]`` → image in [-1, 1] (fixed noise; see :func:`synthesize`)."""
    res_list, channels = resolutions(image_shape), image_shape[-1]
    top = res_list[-1]
    ch = {r: _channels(r, top, filters, max_filters) for r in res_list}
    base = res_list[0]
    made = {"const": sl.ConstantInput(ch[base], base, name="const"),
            f"conv{base}": sl.StyleConv(ch[base], name=f"conv{base}"),
            f"to_rgb{base}": _to_rgb(channels, f"to_rgb{base}"),
            "image": layers.Activation("tanh", dtype="float32", name="image")}
    for i in range(num_styles(image_shape)):
        made[f"style{i}"] = sl.TakeStyle(i, name=f"style{i}")
    for res in res_list[1:]:
        made[f"conv{res}_up"] = sl.StyleConv(ch[res], upsample=True, name=f"conv{res}_up")
        made[f"conv{res}"] = sl.StyleConv(ch[res], name=f"conv{res}")
        made[f"to_rgb{res}"] = _to_rgb(channels, f"to_rgb{res}")
        made[f"rgb{res}_up"] = layers.UpSampling2D(interpolation="bilinear", name=f"rgb{res}_up")
        made[f"rgb{res}"] = layers.Add(name=f"rgb{res}")
    ws = keras.Input((num_styles(image_shape), w_dim), name="ws")
    return keras.Model(ws, _synthesis_forward(made.__getitem__, ws, None, res_list), name=name)


def _to_rgb(channels: int, name: str):
    return sl.StyleConv(channels, kernel_size=1, demodulate=False, use_noise=False,
                        activation="linear", name=name)


def synthesize(synthesis: keras.Model, ws, noises, image_shape):
    """The synthesis network's pass with the given per-layer noise (training)."""
    return _synthesis_forward(synthesis.get_layer, ws, noises, resolutions(image_shape))


def noise_shapes(image_shape) -> list[list[int]]:
    """``[H, W, 1]`` of each modulated convolution's noise, in :func:`synthesize` order."""
    res_list = resolutions(image_shape)
    return [[res_list[0]] * 2 + [1]] + [[r, r, 1] for r in res_list[1:] for _ in range(2)]


def style_generator(image_shape, latent_dim: int, w_dim: int, mapping_layers: int,
                    mapping_lr_multiplier: float, filters: int, max_filters: int,
                    name: str = "generator") -> keras.Model:
    """``[z, psi]`` → image: mapping, truncation towards the tracked average w (psi = 1: none),
    the same w for every layer, synthesis. Its sub-networks ``mapping`` and ``synthesis`` and the
    ``truncation`` layer (holding ``w_avg``) are reachable with ``get_layer``."""
    mapping = mapping_network(latent_dim, w_dim, mapping_layers, mapping_lr_multiplier)
    synthesis = synthesis_network(image_shape, w_dim, filters, max_filters)
    z = keras.Input((latent_dim,), name="z")
    psi = keras.Input((), name="psi")
    w = sl.Truncation(w_dim, name="truncation")([mapping(z), psi])
    ws = layers.RepeatVector(num_styles(image_shape), name="broadcast_w")(w)
    return keras.Model([z, psi], synthesis(ws), name=name)


def style_discriminator(image_shape, filters: int, max_filters: int, group_size: int,
                        name: str = "discriminator") -> keras.Model:
    """Image → one raw score: StyleGAN2's residual discriminator with minibatch stddev."""
    res_list = resolutions(image_shape)
    top = res_list[-1]
    ch = {r: _channels(r, top, filters, max_filters) for r in res_list}
    x_in = keras.Input(tuple(image_shape), name="x")
    h = sl.EqualizedConv2D(ch[top], 1, activation="lrelu", name="from_rgb")(x_in)
    for res in reversed(res_list[1:]):
        cout = ch[res // 2]
        skip = layers.AveragePooling2D(2, name=f"skip{res}_pool")(h)
        skip = sl.EqualizedConv2D(cout, 1, use_bias=False, name=f"skip{res}")(skip)
        y = sl.EqualizedConv2D(ch[res], 3, activation="lrelu", name=f"conv{res}_0")(h)
        y = layers.AveragePooling2D(2, name=f"pool{res}")(y)
        y = sl.EqualizedConv2D(cout, 3, activation="lrelu", name=f"conv{res}_1")(y)
        h = sl.ScaledAdd(name=f"block{res}")([y, skip])
    base = res_list[0]
    h = sl.MinibatchStddev(group_size, name="minibatch_stddev")(h)
    h = sl.EqualizedConv2D(ch[base], 3, activation="lrelu", name=f"conv{base}")(h)
    h = layers.Flatten(name="features")(h)
    h = sl.EqualizedDense(ch[base], activation="lrelu", name="dense")(h)
    score = sl.EqualizedDense(1, dtype="float32", name="score")(h)
    return keras.Model(x_in, score, name=name)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
@register_model("stylegan", StyleGANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class StyleGAN(AdversarialModel):
    """See the module docstring. ``generate(z, psi=...)``, ``mapping(z)``, ``synthesis(ws)`` and
    ``style_mix(z1, z2, crossover)`` in Python; the same operations in the export."""

    def build_generator(self, name):
        c = self.config
        return style_generator(c.image_shape, c.latent_dim, c.w_dim, c.mapping_layers,
                               c.mapping_lr_multiplier, c.g_filters, c.max_filters, name=name)

    def build_discriminator(self):
        c = self.config
        return style_discriminator(c.image_shape, c.d_filters, c.max_filters, c.mbstd_group_size)

    @property
    def num_ws(self) -> int:
        return num_styles(self.image_shape)

    @staticmethod
    def _part(generator, name):
        return generator.get_layer(name)

    # -- training ---------------------------------------------------------------------------------
    def fake_images(self, m, labels, training=True):
        """Two z per example through the mapping; in training, with probability ``style_mixing``
        the styles switch from w1 to w2 at a crossover layer uniform in 1..num_ws-1; fresh
        per-pixel noise for every layer (all from the per-replica draws)."""
        c, g = self.config, self.generator
        z = tf.reshape(self.replica_normal(m, [2, self.latent_dim]), [-1, self.latent_dim])
        w = tf.reshape(self._part(g, "mapping")(z, training=training), [m, 2, c.w_dim])
        if training and c.style_mixing:
            u = self.replica_uniform(m, [2])
            crossover = tf.where(u[:, 0] < c.style_mixing,
                                 1 + tf.cast(tf.floor(u[:, 1] * (self.num_ws - 1)), tf.int32),
                                 self.num_ws)
        else:
            crossover = tf.fill([m], self.num_ws)
        ws = sl.mix_styles(w[:, 0], w[:, 1], crossover, self.num_ws)
        noises = [self.replica_normal(m, shape) for shape in noise_shapes(self.image_shape)]
        return synthesize(self._part(g, "synthesis"), ws, noises, self.image_shape)

    def train_step(self, data):
        """The shared update, then the tracked average w."""
        logs = super().train_step(data)
        self.track_average_w(tf.shape(data[0])[0])
        return logs

    def track_average_w(self, m):
        """``w_avg <- mean_w + w_avg_decay (w_avg - mean_w)``, the mean over fresh w of the whole
        GLOBAL batch (an all-reduce, so every replica holds the same average); the EMA
        generator gets the same value."""
        z = self.replica_normal(m, [self.latent_dim])
        w = tf.cast(self._part(self.generator, "mapping")(z, training=False), tf.float32)
        total = tf.reduce_sum(w, axis=0)
        if replica_info()[0] > 1:
            total = tf.distribute.get_replica_context().all_reduce("SUM", total)
        mean = total / tf.cast(self.global_batch_size(z), tf.float32)
        w_avg = self._part(self.generator, "truncation").w_avg
        w_avg.assign(mean + self.config.w_avg_decay * (w_avg - mean))
        if self.config.g_ema_decay:
            self._part(self.generator_ema, "truncation").w_avg.assign(w_avg)

    # -- generation -------------------------------------------------------------------------------
    def call(self, inputs, training=False):
        """``G(z)`` (no truncation)."""
        return self.generate(inputs)

    def mapping(self, z):
        """w ``[N, w_dim]`` for latent codes z (the sampling generator's mapping network)."""
        return self._part(self.sampler, "mapping")(tf.convert_to_tensor(z, tf.float32), training=False)

    def synthesis(self, ws):
        """Images for per-layer styles ``ws`` ``[N, num_ws, w_dim]`` (or one w ``[N, w_dim]`` for
        every layer)."""
        ws = tf.convert_to_tensor(ws, tf.float32)
        if ws.shape.rank == 2:
            ws = tf.repeat(ws[:, None], self.num_ws, axis=1)
        return self._part(self.sampler, "synthesis")(ws, training=False)

    def truncate(self, w, psi):
        """The truncation trick towards the tracked average w; ``psi`` one number or ``[N]``,
        in [0, 1]."""
        w = tf.convert_to_tensor(w, tf.float32)
        return self._part(self.sampler, "truncation")([w, check_psi(psi, int(w.shape[0]))])

    def generate(self, z, labels=None, psi=None):
        """Images in [-1, 1] for z; ``psi`` (one number or one per code, in [0, 1]) truncates
        towards the average w, None (the default) leaves w as drawn."""
        w = self.mapping(z)
        return self.synthesis(w if psi is None else self.truncate(w, psi))

    def style_mix(self, z1, z2, crossover: int, psi=None):
        """Images whose layers before ``crossover`` (1..num_ws-1) take the style of z1, the rest
        that of z2 (Karras et al. 2019, Fig. 3); exported as the ``mix`` operation."""
        if not 0 < int(crossover) < self.num_ws:
            raise ValueError(f"crossover={crossover} must be in 1..{self.num_ws - 1}")
        w1, w2 = self.mapping(z1), self.mapping(z2)
        if psi is not None:
            w1, w2 = self.truncate(w1, psi), self.truncate(w2, psi)
        return self.synthesis(sl.mix_styles(w1, w2, tf.fill([tf.shape(w1)[0]], int(crossover)),
                                            self.num_ws))

    @property
    def w_avg(self) -> np.ndarray:
        return np.asarray(self._part(self.sampler, "truncation").w_avg)

    @property
    def default_crossover(self) -> int:
        """The crossover layer a mixing grid uses unless told otherwise: half the styles coarse."""
        return self.num_ws // 2

    def export_facts(self) -> dict:
        return {"style": {"num_ws": self.num_ws, "w_dim": int(self.config.w_dim),
                          "default_crossover": self.default_crossover}}

    def export_endpoints(self):
        g = self.sampler
        mapping, synthesis = self._part(g, "mapping"), self._part(g, "synthesis")
        z = keras.Input((self.latent_dim,), name="z")
        ws = layers.RepeatVector(self.num_ws, name="broadcast_w")(mapping(z))
        untruncated = keras.Model(z, synthesis(ws), name="generate")
        z_mix = keras.Input((self.latent_dim,), name="z_mix")
        crossover = keras.Input((), dtype="int32", name="crossover")
        mixed = sl.MixStyles(self.num_ws, name="mix_styles")([mapping(z), mapping(z_mix), crossover])
        mix = keras.Model([z, z_mix, crossover], synthesis(mixed), name="mix")
        return [Endpoint("generate", untruncated, ["image"]),
                Endpoint("generate_truncated", g, ["image"], value_ranges={"psi": [0.0, 1.0]},
                         defaults={"psi": 1.0}),
                Endpoint("mapping", mapping, ["w"]),
                Endpoint("synthesis", synthesis, ["image"]),
                Endpoint("mix", mix, ["image"], value_ranges={"crossover": [1, self.num_ws - 1]},
                         defaults={"crossover": self.default_crossover})]


def check_psi(psi, n: int) -> tf.Tensor:
    """``psi`` as float32 ``[n]`` (one number is repeated); a ValueError outside [0, 1]."""
    values = np.asarray(psi, np.float32)
    values = np.full([n], values) if values.ndim == 0 else values
    if values.shape != (n,):
        raise ValueError(f"psi of shape {list(values.shape)} for {n} codes; give one number or {n}")
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValueError(f"psi must be in [0, 1] (1 = no truncation); got {values.min():g}..{values.max():g}")
    return tf.constant(values)
