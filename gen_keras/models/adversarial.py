"""What every GAN here shares: its config, two optimizers, the alternating update, and the
compile config that lets ``load_model`` restore both optimizers.

A kind only builds its two networks (``build_generator`` / ``build_discriminator``) and says how
labels reach them (``generator_inputs`` / ``discriminator_inputs``, the conditional GAN). The
objective is a pair of loss names (``d_loss`` / ``g_loss``) looked up in :mod:`gen_keras.losses`;
WGAN-GP is the same update with the Wasserstein losses, a gradient penalty and n_critic = 5.

The update (Goodfellow et al. 2014, Algorithm 1) per ``train_step`` on a batch of ``b`` real
images per replica, with ``k = d_steps``:

* the real batch is SPLIT into ``k`` chunks of ``m = b / k``; discriminator step ``i`` uses chunk
  ``i`` and its own fresh noise, so every D step sees its own minibatch of real AND generated
  examples (as Algorithm 1 samples both anew for each of the k steps) and an epoch passes over the
  data once. ``train.batch_size`` is therefore ``k * m`` (times the replicas);
* then one generator step on ``m`` fresh noise vectors (with the last chunk's labels for the
  conditional GAN, so generated classes follow the data's class frequencies).

Every loss is per example and averaged over the GLOBAL batch (``average_over_global_batch``), so a
step on N replicas applies the update one device applies to the same global batch; all noise
comes from ``replica_normal`` / ``replica_uniform`` (different on every replica).

The data-efficient recipe, for every kind, off by default (configs without these fields train as
before): ``augment`` runs differentiable augmentation (:mod:`gen_keras.augment`, Zhao et al. 2020)
on every image D sees, real and generated, in both players' steps; ``r1_gamma`` adds the R1
penalty (Mescheder et al. 2018) on the (augmented) real images, lazily every ``r1_interval``-th
discriminator step with its weight multiplied by the interval (Karras et al. 2020, sec. 3.1).
A kind that generates differently (the style-based generator: mixing, per-layer noise)
overrides only :meth:`AdversarialModel.fake_images`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from gen_keras import augment as diff_augment
from gen_keras import losses
from gen_keras.config import ModelConfig
from gen_keras.errors import ConfigError
from gen_keras.models.base import Endpoint, GenerativeModel, make_optimizer

# name -> per-example loss; each D loss takes (real_outputs, fake_outputs), each G loss fake_outputs.
DISCRIMINATOR_LOSSES = {
    "bce": losses.discriminator_loss,
    "least_squares": losses.least_squares_discriminator_loss,
    "hinge": losses.hinge_discriminator_loss,
    "wasserstein": losses.wasserstein_critic_loss,
}
GENERATOR_LOSSES = {
    "non_saturating": losses.non_saturating_generator_loss,
    "minimax": losses.minimax_generator_loss,
    "least_squares": losses.least_squares_generator_loss,
    "hinge": losses.hinge_generator_loss,
    "wasserstein": losses.wasserstein_generator_loss,
}
# The generator losses that belong to each discriminator loss's game.
COMPATIBLE_LOSSES = {
    "bce": ("non_saturating", "minimax"),
    "least_squares": ("least_squares",),
    "hinge": ("hinge", "wasserstein"),
    "wasserstein": ("wasserstein",),
}


@dataclass
class AdversarialConfig(ModelConfig):
    """Fields every GAN kind shares. The two optimizers take their settings from HERE, not from
    ``train.learning_rate`` / ``train.beta_*`` (GANs want other values than the VAE family);
    ``train.optimizer`` and ``train.lr_scaling`` still apply."""

    kind: str = "gan"
    latent_dim: int = 64
    d_loss: str = "bce"  # bce | least_squares | hinge | wasserstein
    g_loss: str = "non_saturating"  # non_saturating | minimax | least_squares | hinge | wasserstein
    label_smoothing: float = 0.0  # one-sided (real target 1 - s); bce only
    d_steps: int = 1  # k of Goodfellow et al. / n_critic of WGAN-GP
    gradient_penalty_weight: float = 0.0  # lambda of WGAN-GP; 0 = no penalty
    d_learning_rate: float = 2e-4
    g_learning_rate: float = 2e-4
    beta_1: float = 0.5  # Radford et al. 2015: 0.9 oscillates, 0.5 trains stably
    beta_2: float = 0.999
    # > 0: also keep an exponential moving average of G's weights and sample / export from it
    # (Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training").
    g_ema_decay: float = 0.0
    # The data-efficient recipe (off by default). DiffAugment (Zhao et al. 2020) on every image
    # D sees, real and fake: any of "color", "translation", "cutout" (applied in that order).
    augment: list[str] = field(default_factory=list)
    augment_translation: float = 0.125  # largest shift, as a fraction of the image size
    augment_cutout: float = 0.5  # side of the cut-out square, as a fraction of the image size
    # R1 (Mescheder et al. 2018): + r1_gamma / 2 * ||grad_x D(x)||^2 on real images; 0 = off.
    r1_gamma: float = 0.0
    # Lazy regularization (Karras et al. 2020, sec. 3.1): R1 on every r1_interval-th D step only,
    # its weight multiplied by r1_interval so the expected gradient is unchanged.
    r1_interval: int = 4
    # Guards (gen_keras.training.guards): warnings on the MLflow run, never a stop.
    collapse_epsilon: float = 0.02  # D collapse: mean D(x) > 1 - eps and mean D(G(z)) < eps ...
    collapse_steps: int = 100  # ... for this many consecutive steps
    mode_collapse_threshold: float = 0.15  # mean pairwise RMS distance of a fixed sample batch
    mode_collapse_samples: int = 64

    value_range = (-1.0, 1.0)  # tanh generators; the data pipeline scales to it

    def validate(self, prefix: str = "model") -> None:
        super().validate(prefix)
        _choice(self.d_loss, DISCRIMINATOR_LOSSES, f"{prefix}.d_loss")
        _choice(self.g_loss, GENERATOR_LOSSES, f"{prefix}.g_loss")
        if self.g_loss not in COMPATIBLE_LOSSES[self.d_loss]:
            raise ConfigError(f"{prefix}.g_loss={self.g_loss!r} does not belong to "
                              f"d_loss={self.d_loss!r}; use one of {list(COMPATIBLE_LOSSES[self.d_loss])}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"{prefix}.label_smoothing={self.label_smoothing} must be in [0, 0.5)")
        if self.label_smoothing and self.d_loss != "bce":
            raise ConfigError(f"{prefix}.label_smoothing={self.label_smoothing} applies only to "
                              f"d_loss='bce' (got {self.d_loss!r})")
        for name in ("d_steps", "collapse_steps", "mode_collapse_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be >= 1")
        for name in ("d_learning_rate", "g_learning_rate"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be > 0")
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be in [0, 1)")
        if not 0.0 <= self.g_ema_decay < 1.0:
            raise ConfigError(f"{prefix}.g_ema_decay={self.g_ema_decay} must be in [0, 1)")
        unknown = [op for op in self.augment if op not in diff_augment.OPERATIONS]
        if unknown or len(set(self.augment)) != len(self.augment):
            raise ConfigError(f"{prefix}.augment={list(self.augment)} must list distinct operations "
                              f"from {list(diff_augment.OPERATIONS)}")
        for name in ("augment_translation", "augment_cutout"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be in (0, 1)")
        if self.r1_gamma < 0:
            raise ConfigError(f"{prefix}.r1_gamma={self.r1_gamma} must be >= 0")
        if self.r1_interval < 1:
            raise ConfigError(f"{prefix}.r1_interval={self.r1_interval} must be >= 1")
        if self.gradient_penalty_weight < 0:
            raise ConfigError(f"{prefix}.gradient_penalty_weight={self.gradient_penalty_weight} "
                              "must be >= 0")
        if not 0.0 < self.collapse_epsilon < 0.5:
            raise ConfigError(f"{prefix}.collapse_epsilon={self.collapse_epsilon} must be in (0, 0.5)")
        if self.mode_collapse_threshold < 0:
            raise ConfigError(f"{prefix}.mode_collapse_threshold={self.mode_collapse_threshold} "
                              "must be >= 0")


def _choice(value, choices, name):
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {list(choices)}")


class AdversarialModel(GenerativeModel):
    """A generator G(z[, label]) → image in [-1, 1] and a discriminator D(x[, label]) → one raw
    score (a logit for ``d_loss='bce'``), trained with two optimizers.

    Reported (one ``Mean`` each, per epoch): ``d_loss`` (everything D minimizes, penalty
    included), ``g_loss``, ``d_real`` and ``d_fake`` (mean D(x) and D(G(z)) — probabilities
    for ``bce``, raw scores for the other losses), ``gp`` when a gradient penalty is used and
    ``r1`` (mean ||grad_x D(x)||^2 over the steps that computed it) when R1 is.
    """

    def build_networks(self):
        self.generator = self.build_generator("generator")
        self.discriminator = self.build_discriminator()
        if self.config.g_ema_decay:
            self.generator_ema = self.build_generator("generator_ema")
            self.generator_ema.set_weights(self.generator.get_weights())
            self.generator_ema.trainable = False

    def build_generator(self, name: str) -> keras.Model:
        raise NotImplementedError

    def build_discriminator(self) -> keras.Model:
        raise NotImplementedError

    @property
    def tracker_names(self):
        names = ("d_loss", "g_loss", "d_real", "d_fake")
        names += ("gp",) if self.config.gradient_penalty_weight else ()
        return names + (("r1",) if self.config.r1_gamma else ())

    @property
    def reports_probabilities(self) -> bool:
        """True when D's outputs are logits, so ``d_real`` / ``d_fake`` are probabilities."""
        return self.config.d_loss == "bce"

    # -- how labels reach the networks (the conditional GAN overrides both) -------------------
    def generator_inputs(self, z, labels):
        return z

    def discriminator_inputs(self, x, labels):
        return x

    def call(self, inputs, training=False):
        """``G(z)`` (or ``G([z, label])``)."""
        return self.generator(inputs, training=training)

    @property
    def sampler(self) -> keras.Model:
        """The generator that samples and is exported: the weight average when there is one."""
        return self.generator_ema if self.config.g_ema_decay else self.generator

    def generate(self, z, labels=None):
        """Images in [-1, 1] for latent codes ``z`` (and int labels, for conditional kinds)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if labels is not None:
            labels = tf.convert_to_tensor(labels, tf.int32)
        return self.sampler(self.generator_inputs(z, labels), training=False)

    def discriminate(self, x, labels=None, training=False):
        """D's raw outputs as float32 ``[batch]``."""
        out = self.discriminator(self.discriminator_inputs(x, labels), training=training)
        return tf.reshape(tf.cast(out, tf.float32), [-1])

    def export_endpoints(self):
        return [Endpoint("generate", self.sampler, ["image"])]

    # -- compiling: two optimizers, and a compile config so load_model restores both ----------
    def compile(self, d_optimizer=None, g_optimizer=None, d_loss=None, g_loss=None, **kwargs):
        """``d_optimizer`` / ``g_optimizer``: Keras optimizers (default: Adam with the config's
        rates and betas); ``d_loss`` / ``g_loss``: names from ``DISCRIMINATOR_LOSSES`` /
        ``GENERATOR_LOSSES`` (default: the config's). Other keyword arguments (``jit_compile``,
        ``steps_per_execution``, ``run_eagerly``) go to ``keras.Model.compile``. Both optimizers are
        built here, so create the model and call this inside the strategy scope."""
        c = self.config
        d_loss = d_loss or c.d_loss
        g_loss = g_loss or c.g_loss
        _choice(d_loss, DISCRIMINATOR_LOSSES, "d_loss")
        _choice(g_loss, GENERATOR_LOSSES, "g_loss")
        if g_loss not in COMPATIBLE_LOSSES[d_loss]:
            raise ValueError(f"g_loss={g_loss!r} does not belong to d_loss={d_loss!r}; use one of "
                             f"{list(COMPATIBLE_LOSSES[d_loss])}")
        # No model-level optimizer: Keras would otherwise create (and save) an unused RMSprop.
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(
            c.d_learning_rate, beta_1=c.beta_1, beta_2=c.beta_2, name="d_adam")
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(
            c.g_learning_rate, beta_1=c.beta_1, beta_2=c.beta_2, name="g_adam")
        self.d_loss_name, self.g_loss_name = d_loss, g_loss
        self.d_loss_fn = DISCRIMINATOR_LOSSES[d_loss]
        if d_loss == "bce" and c.label_smoothing:
            self.d_loss_fn = functools.partial(self.d_loss_fn, label_smoothing=c.label_smoothing)
        self.g_loss_fn = GENERATOR_LOSSES[g_loss]
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self._gan_compile_kwargs = {k: v for k, v in kwargs.items()
                                    if k in ("jit_compile", "steps_per_execution", "run_eagerly")}

    def get_compile_config(self):
        if not getattr(self, "compiled", False) or not hasattr(self, "d_optimizer"):
            return {}
        return {"d_optimizer": keras.optimizers.serialize(self.d_optimizer),
                "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
                "d_loss": self.d_loss_name, "g_loss": self.g_loss_name,
                **self._gan_compile_kwargs}

    def compile_from_config(self, config):
        config = dict(config)
        self.compile(d_optimizer=keras.optimizers.deserialize(config.pop("d_optimizer")),
                     g_optimizer=keras.optimizers.deserialize(config.pop("g_optimizer")),
                     **config)

    def compile_for_training(self, plan) -> None:
        """Both optimizers from the model config (rates, betas) and ``train.optimizer`` /
        ``train.lr_scaling`` of the :class:`gen_keras.plan.RunPlan`; checks that the batch
        splits into the ``d_steps`` chunks."""
        c = self.config
        if plan.per_replica_batch % c.d_steps:
            raise ConfigError(f"train.batch_size={plan.train.batch_size} gives "
                              f"{plan.per_replica_batch} images per replica, which must split into "
                              f"model.d_steps={c.d_steps} equal chunks (one per discriminator step)")
        self.vector_metrics = plan.vector_metrics
        betas = dict(beta_1=c.beta_1, beta_2=c.beta_2)
        self.compile(d_optimizer=make_optimizer(plan, self.precision, learning_rate=c.d_learning_rate, **betas),
                     g_optimizer=make_optimizer(plan, self.precision, learning_rate=c.g_learning_rate, **betas),
                     jit_compile=plan.train.jit_compile,
                     steps_per_execution=plan.steps_per_execution)

    def optimizers_to_track(self) -> dict:
        return {"d_optimizer": self.d_optimizer, "g_optimizer": self.g_optimizer}

    def training_guards(self) -> dict[str, dict]:
        """Mode collapse for every GAN; discriminator collapse where D's outputs are
        probabilities (the cross-entropy game)."""
        c = self.config
        guards = {"mode_collapse": {"threshold": c.mode_collapse_threshold,
                                    "samples": c.mode_collapse_samples}}
        if self.reports_probabilities:
            guards["discriminator_collapse"] = {"epsilon": c.collapse_epsilon, "steps": c.collapse_steps}
        return guards

    # -- the alternating update ----------------------------------------------------------------
    def fake_images(self, m, labels, training=True):
        """``m`` generated images from fresh per-replica noise (and ``labels``)."""
        z = self.replica_normal(m, [self.latent_dim])
        return self.generator(self.generator_inputs(z, labels), training=training)

    def augment(self, images):
        """``images`` through the configured DiffAugment policy with fresh per-replica draws
        (the identity when ``augment`` is empty)."""
        c = self.config
        if not c.augment:
            return images
        draws = self.replica_uniform(tf.shape(images)[0], [diff_augment.num_draws(c.augment)])
        return diff_augment.diff_augment(images, c.augment, draws, translation_ratio=c.augment_translation,
                                         cutout_ratio=c.augment_cutout)

    def discriminator_terms(self, x, labels, training=True, r1_due=True):
        """Per-example ``{"d_loss", "d_real", "d_fake"[, "gp"][, "r1"]}`` on real ``x`` and fresh
        fakes, both augmented when ``augment`` is set. ``r1_due`` (a bool tensor in training):
        whether this step computes the lazy R1 penalty (its ``r1`` is 0 otherwise)."""
        c = self.config
        m = tf.shape(x)[0]
        real = self.augment(x)
        fake = self.augment(self.fake_images(m, labels, training))
        real_out = self.discriminate(real, labels, training=training)
        fake_out = self.discriminate(fake, labels, training=training)
        d_loss = self.d_loss_fn(real_out, fake_out)
        terms = {"d_real": real_out, "d_fake": fake_out}
        if self.reports_probabilities:
            terms = {k: tf.sigmoid(v) for k, v in terms.items()}
        if c.gradient_penalty_weight:
            alpha = self.replica_uniform(m, [1] * len(self.image_shape))
            gp = losses.gradient_penalty(
                lambda t: self.discriminate(t, labels, training=training), real, fake, alpha)
            d_loss = d_loss + c.gradient_penalty_weight * gp
            terms["gp"] = gp
        if c.r1_gamma:
            # Inference mode: no state updates (spectral-norm vectors) in the extra pass; D has no
            # batch norm when R1 is on (the config refuses it), so the outputs are the same.
            def penalty():
                return losses.r1_penalty(lambda t: self.discriminate(t, labels, training=False), real)

            r1 = penalty() if r1_due is True else tf.cond(r1_due, penalty, lambda: tf.zeros([m]))
            # Lazy: every r1_interval-th step in training, weighted by the interval.
            interval = c.r1_interval if training else 1
            d_loss = d_loss + 0.5 * c.r1_gamma * interval * r1
            terms["r1"] = r1
        terms["d_loss"] = d_loss
        return terms

    def generator_terms(self, labels, m, training=True):
        """Per-example ``{"g_loss"}`` for ``m`` fresh noise vectors (and ``labels``)."""
        fake = self.augment(self.fake_images(m, labels, training))
        return {"g_loss": self.g_loss_fn(self.discriminate(fake, labels, training=training))}

    def r1_due(self):
        """Whether the coming discriminator step computes R1: every ``r1_interval``-th, counting
        from the first (a bool tensor)."""
        return tf.equal(self.d_optimizer.iterations % self.config.r1_interval, 0)

    def train_step(self, data):
        """k = ``d_steps`` discriminator steps, then one generator step (see the module docstring).

        For k > 1 the real batch is SPLIT into k chunks, one per D step (not reused), each D step
        drawing its own noise; the G step uses as many fresh noise vectors as one chunk holds.
        """
        x, labels = data
        k = self.config.d_steps
        x_chunks, label_chunks = tf.split(x, k), tf.split(labels, k)
        d_terms, r1_weights = [], []
        for x_i, labels_i in zip(x_chunks, label_chunks):
            r1_due = self.r1_due() if self.config.r1_gamma else False
            with tf.GradientTape() as tape:
                terms = self.discriminator_terms(x_i, labels_i, r1_due=r1_due)
                loss = losses.average_over_global_batch(terms["d_loss"], self.global_batch_size(x_i))
            self.apply_loss(tape, loss, self.discriminator.trainable_variables, self.d_optimizer)
            d_terms.append(terms)
            r1_weights.append(tf.fill([tf.shape(x_i)[0]], tf.cast(r1_due, tf.float32)))
        m = tf.shape(x_chunks[-1])[0]
        with tf.GradientTape() as tape:
            g_terms = self.generator_terms(label_chunks[-1], m)
            loss = losses.average_over_global_batch(g_terms["g_loss"], self.global_batch_size(x_chunks[-1]))
        self.apply_loss(tape, loss, self.generator.trainable_variables, self.g_optimizer)
        if self.config.g_ema_decay:
            self.update_generator_ema()
        # One tracker update over all k discriminator steps' examples: their mean.
        d_all = {name: tf.concat([t[name] for t in d_terms], 0) for name in d_terms[0]}
        values = {**d_all, **g_terms}
        # r1 is averaged over the steps that computed it.
        weights = {"r1": tf.concat(r1_weights, 0)} if self.config.r1_gamma else None
        return self.update_trackers({name: values[name] for name in self.tracker_names}, weights)

    def update_generator_ema(self):
        """ema <- d ema + (1 - d) w for every weight of G (batch-norm statistics included), with
        ``d = min(decay, (1 + t) / (10 + t))`` after t generator steps, so the average is not
        dominated by the random initial weights early on (the warm-up of
        ``tf.train.ExponentialMovingAverage(num_updates=...)``)."""
        t = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.config.g_ema_decay, (1.0 + t) / (10.0 + t))
        for average, weight in zip(self.generator_ema.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))

    def test_step(self, data):
        """The same quantities on held-out real images and fresh noise, without updates."""
        x, labels = data
        terms = self.discriminator_terms(x, labels, training=False)
        terms.update(self.generator_terms(labels, tf.shape(x)[0], training=False))
        return self.update_trackers({name: terms[name] for name in self.tracker_names})
