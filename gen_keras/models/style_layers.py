"""The pieces of a style-based GAN, each a pure function and (where it holds weights) a layer.

* :func:`equalized_lr_scale` — equalized learning rate (Karras et al. 2018, "Progressive Growing
  of GANs", sec. 4.1): weights are stored ~N(0, 1) and multiplied at run time by He's constant
  ``1 / sqrt(fan_in)`` (times a learning-rate multiplier), so Adam, which normalizes the update
  per weight, moves every layer at the same speed whatever its fan-in.
* :func:`modulated_conv2d` — StyleGAN2's modulated and demodulated convolution (Karras et al.
  2020, "Analyzing and Improving the Image Quality of StyleGAN", sec. 2.2, eqs. 1-3).
* :func:`minibatch_stddev` — the minibatch standard deviation feature (Karras et al. 2018, sec. 3).
* :func:`mix_styles` — style mixing (Karras et al. 2019, "A Style-Based Generator Architecture
  for GANs", sec. 3.1): layers before a crossover take one w, the rest another.
* :func:`truncate` — the truncation trick in W (Karras et al. 2019, sec. 3.1 / appendix B):
  ``w' = w_avg + psi (w - w_avg)``.

Layers: :class:`EqualizedDense`, :class:`EqualizedConv2D`, :class:`StyleConv` (affine style, a
modulated convolution, per-pixel noise with a learned strength, bias, activation),
:class:`ConstantInput`, :class:`PixelNorm`, :class:`Truncation` (holds the tracked average w),
:class:`TakeStyle`, :class:`MinibatchStddev`, :class:`ScaledAdd`. Every one is registered and has
``get_config``, so a model holding them saves as ``.keras`` and loads with ``safe_mode`` on.

Why modulation/demodulation and not AdaIN (StyleGAN 1): AdaIN normalizes each feature map's
mean and variance per example, which lets the generator sneak signal past the normalization as
a strong local spike — the "droplet" artifacts of Karras et al. 2020, sec. 2. Demodulation
normalizes by the EXPECTED statistics of the modulated weights instead of the data's, removing
the artifacts while keeping scale-specific control; it is also a plain convolution between two
per-channel scalings here (no per-example statistics), which is cheaper on a CPU and converts
to ONNX as ordinary ops.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


# ----------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------
def equalized_lr_scale(fan_in: int, lr_multiplier: float = 1.0) -> float:
    """The run-time weight multiplier ``lr_multiplier / sqrt(fan_in)``.

    With weights initialized ~N(0, 1 / lr_multiplier^2), the effective weight starts ~N(0,
    1 / fan_in) (He et al. 2015) and its learning speed is scaled by ``lr_multiplier`` (0.01 in
    StyleGAN's mapping network, Karras et al. 2019, sec. 2).

    >>> equalized_lr_scale(9 * 16)  # 1 / 12
    """
    return float(lr_multiplier) / math.sqrt(float(fan_in))


def lrelu(x):
    """Leaky ReLU (slope 0.2) times sqrt(2): the gain keeps the activations' scale (StyleGAN)."""
    return ops.leaky_relu(x, negative_slope=LRELU_SLOPE) * SQRT2


def modulated_conv2d(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor, demodulate: bool = True,
                     epsilon: float = 1e-8) -> tf.Tensor:
    """StyleGAN2's convolution with per-example weights ``w'_ijk = s_i w_ijk`` (eq. 1) and, when
    ``demodulate``, ``w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)`` (eq. 3).

    ``x``: ``[N, H, W, I]``; ``weight``: ``[k, k, I, O]`` (already scaled for the equalized
    learning rate); ``styles``: ``[N, I]``. Computed as Karras et al. 2020 (sec. 2.2) note is
    equivalent: scale the input channels by ``s``, convolve with the shared weight, scale the
    output channels by the demodulation coefficient ``d_j = 1 / sqrt(sum_i s_i^2 sum_k w_ijk^2
    + eps)`` — an ordinary convolution, no per-example kernels. "SAME" padding, stride 1.
    """
    dtype = x.dtype
    styles = tf.cast(styles, dtype)
    weight = tf.cast(weight, dtype)
    y = tf.nn.conv2d(x * styles[:, None, None, :], weight, strides=1, padding="SAME")
    if demodulate:
        # In float32: a sum over k*k*I squares in bfloat16 would lose the coefficient's precision.
        w_sq = tf.reduce_sum(tf.square(tf.cast(weight, tf.float32)), axis=[0, 1])  # [I, O]
        s_sq = tf.square(tf.cast(styles, tf.float32))
        d = tf.math.rsqrt(tf.matmul(s_sq, w_sq) + epsilon)  # [N, O]
        y = y * tf.cast(d, dtype)[:, None, None, :]
    return y


def minibatch_stddev(x: tf.Tensor, group_size: int = 4, epsilon: float = 1e-8) -> tf.Tensor:
    """``x`` with one more channel: the minibatch standard deviation of its group.

    Karras et al. 2018, sec. 3: within each group of ``G`` examples, the standard deviation of
    every feature over the group, averaged over features and pixels, appended as a constant
    feature map — D sees how varied the batch is and can penalize a collapsed generator.
    Groups are CONSECUTIVE examples (``0..G-1``, ``G..2G-1``, ...), so the features of a global
    batch split over replicas are those of one device; ``G`` is the largest divisor of the batch
    not above ``group_size``. The population (biased) variance, as StyleGAN.
    """
    n = tf.shape(x)[0]
    candidates = tf.range(group_size, 0, -1)
    g = candidates[tf.argmax(tf.cast(tf.equal(n % candidates, 0), tf.int32))]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    y = tf.cast(tf.reshape(x, [-1, g, h, w, c]), tf.float32)  # [N/G, G, H, W, C]
    y = y - tf.reduce_mean(y, axis=1, keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1, keepdims=True) + epsilon)  # [N/G, 1, H, W, C]
    per_group = tf.reduce_mean(std, axis=[2, 3, 4], keepdims=True)  # [N/G, 1, 1, 1, 1]
    # Back to [N, H, W, 1] in example order (a broadcast, not tf.repeat: XLA-friendly).
    plane = tf.reshape(tf.broadcast_to(per_group, [n // g, g, h, w, 1]), [n, h, w, 1])
    return tf.concat([x, tf.cast(plane, x.dtype)], axis=-1)


def mix_styles(w1: tf.Tensor, w2: tf.Tensor, crossover: tf.Tensor, num_ws: int) -> tf.Tensor:
    """Per-layer styles ``[N, num_ws, w_dim]``: layer ``i < crossover[n]`` takes ``w1[n]``, the
    rest ``w2[n]`` (Karras et al. 2019, sec. 3.1). ``crossover = num_ws`` means no mixing."""
    layer = tf.range(num_ws)[None, :, None]
    first = layer < tf.cast(crossover, tf.int32)[:, None, None]
    return tf.where(first, w1[:, None, :], w2[:, None, :])


def truncate(w: tf.Tensor, w_avg: tf.Tensor, psi: tf.Tensor) -> tf.Tensor:
    """The truncation trick ``w_avg + psi (w - w_avg)``, ``psi`` per example ``[N]``: 1 leaves w
    as drawn, 0 gives the average w (the "mean face"), between trades variety for typicality
    (Karras et al. 2019, sec. 3.1 and appendix B; Marchesi 2017)."""
    w_avg = tf.cast(w_avg, w.dtype)
    psi = tf.cast(psi, w.dtype)[:, None]
    # As a weighted sum, exact at both ends whatever the CPU's rounding: psi = 1 returns w itself
    # and psi = 0 w_avg itself (w_avg + psi (w - w_avg) is off by an ulp at psi = 1).
    return psi * w + (1.0 - psi) * w_avg


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------
def _activate(x, activation: str):
    return lrelu(x) if activation == "lrelu" else x


@keras.saving.register_keras_serializable(package="gen_keras")
class EqualizedDense(layers.Layer):
    """``x W c + b m`` with ``W ~ N(0, 1/m^2)`` stored, ``c = equalized_lr_scale(fan_in, m)``,
    ``m = lr_multiplier``; ``activation`` ``"linear"`` or ``"lrelu"`` (with the sqrt(2) gain)."""

    def __init__(self, units: int, lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 activation: str = "linear", use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_multiplier, self.bias_init = int(units), float(lr_multiplier), float(bias_init)
        self.activation, self.use_bias = activation, bool(use_bias)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.scale = equalized_lr_scale(fan_in, self.lr_multiplier)
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_multiplier))
        if self.use_bias:  # stored / m, so the effective initial bias is bias_init
            self.bias = self.add_weight(name="bias", shape=(self.units,),
                                        initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier))

    def call(self, x):
        y = ops.matmul(x, self.kernel * self.scale)
        if self.use_bias:
            y = y + self.bias * self.lr_multiplier
        return _activate(y, self.activation)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_multiplier": self.lr_multiplier,
                "bias_init": self.bias_init, "activation": self.activation, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="gen_keras")
