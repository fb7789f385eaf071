"""The networks of the image-to-image models: a U-Net and a PatchGAN (Pix2Pix), a residual
encoder-decoder (CycleGAN), a residual sub-pixel upsampler and an image classifier (SRGAN), and
the three layers they need beyond Keras' own (reflection padding, instance normalization,
depth-to-space). Each builder returns a functional ``keras.Model`` with named inputs, trained
inside a subclassed model, exported as a SavedModel signature and converted to ONNX; the output
layers run in float32, so mixed precision never reaches a loss.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="gen_keras")
class ReflectionPadding2D(layers.Layer):
    """Pads height and width by ``padding`` pixels mirrored from the border (no border row is
    repeated), as Johnson et al. 2016 and CycleGAN do to avoid border artefacts. Exports to ONNX
    as ``Pad(mode="reflect")``."""

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="gen_keras")
class InstanceNormalization(layers.Layer):
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` with the mean and variance of each
    example's channel over height and width (Ulyanov et al. 2016, "Instance Normalization");
    no running statistics, so training and inference compute the same thing. The statistics
    are taken in float32 whatever the compute precision."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon)
        y = y * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gen_keras")
class DepthToSpace(layers.Layer):
    """Sub-pixel rearrangement ``[B, H, W, r*r*C] → [B, r*H, r*W, C]`` (Shi et al. 2016,
    "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN"):
    ``out[b, r*h + i, r*w + j, c] = in[b, h, w, (r*i + j)*C + c]`` — TensorFlow's
    ``depth_to_space``, which exports to ONNX as ``DepthToSpace``."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return tf.nn.depth_to_space(x, self.block_size)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="gen_keras")
