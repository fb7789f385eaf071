"""Convolutional and dense (MLP) encoder / decoder builders for 28x28, 32x32 and 64x64 images.

Each builder returns a functional ``keras.Model`` with named inputs, so the same network is
trained inside a subclassed model, exported as a SavedModel signature and converted to ONNX.
Output layers run in float32 so mixed precision never reaches the likelihood.
"""
from __future__ import annotations

import keras
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
