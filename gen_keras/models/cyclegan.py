"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"): two generators G: A → B and F: B → A (residual encoder-decoders) and two
PatchGAN discriminators D_B (on B) and D_A (on A), trained on UNPAIRED batches (a, b) with

    L = L_LSGAN(G, D_B) + L_LSGAN(F, D_A) + lambda L_cyc(G, F) + lambda_id L_identity(G, F)

(eq. 3 of the paper, least-squares adversarial terms, sec. 4), lambda = 10, lambda_id =
0.5 lambda (sec. 5.2, the reference setting). D_A and D_B see generated images from a HISTORY
POOL of earlier generators' outputs (Shrivastava et al. 2017; 50 images in the paper), which
damps oscillation.

Four optimizers, one per network (``g_ab_optimizer``, ``g_ba_optimizer``, ``d_a_optimizer``,
``d_b_optimizer``): G and F minimize the same total loss, and Adam is per parameter, so two Adams
on G and F are the paper's one Adam over both. All four are in ``optimizers_to_track`` (the
checkpoint restores every one after a kill). One ``train_step``: a step of both generators, then
a step of both discriminators on the pooled fakes (the reference code's order).

The pool under a distribution strategy: every replica gathers the GLOBAL batch of fakes
(``all_gather``), runs the SAME query on it (its random numbers come from the model's seed
without the replica id, so they agree) and takes its own slice back; the pool variables are
written with ``only_first_replica`` aggregation, so the pool stays one pool, identical on every
replica, and a step on N replicas is the step one device takes on the same global batch.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gen_keras import translation_losses as tl
from gen_keras.errors import ConfigError
from gen_keras.models.base import replica_info
from gen_keras.models.registry import register_model
from gen_keras.models.translation import (
    TranslationConfig,
    TranslationModel,
    check_non_negative,
    check_positive,
)
from gen_keras.models.translation_networks import (
    patchgan_discriminator,
    patchgan_receptive_field,
    patchgan_strided_layers,
    residual_generator,
)


@dataclass
class CycleGANConfig(TranslationConfig):
    kind: str = "cyclegan"
    default_dataset: typing.ClassVar[str] = "unpaired:mnistm"  # data.dataset when the config names none
    image_shape: tuple[int, int, int] = (28, 28, 3)
    g_filters: int = 32  # f of c7s1-f (64 in the paper)
    residual_blocks: int = 6  # 6 for 128x128, 9 for 256x256 in the paper
    d_filters: int = 32
    d_strided_layers: int = 0  # 0 = by image side, as Pix2Pix: 16x16 patches at 28x28
    cycle_weight: float = 10.0  # lambda
    identity_weight: float = 0.5  # lambda_id / lambda
    pool_size: int = 50  # generated images kept for the discriminators; 0 = no pool

    pairing = "unpaired"

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        check_positive(self, prefix, "g_filters", "residual_blocks", "d_filters")
        check_non_negative(self, prefix, "cycle_weight", "identity_weight", "pool_size")
        if self.input_channels not in (0, self.image_shape[-1]):
            raise ConfigError(f"{prefix}.input_channels={self.input_channels}: both CycleGAN domains have "
                              f"the shape of image_shape {list(self.image_shape)}; leave it at 0")
        patchgan_strided_layers(prefix, self.d_strided_layers, self.image_shape[0])

    @property
    def strided_layers(self) -> int:
        return patchgan_strided_layers("model", self.d_strided_layers, self.image_shape[0])


def history_pool_choices(count: int, size: int, uniforms, slots, n: int):
    """The image history pool of Shrivastava et al. 2017 as integer bookkeeping, image by image
    in batch order, exactly as the CycleGAN reference ``ImagePool.query``: while the pool has
    room, a new image is stored and used; then, with probability 1/2 (``uniforms[i] > 0.5``) it
    replaces the stored image in slot ``slots[i]``, which is used instead, else it is used itself.

    Indices refer to ``concat(pool, new images)``: ``k < size`` is pool slot k, ``size + i`` new
    image i. Returns ``(used [n], pool_contents [size], new count)`` as int32 tensors; the
    caller gathers images with them once (no image is copied in the loop).
    """
    count = tf.convert_to_tensor(count, tf.int32)
    uniforms = tf.convert_to_tensor(uniforms, tf.float32)
    slots = tf.convert_to_tensor(slots, tf.int32)

    def body(i, count, contents, used):
        new = size + i
        full = count >= size

        def store():
            return count + 1, tf.tensor_scatter_nd_update(contents, [[count]], [new]), new

        def swap():
            slot = slots[i]
            old = contents[slot]
            return count, tf.tensor_scatter_nd_update(contents, [[slot]], [new]), old

        count, contents, chosen = tf.cond(
            full, lambda: tf.cond(uniforms[i] > 0.5, swap, lambda: (count, contents, new)), store)
        return i + 1, count, contents, used.write(i, chosen)

    used = tf.TensorArray(tf.int32, size=n)
    _, count, contents, used = tf.while_loop(
        lambda i, *_: i < n, body, (tf.constant(0), count, tf.range(size, dtype=tf.int32), used))
    return used.stack(), contents, count


@keras.saving.register_keras_serializable(package="gen_keras")
class HistoryPool(layers.Layer):
    """Up to ``size`` earlier generated images (see :func:`history_pool_choices`), as two
    non-trainable variables saved with the model and its checkpoints: the images and how many
    slots are filled. Written with ``only_first_replica`` aggregation: every replica computes
    the same update from the same global batch (see the module docstring)."""

    def __init__(self, size: int, image_shape, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.size, self.image_shape = int(size), tuple(int(d) for d in image_shape)
        self.images = self.add_weight(shape=(max(self.size, 1), *self.image_shape), initializer="zeros",
                                      trainable=False, aggregation="only_first_replica", name="images")
        self.count = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False,
                                     aggregation="only_first_replica", name="count")
        self.built = True

    def query(self, images, uniforms, slots):
        """The images the discriminator sees instead of ``images`` (``[n, ...]``, the GLOBAL
        batch); updates the pool."""
        images = tf.cast(images, tf.float32)
        if self.size == 0:
            return images
        n = tf.shape(images)[0]
        used, contents, count = history_pool_choices(self.count, self.size, uniforms, slots, n)
        everything = tf.concat([tf.convert_to_tensor(self.images), images], 0)
        self.images.assign(tf.gather(everything, contents))
        self.count.assign(count)
        return tf.gather(everything, used)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "image_shape": list(self.image_shape)}


