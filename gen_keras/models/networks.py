"""Convolutional and dense (MLP) encoder / decoder builders for 28x28, 32x32 and 64x64 images.

Each builder returns a functional ``keras.Model`` with named inputs, so the same network is
trained inside a subclassed model, exported as a SavedModel signature and converted to ONNX.
Output layers run in float32 so mixed precision never reaches the likelihood.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers


def _base_size(image_shape) -> int:
    h = image_shape[0]
    return 7 if h == 28 else 4


def _num_downsamples(image_shape) -> int:
    h, base = image_shape[0], _base_size(image_shape)
    n = 0
    while h > base:
        h //= 2
        n += 1
    return n


def conv_encoder(image_shape, out_dims: list[int], *, filters: int = 32, hidden: int = 256,
                 out_names: list[str], name: str = "encoder", label_count: int = 0) -> keras.Model:
    """Image (and optional one-hot label) → one or more dense heads (``out_names``)."""
    x_in = keras.Input(tuple(image_shape), name="x")
    inputs = [x_in]
    h = x_in
    for i in range(_num_downsamples(image_shape)):
        h = layers.Conv2D(filters * 2 ** i, 4, strides=2, padding="same", name=f"conv{i}")(h)
        h = layers.Activation("relu")(h)
    h = layers.Flatten()(h)
    if label_count:
        y_in = keras.Input((), dtype="int32", name="label")
        inputs.append(y_in)
        h = layers.Concatenate()([h, OneHot(label_count, name="label_one_hot")(y_in)])
    h = layers.Dense(hidden, activation="relu", name="hidden")(h)
    outs = [layers.Dense(d, dtype="float32", name=n)(h) for d, n in zip(out_dims, out_names)]
    return keras.Model(inputs if len(inputs) > 1 else x_in, outs if len(outs) > 1 else outs[0],
                       name=name)


def mlp_encoder(image_shape, out_dims: list[int], *, hidden: int = 1200, num_layers: int = 2,
                out_names: list[str], name: str = "encoder", label_count: int = 0) -> keras.Model:
    """Image (and optional one-hot label) → flattened → ``num_layers`` dense ReLU layers of
    ``hidden`` units → one or more dense heads: the dSprites encoder of Chen et al. 2018
    (4096-1200-1200-z; appendix) with the defaults. A dense layer on 4,096 pixels is one large
    matrix product, which a CPU runs near its matmul peak, unlike strided convolutions."""
    x_in = keras.Input(tuple(image_shape), name="x")
    inputs = [x_in]
    h = layers.Flatten()(x_in)
    if label_count:
        y_in = keras.Input((), dtype="int32", name="label")
        inputs.append(y_in)
        h = layers.Concatenate()([h, OneHot(label_count, name="label_one_hot")(y_in)])
    for i in range(num_layers):
        h = layers.Dense(hidden, activation="relu", name=f"hidden{i}")(h)
    outs = [layers.Dense(d, dtype="float32", name=n)(h) for d, n in zip(out_dims, out_names)]
    return keras.Model(inputs if len(inputs) > 1 else x_in, outs if len(outs) > 1 else outs[0],
                       name=name)


def _code_inputs(latent_dim: int, label_count: int):
    """A decoder's inputs (``z``, and the int ``label`` when conditional) and the tensor its
    first layer reads: z, or [z, one-hot(label)]."""
    z_in = keras.Input((latent_dim,), name="z")
    if not label_count:
        return [z_in], z_in
    y_in = keras.Input((), dtype="int32", name="label")
    return [z_in, y_in], layers.Concatenate()([z_in, OneHot(label_count, name="label_one_hot")(y_in)])


def conv_decoder(image_shape, latent_dim: int, *, filters: int = 32, hidden: int = 256,
                 name: str = "decoder", label_count: int = 0, activation: str | None = None) -> keras.Model:
    """Latent ``z`` (and optional label) → image logits (``activation=None``) or image."""
    base = _base_size(image_shape)
    n = _num_downsamples(image_shape)
    inputs, h = _code_inputs(latent_dim, label_count)
    h = layers.Dense(hidden, activation="relu", name="hidden")(h)
    top = filters * 2 ** (n - 1)
    h = layers.Dense(base * base * top, activation="relu", name="project")(h)
    h = layers.Reshape((base, base, top))(h)
    for i in reversed(range(n)):
        h = layers.Conv2DTranspose(max(filters * 2 ** (i - 1), filters // 2) if i else filters,
                                   4, strides=2, padding="same", activation="relu",
                                   name=f"deconv{i}")(h)
    out = layers.Conv2D(image_shape[-1], 3, padding="same", dtype="float32", name="logits",
                        activation=activation)(h)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out, name=name)


def mlp_decoder(image_shape, latent_dim: int, *, hidden: int = 512, num_layers: int = 2,
                name: str = "decoder", label_count: int = 0,
                activation: str | None = None) -> keras.Model:
    """Latent ``z`` (and optional label) → ``num_layers`` dense ReLU layers → image logits.

    About 50x fewer operations per call than :func:`conv_decoder`; an importance-sampled
    likelihood calls the decoder k = 5000 times per test image, which a CPU affords only this way.
    """
    inputs, h = _code_inputs(latent_dim, label_count)
    for i in range(num_layers):
        h = layers.Dense(hidden, activation="relu", name=f"hidden{i}")(h)
    out = layers.Dense(int(image_shape[0] * image_shape[1] * image_shape[2]), dtype="float32",
                       activation=activation, name="logits")(h)
    out = layers.Reshape(tuple(image_shape), dtype="float32")(out)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out, name=name)


def broadcast_decoder(image_shape, latent_dim: int, *, units: int = 64, grid: int = 16,
                      num_layers: int = 2, name: str = "decoder", label_count: int = 0,
                      activation: str | None = None) -> keras.Model:
    """A spatial broadcast decoder (after Watters, Matthey, Burgess & Lerchner 2019, "Spatial
    Broadcast Decoder"): the code is broadcast to every cell of a ``grid`` x ``grid`` lattice
    beside the cell's (x, y) coordinates, ``num_layers`` per-cell dense ReLU layers of ``units``
    (1x1 convolutions) compute each cell's features and a last per-cell layer gives the cell's
    block of (height / grid) x (width / grid) pixel logits.

    Because the decoder is told where each cell is, moving the picture along x is one direction
    in its first layer's input (x and the code enter it linearly), so the cheapest code for a
    position factor is one code per axis — the inductive bias the paper measured for position.
    The paper broadcasts to every pixel with 3x3 convolutions; per-pixel layers cost 12-24x the
    dense decoder on this CPU, so this one broadcasts to 16 x 16 cells of 4 x 4 pixels (0.77x the
    dense decoder's images/s; ``bench/decoder_speed.py``, docs/disentanglement.md).
    """
    h_img, w_img, channels = (int(d) for d in image_shape)
    inputs, h = _code_inputs(latent_dim, label_count)
    h = layers.Dense(units, name="broadcast_code")(h)
    h = CoordinateBroadcast(grid, name="broadcast")(h)
    h = layers.Activation("relu")(h)
    for i in range(1, num_layers):
        h = layers.Dense(units, activation="relu", name=f"hidden{i}")(h)
    block = (h_img // grid) * (w_img // grid) * channels
    out = layers.Dense(block, dtype="float32", activation=activation, name="logits")(h)
    out = CellsToImage(tuple(image_shape), grid, dtype="float32", name="cells_to_image")(out)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out, name=name)


@keras.saving.register_keras_serializable(package="gen_keras")
class CoordinateBroadcast(layers.Layer):
    """Per-example features ``[B, U]`` → ``[B, grid * grid, U]``: the features in every cell
    plus a learned linear map of the cell centre's (x, y) in [-1, 1] (row-major cells). The same
    as tiling the code, appending two coordinate channels and applying a 1x1 convolution, without
    materializing the tiled input."""

    def __init__(self, grid: int, **kwargs):
        super().__init__(**kwargs)
        self.grid = int(grid)

    def build(self, input_shape):
        self.coordinate_kernel = self.add_weight(shape=(2, int(input_shape[-1])),
                                                 initializer="glorot_uniform", name="coordinate_kernel")

    def call(self, features):
        centres = (np.arange(self.grid, dtype="float32") + 0.5) / self.grid * 2.0 - 1.0
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        cells = keras.ops.convert_to_tensor(np.stack([xs.ravel(), ys.ravel()], axis=-1),
                                            dtype=self.compute_dtype)
        offsets = keras.ops.matmul(cells, keras.ops.cast(self.coordinate_kernel, self.compute_dtype))
        return keras.ops.expand_dims(features, 1) + keras.ops.expand_dims(offsets, 0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid * self.grid, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}


@keras.saving.register_keras_serializable(package="gen_keras")
class CellsToImage(layers.Layer):
    """``[B, grid * grid, bh * bw * C]`` row-major cells of pixel blocks → ``[B, H, W, C]``
    (a depth-to-space rearrangement)."""

    def __init__(self, image_shape, grid: int, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.grid = int(grid)

    def call(self, cells):
        h, w, c = self.image_shape
        g = self.grid
        x = keras.ops.reshape(cells, (-1, g, g, h // g, w // g, c))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return keras.ops.reshape(x, (-1, h, w, c))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape)

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape), "grid": self.grid}


@keras.saving.register_keras_serializable(package="gen_keras")
class OneHot(layers.Layer):
    """int labels ``[B]`` → float one-hot ``[B, depth]`` (exports to ONNX as a OneHot op)."""

    def __init__(self, depth: int, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)

    def call(self, labels):
        return keras.ops.one_hot(keras.ops.cast(labels, "int32"), self.depth, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


class TensorFunction(layers.Layer):
    """A weightless function of tensors as a layer, so an export operation can compute a loss or
    a reparameterization inside its graph (``score``). Export only: it holds a Python function,
    so it is never part of a saved ``.keras`` model."""

    def __init__(self, fn, name: str):
        super().__init__(name=name, dtype="float32", trainable=False)
        self.fn = fn

    def call(self, inputs):
        return self.fn(*inputs)
