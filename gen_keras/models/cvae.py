"""The conditional VAE (Sohn, Lee & Yan 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models"): the label y enters both networks,

    q(z | x, y) (encoder),   p(x | z, y) (decoder),   p(z) = N(0, I),

and the objective is the VAE's -ELBO conditioned on y (Sohn et al., eq. 4 with the prior
network replaced by N(0, I), as in their baseline CVAE). Sampling z ~ N(0, I) with a chosen y
generates that class; z then carries what the label does not (the "style" of the digit).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from gen_keras.models.registry import register_model
from gen_keras.models.vae import VAE, VAEConfig


@dataclass
class ConditionalVAEConfig(VAEConfig):
    kind: str = "cvae"
    num_classes: int = 10

    conditional: typing.ClassVar[bool] = True


def check_labels(labels, num_classes: int, what: str = "labels"):
    """int32 labels; a clear error for missing labels or (when they are concrete) a class
    outside ``[0, num_classes)``. Symbolic labels inside a traced train_step are not checked
    here: the data pipeline has already checked the data set's class count."""
    if labels is None:
        raise ValueError(f"this model is class-conditional: pass {what} (ints in "
                         f"[0, {num_classes}))")
    if isinstance(labels, (keras.KerasTensor,)) or (
            isinstance(labels, tf.Tensor) and not tf.executing_eagerly()):
        return tf.cast(labels, tf.int32)
    values = np.asarray(labels)
    if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 0
                        or values.max() >= num_classes):
        bad = sorted({v for v in values.ravel().tolist()
                      if not float(v).is_integer() or not 0 <= v < num_classes})
        raise ValueError(f"unknown class(es) {bad[:10]} in {what}: this model knows classes "
                         f"0..{num_classes - 1}")
    return tf.convert_to_tensor(values.astype(np.int32))


@register_model("cvae", ConditionalVAEConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class ConditionalVAE(VAE):
    """A :class:`VAE` whose encoder and decoder both take the one-hot label."""

    def label_count(self) -> int:
        return self.config.num_classes

    def encoder_inputs(self, x, labels):
        # Keras refuses a list mixing numpy arrays and tensors: make both tensors.
        return [tf.convert_to_tensor(x, tf.float32), check_labels(labels, self.config.num_classes)]

    def decoder_inputs(self, z, labels):
        return [tf.convert_to_tensor(z, tf.float32), check_labels(labels, self.config.num_classes)]

    def call(self, inputs, training=False):
        """``(x, labels)`` → the decoded posterior mean (labels are required)."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("ConditionalVAE is called on (images, labels)")
        x, labels = inputs
        mean, _ = self.encode(x, labels, training=training)
        return self.decode(mean, labels, training=training)