@register_model("cyclegan", CycleGANConfig)
@keras.saving.register_keras_serializable(package="gen_keras")
class CycleGAN(TranslationModel):
    """Reported per epoch: ``g_loss`` (the total both generators minimize), ``adv_ab`` / ``adv_ba``
    (least-squares terms of G and F), ``cycle_a`` / ``cycle_b`` (mean |F(G(a)) - a|, |G(F(b)) -
    b|), ``identity`` (both directions), ``d_a_loss`` / ``d_b_loss``."""

    tracker_names = ("g_loss", "adv_ab", "adv_ba", "cycle_a", "cycle_b", "identity", "d_a_loss", "d_b_loss")
    optimizer_names = ("g_ab_optimizer", "g_ba_optimizer", "d_a_optimizer", "d_b_optimizer")

    def build_networks(self):
        c = self.config
        shape, channels = c.image_shape, c.image_shape[-1]
        self.generator_ab = residual_generator(shape, channels, c.g_filters, blocks=c.residual_blocks, name="generator_ab")
        self.generator_ba = residual_generator(shape, channels, c.g_filters, blocks=c.residual_blocks, name="generator_ba")
        self.discriminator_a = patchgan_discriminator(shape, c.d_filters, strided_layers=c.strided_layers,
                                                      norm="instance", name="discriminator_a")
        self.discriminator_b = patchgan_discriminator(shape, c.d_filters, strided_layers=c.strided_layers,
                                                      norm="instance", name="discriminator_b")
        self.pool_a = HistoryPool(c.pool_size, shape, name="pool_a")  # fake A images, for D_A
        self.pool_b = HistoryPool(c.pool_size, shape, name="pool_b")

    @property
    def receptive_field(self) -> int:
        return patchgan_receptive_field(self.config.strided_layers)

    def optimizer_variables(self, name):
        return {"g_ab_optimizer": self.generator_ab, "g_ba_optimizer": self.generator_ba,
                "d_a_optimizer": self.discriminator_a, "d_b_optimizer": self.discriminator_b}[name].trainable_variables

    def translators(self):
        return {"translate_a2b": self.generator_ab, "translate_b2a": self.generator_ba}

    def preview_columns(self, inputs, targets):
        """a | G(a) | F(G(a)) and b | F(b) | G(F(b)): each translation beside its cycle back."""
        a, b = np.asarray(inputs, np.float32), np.asarray(targets, np.float32)
        ab, ba = self.translate(a, "translate_a2b"), self.translate(b, "translate_b2a")
        return [a, ab, self.translate(ab, "translate_b2a"), b, ba, self.translate(ba, "translate_a2b")]

    # -- the step --------------------------------------------------------------------------------
    def generator_terms(self, a, b, training: bool):
        c = self.config
        fake_b = self.generator_ab(a, training=training)
        fake_a = self.generator_ba(b, training=training)
        terms = {
            "adv_ab": tl.least_squares_patch_generator_loss(self.discriminator_b(fake_b, training=training)),
            "adv_ba": tl.least_squares_patch_generator_loss(self.discriminator_a(fake_a, training=training)),
            "cycle_a": tl.cycle_consistency_loss(a, self.generator_ba(fake_b, training=training)),
            "cycle_b": tl.cycle_consistency_loss(b, self.generator_ab(fake_a, training=training)),
        }
        total = terms["adv_ab"] + terms["adv_ba"] + c.cycle_weight * (terms["cycle_a"] + terms["cycle_b"])
        if c.identity_weight:
            terms["identity"] = (tl.identity_loss(b, self.generator_ab(b, training=training))
                                 + tl.identity_loss(a, self.generator_ba(a, training=training)))
            total += c.identity_weight * c.cycle_weight * terms["identity"]
        else:
            terms["identity"] = tf.zeros_like(total)
        terms["g_loss"] = total
        return fake_a, fake_b, terms

    def discriminator_terms(self, a, b, fake_a, fake_b, training: bool):
        return {
            "d_a_loss": tl.least_squares_patch_discriminator_loss(
                self.discriminator_a(a, training=training), self.discriminator_a(fake_a, training=training)),
            "d_b_loss": tl.least_squares_patch_discriminator_loss(
                self.discriminator_b(b, training=training), self.discriminator_b(fake_b, training=training)),
        }

    def pooled(self, pool: HistoryPool, fake) -> tf.Tensor:
        """This replica's share of the pool's answer to the GLOBAL batch of ``fake`` images."""
        replicas, replica_id = replica_info()
        fake = tf.stop_gradient(tf.cast(fake, tf.float32))
        everyone = tf.distribute.get_replica_context().all_gather(fake, axis=0) if replicas > 1 else fake
        n = tf.shape(everyone)[0]
        # The model's seed WITHOUT the replica id: every replica draws the same numbers.
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        draws = tf.random.stateless_uniform([2, n], seed=seed)
        slots = tf.minimum(tf.cast(draws[1] * max(pool.size, 1), tf.int32), max(pool.size, 1) - 1)
        answer = pool.query(everyone, draws[0], slots)
        b = tf.shape(fake)[0]
        return answer[replica_id * b:(replica_id + 1) * b]

    def train_step(self, data):
        a, b = data
        generators = {"g_ab_optimizer": self.generator_ab, "g_ba_optimizer": self.generator_ba}
        with tf.GradientTape(persistent=True) as tape:
            fake_a, fake_b, g_terms = self.generator_terms(a, b, training=True)
            loss = self.global_mean(g_terms["g_loss"], a)
        for name, net in generators.items():
            self.apply_loss(tape, loss, net.trainable_variables, getattr(self, name))
        del tape
        pooled_a, pooled_b = self.pooled(self.pool_a, fake_a), self.pooled(self.pool_b, fake_b)
        with tf.GradientTape(persistent=True) as tape:
            d_terms = self.discriminator_terms(a, b, pooled_a, pooled_b, training=True)
            d_a, d_b = self.global_mean(d_terms["d_a_loss"], a), self.global_mean(d_terms["d_b_loss"], a)
        self.apply_loss(tape, d_a, self.discriminator_a.trainable_variables, self.d_a_optimizer)
        self.apply_loss(tape, d_b, self.discriminator_b.trainable_variables, self.d_b_optimizer)
        del tape
        return self.update_trackers({**g_terms, **d_terms})

    def test_step(self, data):
        a, b = data
        fake_a, fake_b, g_terms = self.generator_terms(a, b, training=False)
        return self.update_trackers({**g_terms, **self.discriminator_terms(a, b, fake_a, fake_b, training=False)})
