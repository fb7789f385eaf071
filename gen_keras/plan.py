"""The run config resolved ONCE, for the machine and strategy it runs on.

A :class:`RunPlan` is what the trainer, the model and the checkpoint read: the concrete
precision (``auto`` resolved, or adopted from the checkpoint the run resumes), how many replicas
and worker processes take part, the steps per execution that this strategy supports, the
per-replica batch and the learning-rate scaling. Nothing downstream resolves a field again or
reads a Keras global back: the model gets its precision as a constructor argument and the rest
through :meth:`GenerativeModel.compile_for_training`.

``resolve_plan(cfg, layout, checkpoint=state)`` builds it. The :class:`Layout` (replicas, workers,
what the strategy supports) comes from :func:`gen_keras.distribute.layout`, the one module that
knows strategies; without one, the plan is for one local device.
"""
from __future__ import annotations

import dataclasses

from gen_keras import precision as _precision
from gen_keras.config import RunConfig, TrainConfig
from gen_keras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a distribution strategy offers a run, as plain values (see
    :func:`gen_keras.distribute.layout`): its name, the replicas in sync (all workers), the worker
    processes, and the most steps per execution it can run (0: no limit)."""
    strategy_name: str = "default"
    replicas: int = 1
    workers: int = 1
    max_steps_per_execution: int = 0


@dataclasses.dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    precision: str  # the Keras dtype policy the networks compute in: float32 | mixed_bfloat16 | ...
    replicas: int = 1  # replicas in sync (all workers)
    workers: int = 1  # processes taking part (> 1 only under multi_worker)
    strategy_name: str = "default"
    steps_per_execution: int = 1  # what the strategy supports (<= the configured value)
    is_chief: bool = True

    @property
    def train(self) -> TrainConfig:
        return self.config.train

    @property
    def per_replica_batch(self) -> int:
        return self.config.train.batch_size // self.replicas

    @property
    def vector_metrics(self) -> bool:
        """Whether step outputs must be shape [1]: Keras reduces them across workers with MEAN
        along axis 0, which a scalar lacks (keras-team/keras#20585)."""
        return self.workers > 1

    def learning_rate(self, base: float | None = None) -> float:
        """``base`` (default ``train.learning_rate``), times the replicas under
        ``lr_scaling: linear`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD")."""
        lr = self.config.train.learning_rate if base is None else base
        return lr * self.replicas if self.config.train.lr_scaling == "linear" else lr

    def resumable(self) -> dict:
        """The config a checkpoint must match to resume: with the RESOLVED precision, so a
        checkpoint is never resumed in another precision (a GPU run's float16 on a CPU)."""
        d = self.config.to_dict()
        d["train"].pop("progress", None)
        d["train"]["mixed_precision"] = config_precision(self.precision)
        return d

    def derived_params(self) -> dict[str, object]:
        """What the plan decided, as MLflow params (``derived.*``)."""
        return {"derived.replicas": self.replicas, "derived.per_replica_batch": self.per_replica_batch,
                "derived.strategy": self.strategy_name, "derived.workers": self.workers,
                "derived.steps_per_execution": self.steps_per_execution,
                "derived.mixed_precision": config_precision(self.precision)}


def config_precision(keras_policy: str) -> str:
    """A Keras policy name as the config spells it (``float32`` is ``none``)."""
    return "none" if keras_policy == "float32" else keras_policy


def adopt_checkpoint_precision(plan: RunPlan, state: dict | None) -> RunPlan:
    """With ``train.mixed_precision: auto``, a checkpoint written in another concrete precision
    that is otherwise the same config (``auto`` resolved differently then: another version of
    the rule, another machine) is resumed in ITS precision — never in a new one. Otherwise
    ``plan`` unchanged (a real config difference is still refused by the caller)."""
    if state is None or plan.config.train.mixed_precision != "auto":
        return plan
    stored = ((state.get("config") or {}).get("train") or {}).get("mixed_precision")
    if stored not in _precision.POLICIES or stored in ("auto", config_precision(plan.precision)):
        return plan
    adopted = dataclasses.replace(plan, precision=_precision.keras_policy(stored))
    return adopted if adopted.resumable() == state.get("config") else plan


def resolve_plan(cfg: RunConfig, layout: Layout | None = None, *, is_chief: bool = True,
                 checkpoint: dict | None = None) -> RunPlan:
    """The plan for ``cfg`` on ``layout`` (None: one local device), resuming the checkpoint
    state ``checkpoint`` when given (its precision is adopted under ``auto``, see
    :func:`adopt_checkpoint_precision`). Raises ConfigError when the global batch does not split
    over the replicas."""
    layout = layout or Layout()
    if not isinstance(layout, Layout):
        raise TypeError(f"resolve_plan takes a plan.Layout (gen_keras.distribute.layout(strategy)), "
                        f"not a {type(layout).__name__}")
    if cfg.train.batch_size % layout.replicas:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be divisible by the "
                          f"{layout.replicas} replicas of distribute.strategy={cfg.distribute.strategy!r}")
    steps = int(cfg.train.steps_per_execution)
    if layout.max_steps_per_execution:
        steps = min(steps, layout.max_steps_per_execution)
    policy = _precision.keras_policy(_precision.resolve(cfg.train.mixed_precision,
                                                         cfg.distribute.strategy))
    plan = RunPlan(cfg, policy, layout.replicas, layout.workers, layout.strategy_name, steps, is_chief)
    return adopt_checkpoint_precision(plan, checkpoint)
