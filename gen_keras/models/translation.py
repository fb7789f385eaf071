"""What every image-to-image model shares: its config (an input shape beside the output's, the
optimizers' settings, which pairing of data it trains on), its named optimizers with a compile
config that ``load_model`` restores, the ``translate`` operations it exports, and the columns of
its preview grid.

A kind builds its networks (``build_networks``), names its optimizers (``optimizer_names``) and
the variables each one updates (``optimizer_variables``), says which generator serves which
operation (``translators``) and writes its ``train_step``. Kinds: ``pix2pix``, ``cyclegan``,
``sr_l1``, ``srgan`` (docs/translation.md). Data come from the tasks of
:mod:`gen_keras.data.translation` as ``(input, target)`` or ``(a, b)`` batches in [-1, 1].
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from gen_keras import losses
from gen_keras.config import ModelConfig
from gen_keras.errors import ConfigError
from gen_keras.models.base import Endpoint, GenerativeModel, make_optimizer

COMPILE_KEYS = ("jit_compile", "steps_per_execution", "run_eagerly")


@dataclass
class TranslationConfig(ModelConfig):
    """Fields every translation kind shares. The optimizers take their rates and betas from
    HERE (``train.learning_rate`` / ``train.beta_*`` are the VAE family's); ``train.optimizer``
    and ``train.lr_scaling`` still apply."""

    kind: str = "pix2pix"
    latent_dim: int = 0  # a translator has no latent code
    input_channels: int = 0  # channels of the input image; 0 = those of image_shape
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5  # Isola et al. / Zhu et al.: Adam(2e-4, 0.5)
    beta_2: float = 0.999

    value_range: typing.ClassVar[tuple[float, float]] = (-1.0, 1.0)  # tanh outputs, inputs alike
    supported_image_shapes: typing.ClassVar[tuple[tuple[int, int, int], ...]] = (
        (28, 28, 1), (28, 28, 3), (32, 32, 1), (32, 32, 3), (64, 64, 1), (64, 64, 3))
    # "paired": (input, target) batches; "unpaired": (a, b) batches of two domains.
    pairing: typing.ClassVar[str] = "paired"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of the images translated (the output is ``image_shape``)."""
        h, w, c = (int(d) for d in self.image_shape)
        return (h, w, self.input_channels or c)

    def validate(self, prefix: str = "model") -> None:
        if tuple(self.image_shape) not in self.supported_image_shapes:
            raise ConfigError(f"{prefix}.image_shape={list(self.image_shape)} is not supported by kind "
                              f"{self.kind!r}; choose one of {[list(s) for s in self.supported_image_shapes]}")
        if self.latent_dim != 0:
            raise ConfigError(f"{prefix}.latent_dim={self.latent_dim}: {self.kind!r} translates images and "
                              "has no latent code; leave latent_dim at 0")
        if self.num_classes != 0:
            raise ConfigError(f"{prefix}.num_classes={self.num_classes}: {self.kind!r} is not "
                              "class-conditional; leave num_classes at 0")
        if self.input_channels not in (0, 1, 3):
            raise ConfigError(f"{prefix}.input_channels={self.input_channels} must be 0 (as image_shape), 1 or 3")
        for name in ("g_learning_rate", "d_learning_rate"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be > 0")
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{prefix}.{name}={getattr(self, name)} must be in [0, 1)")


def check_positive(config, prefix: str, *names: str) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{prefix}.{name}={getattr(config, name)} must be > 0")


def check_non_negative(config, prefix: str, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ConfigError(f"{prefix}.{name}={getattr(config, name)} must be >= 0")


class TranslationModel(GenerativeModel):
    """Base of the translation kinds (see the module docstring). Images in and out are in
    [-1, 1]; a model translates with :meth:`translate` and exports one ``translate*`` operation
    per direction."""

    has_prior = False  # nothing is sampled from a prior: generate() does not exist
    preview = "translation"  # the trainer shows input | output | target grids
    optimizer_names: tuple[str, ...] = ("g_optimizer", "d_optimizer")

    # -- what a kind declares -------------------------------------------------------------------
    def optimizer_variables(self, name: str) -> list:
        """The variables optimizer ``name`` updates."""
        raise NotImplementedError

    def optimizer_learning_rate(self, name: str) -> float:
        return self.config.d_learning_rate if name.startswith("d_") else self.config.g_learning_rate

    def translators(self) -> dict[str, keras.Model]:
        """Operation name → the generator that performs it (``translate`` for one direction)."""
        return {"translate": self.generator}

    # -- shapes ------------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return 0

    def sample_latent(self, n: int, seed: int = 0):
        raise NotImplementedError(f"{self.kind!r} translates images; it has no latent code to sample")

    def call(self, x, training=False):
        """The first operation's translation of ``x``."""
        return next(iter(self.translators().values()))(x, training=training)

    # -- translating ---------------------------------------------------------------------------------
    def translate(self, x, operation: str | None = None, batch_size: int = 256) -> np.ndarray:
        """Translate images ``x`` (``[N, H, W, C]`` in [-1, 1]; one image becomes a batch of one)
        with ``operation`` (default: the first one); returns ``[N, ...]`` images in [-1, 1]."""
        translators = self.translators()
        name = operation or next(iter(translators))
        if name not in translators:
            raise ValueError(f"{self.kind!r} has no operation {name!r}; it has {sorted(translators)}")
        network = translators[name]
        x = np.asarray(x, np.float32)
        want = tuple(int(d) for d in network.inputs[0].shape[1:])
        x = x[None] if x.ndim == len(want) else x
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"{name}: images of shape {list(x.shape)}; it takes [N, {', '.join(map(str, want))}]")
        out = [np.asarray(network(x[s:s + batch_size], training=False), np.float32)
               for s in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *network.outputs[0].shape[1:]), np.float32)

    def preview_columns(self, inputs, targets) -> list[np.ndarray]:
        """The columns of the per-epoch preview grid for a fixed batch of test pairs: input,
        output, target (a smaller input is shown enlarged by pixel repetition)."""
        outputs = self.translate(inputs)
        return [enlarge(inputs, outputs.shape[1:3]), outputs, np.asarray(targets, np.float32)]

    def export_endpoints(self) -> list[Endpoint]:
        value_range = list(self.value_range)
        return [Endpoint(name, network, ["image"], value_ranges={"x": value_range, "image": value_range})
                for name, network in self.translators().items()]

    # -- compiling: named optimizers and a compile config that load_model restores --------------
    def compile(self, **kwargs):
        """Optimizers by name (``g_optimizer=...``, see ``optimizer_names``; default: Adam with
        the config's rates and betas), each built on its variables here (so create the model
        and call this inside the strategy scope). Other keyword arguments (``jit_compile``,
        ``steps_per_execution``, ``run_eagerly``) go to ``keras.Model.compile``."""
        given = {name: kwargs.pop(name, None) for name in self.optimizer_names}
        unknown = set(kwargs) - set(COMPILE_KEYS)
        if unknown:
            raise TypeError(f"{self.kind}.compile got unknown argument(s) {sorted(unknown)}; it takes "
                            f"{list(self.optimizer_names)} and {list(COMPILE_KEYS)}")
        # No model-level optimizer: Keras would otherwise create (and save) an unused one.
        super().compile(optimizer=None, **kwargs)
        c = self.config
        for name in self.optimizer_names:
            optimizer = given[name] or keras.optimizers.Adam(
                self.optimizer_learning_rate(name), beta_1=c.beta_1, beta_2=c.beta_2, name=name)
            setattr(self, name, optimizer)
            optimizer.build(self.optimizer_variables(name))
        self._translation_compile_kwargs = dict(kwargs)

    def get_compile_config(self):
        if not getattr(self, "compiled", False) or not hasattr(self, self.optimizer_names[0]):
            return {}
        return {**{name: keras.optimizers.serialize(getattr(self, name)) for name in self.optimizer_names},
                **self._translation_compile_kwargs}

    def compile_from_config(self, config):
        config = dict(config)
        optimizers = {name: keras.optimizers.deserialize(config.pop(name))
                      for name in self.optimizer_names if name in config}
        self.compile(**optimizers, **config)

    def compile_for_training(self, plan) -> None:
        """Every optimizer from the model config (rates, betas) and ``train.optimizer`` /
        ``train.lr_scaling`` of the :class:`gen_keras.plan.RunPlan`."""
        c = self.config
        self.vector_metrics = plan.vector_metrics
        optimizers = {name: make_optimizer(plan, self.precision, learning_rate=self.optimizer_learning_rate(name),
                                           beta_1=c.beta_1, beta_2=c.beta_2)
                      for name in self.optimizer_names}
        self.compile(**optimizers, jit_compile=plan.train.jit_compile,
                     steps_per_execution=plan.steps_per_execution)

    def optimizers_to_track(self) -> dict:
        return {name: getattr(self, name) for name in self.optimizer_names}

    # -- shared by the train_steps ---------------------------------------------------------------------
    def paired_adversarial_step(self, x, y) -> dict:
        """The training step of a paired translation GAN (pix2pix, SRGAN): the generator on the
        kind's ``terms(x, y)``, then the discriminator on its ``discriminator_terms(x, y, fake)``."""
        with tf.GradientTape() as tape:
            fake, g_terms = self.terms(x, y, training=True)
            loss = self.global_mean(g_terms["g_loss"], x)
        self.apply_loss(tape, loss, self.generator.trainable_variables, self.g_optimizer)
        with tf.GradientTape() as tape:
            d_terms = self.discriminator_terms(x, y, fake, training=True)
            loss = self.global_mean(d_terms["d_loss"], x)
        self.apply_loss(tape, loss, self.discriminator.trainable_variables, self.d_optimizer)
        return self.update_trackers({**g_terms, **d_terms})

    def paired_adversarial_test(self, x, y) -> dict:
        fake, g_terms = self.terms(x, y, training=False)
        return self.update_trackers({**g_terms, **self.discriminator_terms(x, y, fake, training=False)})

    def global_mean(self, per_example, x) -> tf.Tensor:
        """``per_example`` ``[batch]`` summed and divided by the GLOBAL batch (see
        :func:`gen_keras.losses.average_over_global_batch`)."""
        return losses.average_over_global_batch(per_example, self.global_batch_size(x))


def enlarge(images, size) -> np.ndarray:
    """Images repeated pixel by pixel up to ``size`` (an integer factor), for display."""
    images = np.asarray(images, np.float32)
    fy, fx = size[0] // images.shape[1], size[1] // images.shape[2]
    return np.repeat(np.repeat(images, fy, axis=1), fx, axis=2) if fy > 1 or fx > 1 else images
