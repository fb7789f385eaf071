"""The base every generative model shares: its config, seeded per-replica noise, trackers, and
the declaration of its export surface (which networks become signatures and ONNX files)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from gen_keras.exported.latents import sample_prior
from gen_keras.exported.roles import CONVENTIONAL_INPUTS, CONVENTIONAL_OUTPUTS, CONVENTIONAL_TASKS, TASKS
from gen_keras.precision import global_policy


@dataclass
class Endpoint:
    """One exported function: a functional network with named inputs and ordered named outputs,
    and what they mean.

    The exporter turns each endpoint into a SavedModel signature AND an ONNX file, and writes its
    ``task`` and the ``role`` of every input and output into the manifest
    (:mod:`gen_keras.exported.roles`), which is all a consumer reads: ONNX output names are
    generic, so the order of ``outputs`` is the contract. Tensors named by the exporter's
    conventions (``z``, ``x``, ``label``, ``eps``, ``psi``, ``ws``; ``image``, ``mean``, ...) need no
    ``roles`` entry; any other name must have one. Likewise ``task`` defaults to the conventional
    task of ``name`` (``generate``, ``mapping`` → map, ``translate_a2b`` → translate, ...).
    """
    name: str  # generate | encode | reconstruct | translate | ...
    network: keras.Model
    outputs: list[str]
    aliases: list[str] = dataclasses.field(default_factory=list)  # extra SavedModel signature names
    # [low, high] of inputs / outputs by name, where the model promises one (images: the model's
    # value_range unless given here; labels: 0..num_classes-1; a crossover's layers).
    value_ranges: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    task: str | None = None
    roles: dict[str, str] = dataclasses.field(default_factory=dict)  # tensor name -> role
    defaults: dict[str, float | int] = dataclasses.field(default_factory=dict)  # input name -> default
    direction: str | None = None  # a translation's direction (a2b, b2a)

    def resolved_task(self) -> str:
        task = self.task or CONVENTIONAL_TASKS.get(self.name)
        if task is None:
            raise ValueError(f"endpoint {self.name!r}: declare its task (one of {list(TASKS)})")
        return task

    def role(self, tensor: str, output: bool = False) -> str:
        """The role of an input (or output) tensor: declared, else by the naming convention."""
        conventional = CONVENTIONAL_OUTPUTS if output else CONVENTIONAL_INPUTS
        role = self.roles.get(tensor) or conventional.get(tensor)
        if role is None:
            raise ValueError(f"endpoint {self.name!r}: declare the role of its {'output' if output else 'input'} "
                             f"{tensor!r} in Endpoint(roles=...)")
        return role


class GenerativeModel(keras.Model):
    """Base class. Subclasses build their networks in :meth:`build_networks` and name the
    quantities they report in ``tracker_names`` (one ``Mean`` tracker each)."""

    kind = "base"
    tracker_names: tuple[str, ...] = ("loss",)
    has_prior = True  # samples from generate(z ~ N(0, I)) are meant to look like the data
    preview = "samples"  # what the trainer pictures each epoch: "samples" | "translation"

    def __init__(self, config=None, seed: int = 0, precision: str = "float32", **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            from gen_keras.config_loader import model_config_from_dict

            config = model_config_from_dict(config)
        self.config = config
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        self._trackers: dict[str, keras.metrics.Mean] = {}
        # The Keras dtype policy the networks compute in, as the run plan resolved it (saved in
        # get_config, so a bf16-trained model loads as the same bf16 model).
        self.precision = precision
        self.vector_metrics = False  # set by compile_for_training (multi-worker runs)
        with global_policy(self.precision):
            self.build_networks()
        self._create_trackers(self.tracker_names)
        # Every weight exists now (functional sub-networks), so the model counts as built: saving
        # and load_model then restore the optimizer state too.
        self.built = True

    def build_networks(self) -> None:
        raise NotImplementedError

    # -- configuration ------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.image_shape)

    @property
    def latent_dim(self) -> int:
        return int(self.config.latent_dim)

    @property
    def value_range(self) -> tuple[float, float]:
        return type(self.config).value_range

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "seed": self.seed, "name": self.name,
                "precision": self.precision}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- trackers -----------------------------------------------------------------------------
    def tracker(self, name: str) -> keras.metrics.Mean:
        if name not in self._trackers:
            self._trackers[name] = keras.metrics.Mean(name=name)
        return self._trackers[name]

    def _create_trackers(self, names) -> None:
        for n in names:
            self.tracker(n)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def update_trackers(self, values: dict[str, tf.Tensor],
                        weights: dict[str, tf.Tensor] | None = None) -> dict[str, tf.Tensor]:
        """Add ``values`` to their trackers; ``weights`` (optional, by name) are per-value
        sample weights, e.g. 0 for a lazily computed quantity on the steps that skip it."""
        weights = weights or {}
        for name, value in values.items():
            self.tracker(name).update_state(value, sample_weight=weights.get(name))
        results = {name: self.tracker(name).result() for name in values}
        if self.vector_metrics:
            # Keras reduces step outputs across workers with MEAN along axis 0, which a scalar
            # lacks (keras-team/keras#20585): hand it shape [1]; the logs come out scalar.
            results = {name: tf.reshape(v, [1]) for name, v in results.items()}
        return results

    # -- randomness ---------------------------------------------------------------------------
    def replica_normal(self, batch_size, shape) -> tf.Tensor:
        """Standard-normal noise ``[batch_size, *shape]``, different on every replica.

        The noise for the whole GLOBAL batch is drawn from one stateless seed and each replica
        takes its own slice, so replicas never share noise (keras.random with a SeedGenerator
        would give every replica the same numbers) and a step on N replicas draws exactly the
        noise one device draws for the same global batch.
        """
        return self._replica_slice(batch_size, shape, tf.random.stateless_normal)

    def replica_uniform(self, batch_size, shape) -> tf.Tensor:
        """Uniform[0, 1) noise, sliced per replica like :meth:`replica_normal`."""
        return self._replica_slice(batch_size, shape, tf.random.stateless_uniform)

    def _replica_slice(self, batch_size, shape, draw):
        replicas, replica_id = replica_info()
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        full = draw(tf.concat([[batch_size * replicas], tf.constant(shape, tf.int32)], 0), seed=seed)
        start = replica_id * batch_size
        return full[start:start + batch_size]

    def global_batch_size(self, x) -> tf.Tensor:
        replicas, _ = replica_info()
        return tf.shape(x)[0] * replicas

    # -- optimization helper shared by every train_step ---------------------------------------
    def apply_loss(self, tape, loss, variables, optimizer=None):
        """Gradient of ``loss`` (already averaged over the global batch) applied to ``variables``.

        ``scale_loss`` is the identity except under a LossScaleOptimizer (mixed_float16).
        """
        optimizer = optimizer or self.optimizer
        grads = tape.gradient(optimizer.scale_loss(loss), variables)
        optimizer.apply_gradients(zip(grads, variables))

    # -- compiling from the run plan (GANs override: two optimizers) --------------------------
    def compile_for_training(self, plan) -> None:
        """Compile with the configured optimizer, learning rate (scaled for ``plan.replicas``) and
        speed options of a :class:`gen_keras.plan.RunPlan`, and build the optimizer now (inside
        the strategy scope, never lazily outside it)."""
        self.vector_metrics = plan.vector_metrics
        self.compile(optimizer=make_optimizer(plan, self.precision),
                     jit_compile=plan.train.jit_compile,
                     steps_per_execution=plan.steps_per_execution)
        self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' fit/evaluate build the model from a data batch reduced across replicas, which
        # fails under MultiWorkerMirroredStrategy (keras-team/keras#20585). Every network and
        # optimizer here is built in the strategy scope already, so there is nothing to build.
        # Pinned by tests/test_distribute.py::test_keras_private_hooks_still_exist.
        if self._fully_built():
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _fully_built(self) -> bool:
        try:
            optimizers = [o for o in self.optimizers_to_track().values() if o is not None]
        except AttributeError:  # not compiled yet
            return False
        return (self.built and all(layer.built for layer in self.layers)
                and getattr(self, "_compile_loss", None) is None
                and getattr(self, "_compile_metrics", None) is None
                and bool(optimizers) and all(o.built for o in optimizers))

    def training_guards(self) -> dict[str, dict]:
        """The health checks this model's training needs, as data: ``{guard name: settings}``.
        The trainer turns them into callbacks (``gen_keras.training.guards``); none by default."""
        return {}

    def optimizers_to_track(self) -> dict:
        """Every optimizer whose state a checkpoint must carry."""
        return {"optimizer": self.optimizer}

    # -- generation and export surface (subclasses override) ----------------------------------
    def generate(self, z, labels=None):
        """Images in ``value_range`` for latent codes ``z`` (and labels, when conditional)."""
        raise NotImplementedError

    def export_endpoints(self) -> list[Endpoint]:
        raise NotImplementedError

    def export_facts(self) -> dict:
        """Model-level facts the export's consumers need, written into the manifest's ``facts``
        (a style-based model: its style layout). None by default."""
        return {}

    def sample_latent(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` codes from the prior, drawn the one documented way (:func:`sample_prior`)."""
        return sample_prior(n, self.latent_dim, seed)


def make_optimizer(plan, precision: str = "float32", *, learning_rate: float | None = None,
                   beta_1: float | None = None, beta_2: float | None = None):
    """``train.optimizer`` at ``plan.learning_rate(learning_rate)``, with loss scaling when the
    model computes in float16 (``precision``: the model's Keras policy name)."""
    train_cfg = plan.train
    lr = plan.learning_rate(learning_rate)
    if train_cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, beta_1=train_cfg.beta_1 if beta_1 is None else beta_1,
                                    beta_2=train_cfg.beta_2 if beta_2 is None else beta_2)
    elif train_cfg.optimizer == "rmsprop":
        opt = keras.optimizers.RMSprop(lr)
    else:
        opt = keras.optimizers.SGD(lr)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def replica_info():
    """(replicas in sync, this replica's id) — (1, 0) outside any strategy."""
    strategy = tf.distribute.get_strategy()
    ctx = tf.distribute.get_replica_context()
    replica_id = ctx.replica_id_in_sync_group if ctx is not None else 0
    if isinstance(replica_id, tf.Tensor):
        replica_id = tf.cast(replica_id, tf.int32)
    return strategy.num_replicas_in_sync, replica_id
