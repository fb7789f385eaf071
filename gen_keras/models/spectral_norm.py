"""Spectral normalization (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
Networks"): each weight matrix of the discriminator is divided by its largest singular value,
estimated by one power iteration per training call (their Algorithm 1), which bounds every
layer's Lipschitz constant by 1 without per-example statistics (unlike batch norm) and costs
one matrix-vector product pair per layer.

``d_norm: spectral`` in the DCGAN family puts :class:`SpectralConv2D` and :class:`SpectralDense`
in place of D's convolutions and score layer (and no normalization layers). The gradient flows
through sigma as in the paper (``u`` and ``v`` are constants of the step); the estimate ``u``
is a non-trainable weight, updated only in training calls.

Keras' own ``SpectralNormalization`` wrapper assigns the normalized kernel back into the wrapped
layer's trainable weight, so the gradient never sees the division; these layers keep the raw
weight and normalize it on the way in.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


def spectral_norm(w_mat: tf.Tensor, u: tf.Tensor, epsilon: float = 1e-12):
    """``(sigma, u_new)`` after one power iteration on ``w_mat`` ``[fan_in, out]`` from the
    estimate ``u`` ``[out]`` of its top right-singular vector:
    ``v = W u / ||W u||``, ``u_new = W^T v / ||W^T v||``, ``sigma = v^T W u_new`` (Miyato et al.
    2018, Algorithm 1, with their W as our ``w_mat^T``). ``u`` and ``v`` carry no gradient."""
    w_mat = tf.cast(w_mat, tf.float32)
    u = tf.cast(u, tf.float32)
    v = tf.math.l2_normalize(tf.linalg.matvec(w_mat, u), epsilon=epsilon)
    u_new = tf.math.l2_normalize(tf.linalg.matvec(w_mat, v, transpose_a=True), epsilon=epsilon)
    v, u_new = tf.stop_gradient(v), tf.stop_gradient(u_new)
    sigma = tf.tensordot(v, tf.linalg.matvec(w_mat, u_new), 1)
    return sigma, u_new


class _SpectralLayer(layers.Layer):
    def _add_estimate(self, out: int):
        self.u = self.add_weight(name="u", shape=(out,), trainable=False,
                                 initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def normalized_kernel(self, training):
        sigma, u_new = spectral_norm(tf.reshape(self.kernel, [-1, self.kernel.shape[-1]]), self.u)
        if training:
            self.u.assign(u_new)
        return self.kernel / tf.cast(sigma, self.kernel.dtype)


@keras.saving.register_keras_serializable(package="gen_keras")
class SpectralConv2D(_SpectralLayer):
    """``Conv2D(filters, kernel_size, strides, padding)`` with a spectrally normalized kernel."""

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding: str = "same",
                 use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding, self.use_bias = padding, bool(use_bias)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", initializer="glorot_uniform",
                                      shape=(self.kernel_size, self.kernel_size, cin, self.filters))
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        self._add_estimate(self.filters)

    def call(self, x, training=False):
        y = tf.nn.conv2d(x, self.normalized_kernel(training), self.strides, self.padding.upper())
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        def out(n):
            if n is None:
                return None
            return -(-n // self.strides) if self.padding == "same" else (n - self.kernel_size) // self.strides + 1
        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="gen_keras")
class SpectralDense(_SpectralLayer):
    """``Dense(units)`` with a spectrally normalized kernel."""

    def __init__(self, units: int, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = int(units), bool(use_bias)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units),
                                      initializer="glorot_uniform")
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self._add_estimate(self.units)

    def call(self, x, training=False):
        y = tf.matmul(x, self.normalized_kernel(training))
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias}