class ClipToRange(layers.Layer):
    """Values clipped to ``[low, high]`` (float32). Exports to ONNX as ``Clip``."""

    def __init__(self, low: float = -1.0, high: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.low, self.high = float(low), float(high)

    def call(self, x):
        return tf.clip_by_value(tf.cast(x, tf.float32), self.low, self.high)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


def _norm(kind: str, name: str, momentum: float = 0.9):
    if kind == "batch":
        return layers.BatchNormalization(momentum=momentum, name=name)
    if kind == "instance":
        return InstanceNormalization(name=name)
    if kind == "none":
        return None
    raise ValueError(f"unknown normalization {kind!r}")


def _apply(layer, h):
    return h if layer is None else layer(h)


# ----------------------------------------------------------------------------------------------
# Pix2Pix: U-Net generator, PatchGAN discriminator
# ----------------------------------------------------------------------------------------------
def unet_generator(input_shape, output_channels: int, filters: int = 32, *, max_filters_factor: int = 8,
                   dropout: float = 0.5, dropout_layers: int = 3, name: str = "generator") -> keras.Model:
    """The U-Net of Isola et al. 2017 (sec. 3.2.1, appendix 6.1.1): an encoder of stride-2 4x4
    convolutions down to 1x1 (C64-C128-C256-C512-... capped at ``max_filters_factor`` x
    ``filters``; batch norm on all but the first and the innermost; LeakyReLU 0.2), a mirrored
    decoder of stride-2 transposed convolutions (batch norm, ReLU; dropout on the first
    ``dropout_layers``, the model's only noise) and a skip connection concatenating encoder
    layer ``i`` to decoder layer ``n - i``; a tanh output.

    The side is zero-padded up to the next power of two (28 → 32) so the encoder reaches 1x1 in
    whole halvings, and the output cropped back: 28x28 has 5 levels, 64x64 six (256x256 eight,
    as in the paper).
    """
    h, w, _ = (int(d) for d in input_shape)
    side = 2 ** math.ceil(math.log2(max(h, w)))
    levels = int(math.log2(side))
    x_in = keras.Input(tuple(input_shape), name="x")
    pad_h, pad_w = side - h, side - w
    pad = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    e = layers.ZeroPadding2D(pad, name="pad")(x_in) if pad_h or pad_w else x_in
    widths = [filters * min(2 ** i, max_filters_factor) for i in range(levels)]
    skips = []
    for i, f in enumerate(widths):
        e = layers.Conv2D(f, 4, strides=2, padding="same", use_bias=i in (0, levels - 1), name=f"down{i}")(e)
        if 0 < i < levels - 1:
            e = layers.BatchNormalization(momentum=0.9, name=f"down{i}_bn")(e)
        e = layers.LeakyReLU(0.2, name=f"down{i}_act")(e)
        skips.append(e)
    d = skips[-1]
    for j, i in enumerate(reversed(range(levels - 1))):  # decoder level j mirrors encoder i
        d = layers.Conv2DTranspose(widths[i], 4, strides=2, padding="same", use_bias=False, name=f"up{j}")(d)
        d = layers.BatchNormalization(momentum=0.9, name=f"up{j}_bn")(d)
        if j < dropout_layers and dropout:
            d = layers.Dropout(dropout, name=f"up{j}_dropout")(d)
        d = layers.ReLU(name=f"up{j}_act")(d)
        d = layers.Concatenate(name=f"skip{i}")([d, skips[i]])
    out = layers.Conv2DTranspose(output_channels, 4, strides=2, padding="same", name="up_out")(d)
    if pad_h or pad_w:
        out = layers.Cropping2D(pad, name="crop")(out)
    out = layers.Activation("tanh", dtype="float32", name="image")(out)
    return keras.Model(x_in, out, name=name)


# The number of stride-2 layers of the PatchGAN for each image side (pix2pix's and CycleGAN's
# module docstrings say why), when a config leaves ``d_strided_layers`` at 0.
DEFAULT_D_STRIDED_LAYERS = {28: 1, 32: 1, 64: 2}


def patchgan_strided_layers(prefix: str, requested: int, side: int) -> int:
    """A config's ``d_strided_layers`` (0: by the image side), checked: it must leave patches of
    at least 4x4 on the image side."""
    from gen_keras.errors import ConfigError

    if requested < 0 or 2 ** requested > side // 4:
        raise ConfigError(f"{prefix}.d_strided_layers={requested} must be 0 (by image "
                          f"side) or leave at least 4x4 patches on a {side}-pixel side")
    return requested or DEFAULT_D_STRIDED_LAYERS.get(int(side), 2)


def patchgan_receptive_field(strided_layers: int) -> int:
    """The receptive field (pixels per side) of one output of :func:`patchgan_discriminator`
    with ``strided_layers`` stride-2 layers: going back from the output, a k x k stride-s layer
    maps a field r to ``(r - 1) s + k``. The 4x4 output conv gives 4, the stride-1 conv 7, each
    strided conv ``2 (r - 1) + 4``: 16, 34, 70 for 1, 2, 3 strided layers (70 is the paper's
    70x70 PatchGAN)."""
    r = 4 + 3
    for _ in range(strided_layers):
        r = 2 * (r - 1) + 4
    return r


def patchgan_discriminator(image_shape, filters: int = 64, *, strided_layers: int = 1,
                           condition_shape=None, norm: str = "batch", name: str = "discriminator") -> keras.Model:
    """A PatchGAN (Isola et al. 2017, sec. 3.2.2, appendix 6.1.2): ``strided_layers`` stride-2 4x4
    convolutions (C64-C128-...; no norm on the first; LeakyReLU 0.2), one stride-1 4x4
    convolution, and a 4x4 convolution to one logit per patch. Each logit sees a
    :func:`patchgan_receptive_field` square of the input; the output map is
    ``side / 2**strided_layers`` on a side ('same' padding).

    The paper's 70x70 PatchGAN (3 strided layers) on 256x256 images is this network with a
    field of 27% of the side. Scaled to digits: 28x28 uses 1 strided layer (16x16 patches, a
    14x14 map) — a patch spans a stroke and its neighbourhood and is larger than the 12x12
    inpainting hole, so D judges whether the fill continues the strokes around it, while a
    field as large as the image (2 strided layers: 34 > 28) would make it an image
    discriminator, which Isola et al. found no better and slower to train; 64x64 uses 2 (34x34
    patches, a 16x16 map), the same ~55% of the side.

    ``condition_shape``: the conditional D of Pix2Pix sees the input image concatenated to the
    (real or generated) output on the channel axis (inputs ``x`` and ``y``); None: an
    unconditional D on ``y`` alone (CycleGAN).
    """
    y_in = keras.Input(tuple(image_shape), name="y")
    inputs, h = y_in, y_in
    if condition_shape is not None:
        x_in = keras.Input(tuple(condition_shape), name="x")
        inputs = [x_in, y_in]
        h = layers.Concatenate(name="x_y")([x_in, y_in])
    for i in range(strided_layers):
        h = layers.Conv2D(filters * 2 ** i, 4, strides=2, padding="same", use_bias=i == 0 or norm == "none",
                          name=f"conv{i}")(h)
        if i:
            h = _apply(_norm(norm, f"conv{i}_norm"), h)
        h = layers.LeakyReLU(0.2, name=f"conv{i}_act")(h)
    h = layers.Conv2D(filters * 2 ** strided_layers, 4, padding="same", use_bias=norm == "none",
                      name=f"conv{strided_layers}")(h)
    h = _apply(_norm(norm, f"conv{strided_layers}_norm"), h)
    h = layers.LeakyReLU(0.2, name=f"conv{strided_layers}_act")(h)
    logits = layers.Conv2D(1, 4, padding="same", dtype="float32", name="patch_logits")(h)
    return keras.Model(inputs, logits, name=name)


# ----------------------------------------------------------------------------------------------
# CycleGAN: the residual encoder-decoder of Johnson et al. 2016
# ----------------------------------------------------------------------------------------------
def residual_generator(image_shape, output_channels: int, filters: int = 32, *, blocks: int = 6,
                       downsamplings: int = 2, name: str = "generator") -> keras.Model:
    """Zhu et al. 2017, appendix 7.2 (after Johnson et al. 2016): c7s1-f, d2f, d4f, R4f x
    ``blocks``, u2f, uf, c7s1-C (f = 64 and 6 / 9 blocks for 128 / 256 images in the paper):
    reflection padding, instance norm and ReLU throughout, residual blocks of two 3x3 convs
    with an identity shortcut, a tanh output. A 28x28 image is processed at 7x7 in the blocks."""
    x_in = keras.Input(tuple(image_shape), name="x")
    h = ReflectionPadding2D(3, name="in_pad")(x_in)
    h = layers.Conv2D(filters, 7, use_bias=False, name="in_conv")(h)
    h = layers.ReLU()(InstanceNormalization(name="in_norm")(h))
    for i in range(downsamplings):
        h = layers.Conv2D(filters * 2 ** (i + 1), 3, strides=2, padding="same", use_bias=False, name=f"down{i}")(h)
        h = layers.ReLU()(InstanceNormalization(name=f"down{i}_norm")(h))
    width = filters * 2 ** downsamplings
    for b in range(blocks):
        r = ReflectionPadding2D(1, name=f"res{b}_pad_a")(h)
        r = layers.Conv2D(width, 3, use_bias=False, name=f"res{b}_conv_a")(r)
        r = layers.ReLU()(InstanceNormalization(name=f"res{b}_norm_a")(r))
        r = ReflectionPadding2D(1, name=f"res{b}_pad_b")(r)
        r = layers.Conv2D(width, 3, use_bias=False, name=f"res{b}_conv_b")(r)
        r = InstanceNormalization(name=f"res{b}_norm_b")(r)
        h = layers.Add(name=f"res{b}")([h, r])
    for i in reversed(range(downsamplings)):
        h = layers.Conv2DTranspose(filters * 2 ** i, 3, strides=2, padding="same", use_bias=False, name=f"up{i}")(h)
        h = layers.ReLU()(InstanceNormalization(name=f"up{i}_norm")(h))
    h = ReflectionPadding2D(3, name="out_pad")(h)
    h = layers.Conv2D(output_channels, 7, name="out_conv")(h)
    out = layers.Activation("tanh", dtype="float32", name="image")(h)
    return keras.Model(x_in, out, name=name)


# ----------------------------------------------------------------------------------------------
# Super-resolution: SRResNet generator, SRGAN discriminator (Ledig et al. 2017)
# ----------------------------------------------------------------------------------------------
def subpixel_generator(input_shape, output_channels: int, filters: int = 64, *, blocks: int = 8,
                       scale: int = 4, name: str = "generator") -> keras.Model:
    """The SRResNet of Ledig et al. 2017 (fig. 4): a 9x9 conv with PReLU, ``blocks`` residual
    blocks (3x3 conv, PReLU, 3x3 conv, identity shortcut), a 3x3 conv with a long shortcut over
    all blocks, then ``log2(scale)`` x2 sub-pixel stages (a 3x3 conv to 4 f channels,
    :class:`DepthToSpace` by 2, PReLU) and a 9x9 conv to the image.

    Two changes from the paper: batch normalization is left out of the residual blocks (Lim et
    al. 2017, "Enhanced Deep Residual Networks for Single Image Super-Resolution", sec. 3.1: it
    removes range flexibility, and SR works better without it); and the network predicts a
    RESIDUAL over the bicubic upsampling of its input (the global residual learning of Kim et
    al. 2016, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks"), clipped
    to [-1, 1], instead of the image through a tanh. With tanh, L1 training on digits (80%
    black pixels, whose L1 gradient all points down) drove every output to -1 within 20 Adam
    steps, where tanh's gradient vanishes and training never recovered (seen here at learning
    rates 1e-4 to 1e-3); the residual starts at the bicubic image and learns the detail.
    """
    stages = round(math.log2(scale))
    if 2 ** stages != scale:
        raise ValueError(f"scale={scale} must be a power of two")
    x_in = keras.Input(tuple(input_shape), name="x")
    h = layers.Conv2D(filters, 9, padding="same", name="in_conv")(x_in)
    h = head = layers.PReLU(shared_axes=[1, 2], name="in_prelu")(h)
    for b in range(blocks):
        r = layers.Conv2D(filters, 3, padding="same", name=f"res{b}_conv_a")(h)
        r = layers.PReLU(shared_axes=[1, 2], name=f"res{b}_prelu")(r)
        r = layers.Conv2D(filters, 3, padding="same", name=f"res{b}_conv_b")(r)
        h = layers.Add(name=f"res{b}")([h, r])
    h = layers.Conv2D(filters, 3, padding="same", name="body_conv")(h)
    h = layers.Add(name="long_skip")([head, h])
    for s in range(stages):
        h = layers.Conv2D(filters * 4, 3, padding="same", name=f"up{s}_conv")(h)
        h = DepthToSpace(2, name=f"up{s}_shuffle")(h)
        h = layers.PReLU(shared_axes=[1, 2], name=f"up{s}_prelu")(h)
    h = layers.Conv2D(output_channels, 9, padding="same", dtype="float32", name="out_conv")(h)
    base = layers.UpSampling2D(scale, interpolation="bicubic", dtype="float32", name="bicubic")(x_in)
    out = layers.Add(dtype="float32", name="residual")([base, h])
    out = ClipToRange(-1.0, 1.0, name="image")(out)
    return keras.Model(x_in, out, name=name)


def sr_discriminator(image_shape, filters: int = 32, *, strided_blocks: int = 2, dense: int = 256,
                     name: str = "discriminator") -> keras.Model:
    """The SRGAN discriminator (Ledig et al. 2017, fig. 4), scaled to digits: a 3x3 conv with
    LeakyReLU 0.2, then ``strided_blocks`` pairs of 3x3 convs (stride 2 then 1, batch norm,
    LeakyReLU) doubling the width — the paper has 4 pairs from 64 channels for 96x96 crops;
    2 pairs from 32 bring a 28x28 digit to 7x7 — a dense layer and one logit."""
    y_in = keras.Input(tuple(image_shape), name="y")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 3, padding="same", name="conv_in")(y_in))
    for b in range(strided_blocks):
        f = filters * 2 ** b
        for stride in (2, 1):
            h = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"conv{b}_s{stride}")(h)
            h = layers.BatchNormalization(momentum=0.9, name=f"conv{b}_s{stride}_bn")(h)
            h = layers.LeakyReLU(0.2)(h)
    h = layers.Flatten()(h)
    h = layers.LeakyReLU(0.2)(layers.Dense(dense, name="dense")(h))
    logit = layers.Dense(1, dtype="float32", name="logit")(h)
    return keras.Model(y_in, logit, name=name)