class EqualizedConv2D(layers.Layer):
    """A stride-1 "same" convolution with the equalized learning rate (weights ~N(0, 1) times
    ``1 / sqrt(k * k * in_channels)`` at run time), bias, and ``linear`` / ``lrelu``."""

    def __init__(self, filters: int, kernel_size: int = 3, activation: str = "linear",
                 use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.activation, self.use_bias = activation, bool(use_bias)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        self.scale = equalized_lr_scale(self.kernel_size * self.kernel_size * cin)
        self.kernel = self.add_weight(name="kernel", initializer=keras.initializers.RandomNormal(0.0, 1.0),
                                      shape=(self.kernel_size, self.kernel_size, cin, self.filters))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        y = tf.nn.conv2d(x, self.kernel * self.scale, strides=1, padding="SAME")
        if self.use_bias:
            y = y + self.bias
        return _activate(y, self.activation)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "activation": self.activation, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="gen_keras")
class StyleConv(layers.Layer):
    """One synthesis layer: ``[x, w]`` or ``[x, w, noise]`` → features.

    The style ``s = A(w)`` is a learned affine map of w (equalized lr, bias initialized to 1 so
    modulation starts near identity); then the modulated convolution (demodulated unless
    ``demodulate=False``, as in the toRGB layers), optional 2x bilinear upsampling, per-pixel
    noise times a learned strength (initialized 0), the bias, and the activation.

    ``noise`` ``[N, H, W, 1]`` (training: fresh per-replica draws from the model) or, when
    absent, a FIXED noise map stored with the layer — so generation is deterministic per z,
    the export is a pure function, and ONNX matches Keras (StyleGAN2-ADA's "const" noise mode).
    """

    def __init__(self, filters: int, kernel_size: int = 3, upsample: bool = False,
                 demodulate: bool = True, use_noise: bool = True, activation: str = "lrelu", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.upsample, self.demodulate, self.use_noise = bool(upsample), bool(demodulate), bool(use_noise)
        self.activation = activation

    def build(self, input_shape):
        x_shape, w_shape = input_shape[0], input_shape[1]
        cin, w_dim = int(x_shape[-1]), int(w_shape[-1])
        self.affine_scale = equalized_lr_scale(w_dim)
        self.weight_scale = equalized_lr_scale(self.kernel_size * self.kernel_size * cin)
        normal = keras.initializers.RandomNormal(0.0, 1.0)
        self.affine_kernel = self.add_weight(name="affine_kernel", shape=(w_dim, cin), initializer=normal)
        self.affine_bias = self.add_weight(name="affine_bias", shape=(cin,), initializer="ones")
        self.kernel = self.add_weight(name="kernel", initializer=normal,
                                      shape=(self.kernel_size, self.kernel_size, cin, self.filters))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        if self.use_noise:
            h, w = int(x_shape[1]) * (2 if self.upsample else 1), int(x_shape[2]) * (2 if self.upsample else 1)
            self.noise_strength = self.add_weight(name="noise_strength", shape=(), initializer="zeros")
            self.fixed_noise = self.add_weight(name="fixed_noise", shape=(1, h, w, 1), initializer=normal,
                                               trainable=False)

    def styles(self, w):
        """``s = A(w)``: ``[N, in_channels]``."""
        return ops.matmul(w, self.affine_kernel * self.affine_scale) + self.affine_bias

    def call(self, inputs):
        x, w = inputs[0], inputs[1]
        y = modulated_conv2d(x, self.kernel * self.weight_scale, self.styles(w), self.demodulate)
        if self.upsample:
            # After the convolution: a 3x3 conv at the low resolution, then bilinear 2x — a
            # transposed convolution with a built-in low-pass filter (StyleGAN2 follows its
            # transposed convolution with a FIR blur), at a quarter of the cost of convolving
            # the upsampled map.
            y = ops.image.resize(y, (y.shape[1] * 2, y.shape[2] * 2), interpolation="bilinear")
        if self.use_noise:
            noise = inputs[2] if len(inputs) > 2 else ops.tile(self.fixed_noise, (ops.shape(y)[0], 1, 1, 1))
            y = y + self.noise_strength * ops.cast(noise, y.dtype)
        return _activate(y + self.bias, self.activation)

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        k = 2 if self.upsample else 1
        return (x_shape[0], None if x_shape[1] is None else x_shape[1] * k,
                None if x_shape[2] is None else x_shape[2] * k, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "upsample": self.upsample, "demodulate": self.demodulate,
                "use_noise": self.use_noise, "activation": self.activation}


@keras.saving.register_keras_serializable(package="gen_keras")
class ConstantInput(layers.Layer):
    """The learned constant the synthesis network starts from (Karras et al. 2019, sec. 2),
    ``[1, size, size, channels]`` ~N(0, 1), repeated for the batch of its input (the styles)."""

    def __init__(self, channels: int, size: int, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.size = int(channels), int(size)

    def build(self, input_shape):
        self.const = self.add_weight(name="const", shape=(1, self.size, self.size, self.channels),
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def call(self, batch_like):
        return ops.tile(self.const, (ops.shape(batch_like)[0], 1, 1, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "size": self.size}


@keras.saving.register_keras_serializable(package="gen_keras")
class PixelNorm(layers.Layer):
    """``z / sqrt(mean(z^2) + eps)`` over the last axis (Karras et al. 2018, sec. 4.2; the
    mapping network's input normalization in Karras et al. 2019)."""

    def call(self, z):
        return z * ops.rsqrt(ops.mean(ops.square(z), axis=-1, keepdims=True) + 1e-8)


@keras.saving.register_keras_serializable(package="gen_keras")
class Truncation(layers.Layer):
    """``[w, psi]`` → :func:`truncate` ``(w, w_avg, psi)``. Holds ``w_avg``, the average w the
    model tracks during training (an exponential moving average of the mapping network's
    outputs); it is a non-trainable weight, so it is saved, checkpointed and exported with the
    model. Runs in float32."""

    def __init__(self, w_dim: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.w_dim = int(w_dim)

    def build(self, input_shape):
        self.w_avg = self.add_weight(name="w_avg", shape=(self.w_dim,), initializer="zeros",
                                     trainable=False)

    def call(self, inputs):
        w, psi = inputs
        return truncate(w, self.w_avg, psi)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "w_dim": self.w_dim}


@keras.saving.register_keras_serializable(package="gen_keras")
class TakeStyle(layers.Layer):
    """``ws[:, index]``: the style of one synthesis layer from ``[N, num_ws, w_dim]``."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, ws):
        return ws[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="gen_keras")
class MixStyles(layers.Layer):
    """``[w1, w2, crossover]`` → :func:`mix_styles` ``(w1, w2, crossover, num_ws)``: per-layer
    styles ``[N, num_ws, w_dim]`` taking w1 before each item's crossover layer, w2 from it on."""

    def __init__(self, num_ws: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_ws = int(num_ws)

    def call(self, inputs):
        w1, w2, crossover = inputs
        return mix_styles(w1, w2, crossover, self.num_ws)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_ws, input_shape[0][1])

    def get_config(self):
        return {**super().get_config(), "num_ws": self.num_ws}


@keras.saving.register_keras_serializable(package="gen_keras")
class MinibatchStddev(layers.Layer):
    """:func:`minibatch_stddev` as a layer (one more channel)."""

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)

    def call(self, x):
        return minibatch_stddev(x, self.group_size)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


@keras.saving.register_keras_serializable(package="gen_keras")
class ScaledAdd(layers.Layer):
    """``(a + b) * scale``: the residual sum of StyleGAN2's discriminator blocks (scale
    1/sqrt(2) keeps the variance)."""

    def __init__(self, scale: float = 1.0 / SQRT2, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return (inputs[0] + inputs[1]) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
