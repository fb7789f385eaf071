"""The distribution strategy named in the config, who the chief is, and TF's thread settings.

Models and optimizers are created inside ``strategy.scope()`` by the trainer; the per-replica
loss scaling lives in the models' losses (``average_over_global_batch``), so a step on N
replicas applies the same update as one device on the same global batch.

Strategies (``distribute.strategy``):

- ``default``: one device (TF's default strategy).
- ``mirrored``: synchronous data parallelism over the local GPUs, or over ``distribute.devices``
  (two logical CPUs in the tests).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the processes named in ``TF_CONFIG``;
  each worker reads its own shard of the data (auto-shard policy DATA, set in
  :mod:`gen_keras.data.pipeline`) and only the chief writes to MLflow, checkpoints and exports.
- ``tpu``: ``TPUStrategy`` (documented, not exercised on the CPU machines this project tests on).

See docs/scaling.md.
"""
from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from gen_keras.errors import ConfigError

log = logging.getLogger("gen_keras.distribute")
_STRATEGIES: dict[tuple, tf.distribute.Strategy] = {}


def make_strategy(cfg) -> tf.distribute.Strategy:
    """``default`` | ``mirrored`` (all local GPUs or ``devices``) | ``multi_worker`` | ``tpu``."""
    if cfg.devices and cfg.strategy != "mirrored":
        raise ConfigError(f"distribute.devices is only read by strategy 'mirrored', not "
                          f"{cfg.strategy!r}; remove it")
    if cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if cfg.strategy == "mirrored":
        devices = list(cfg.devices) or None
        known = [d.name for d in tf.config.list_logical_devices()]
        for d in devices or []:
            if not any(k.lower().endswith(d.lower().lstrip("/")) for k in known):
                raise ConfigError(f"distribute.devices: {d!r} is not a device here; "
                                  f"devices: {known}")
        # One strategy per device set and process: a second MirroredStrategy over the same
        # devices reuses its collective instance keys and aborts ("Shape mismatch in the
        # collective instance") once two models have trained in one process.
        key = ("mirrored", tuple(devices or ()))
        if key not in _STRATEGIES:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=devices)
        return _STRATEGIES[key]
    if cfg.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("distribute.strategy='multi_worker' needs the TF_CONFIG environment "
                              "variable (cluster and task); see docs/scaling.md")
        _check_tf_config()
        if ("multi_worker",) not in _STRATEGIES:  # TF allows one per process
            _STRATEGIES[("multi_worker",)] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES[("multi_worker",)]
    # TPU: costs nothing to offer; not exercised on the CPU machines this project tests on.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _check_tf_config() -> dict:
    try:
        conf = json.loads(os.environ["TF_CONFIG"])
        conf["cluster"], conf["task"]["type"], conf["task"]["index"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON with 'cluster' and 'task' "
                          f"{{'type', 'index'}} ({exc})") from None
    task = conf["task"]
    members = conf["cluster"].get(task["type"])
    if not isinstance(members, list) or not 0 <= int(task["index"]) < len(members):
        raise ConfigError(f"TF_CONFIG task {task['type']}:{task['index']} is not in the cluster "
                          f"{sorted(conf['cluster'])}")
    return conf


def is_chief() -> bool:
    """True for the one process that writes to MLflow, checkpoints and exports.

    Without TF_CONFIG every process is its own chief. With it, the chief is task type
    ``chief``, or worker 0 when the cluster has no ``chief`` entry.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    conf = json.loads(raw)
    task = conf.get("task", {})
    if "chief" in conf.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") in (None, "worker") and int(task.get("index", 0)) == 0


def is_multi_worker(strategy) -> bool:
    """True under MultiWorkerMirroredStrategy with more than one process in the cluster."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return num_workers(strategy) > 1


def num_workers(strategy) -> int:
    """Processes taking part in training (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def layout(strategy, steps_per_execution: int = 1):
    """What ``strategy`` offers a run, as the plain values :func:`gen_keras.plan.resolve_plan`
    reads: its name, replicas in sync, worker processes, and the cap on steps per execution
    (warned about here when it cuts the configured ``steps_per_execution``)."""
    from gen_keras.plan import Layout

    steps = int(steps_per_execution)
    supported = supported_steps_per_execution(steps, strategy)
    return Layout(type(strategy).__name__, int(strategy.num_replicas_in_sync), num_workers(strategy),
                  supported if supported < steps else 0)


def supported_steps_per_execution(steps: int, strategy, name: str = "train.steps_per_execution") -> int:
    """``steps``, or 1 under (MultiWorker)MirroredStrategy, where Keras 3.15 / TF 2.21 cannot
    run several steps per call (keras-team/keras#19246); a warning naming the setting (``name``)
    says so."""
    steps = int(steps)
    if steps > 1 and isinstance(strategy, tf.distribute.MirroredStrategy
                                          | tf.distribute.MultiWorkerMirroredStrategy):
        log.warning("%s=%d is not supported under %s by this Keras "
                    "(keras-team/keras#19246); running 1 step per execution", name, steps,
                    type(strategy).__name__)
        return 1
    return steps


def barrier(strategy) -> None:
    """Under multi-worker, wait until every worker gets here (one tiny all-reduce).

    The trainer calls it after the chief's save and export, so the other workers do not exit
    while the chief still works; otherwise the chief's coordination service reports them as
    crashed, which is noise in a run that went fine.
    """
    if is_multi_worker(strategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None)


def sync_from_chief(strategy, variables, value: int) -> int:
    """Under multi-worker, give every worker the chief's variable values and ``value``.

    A resumed multi-worker run restores its checkpoint on the chief (the only process that
    writes one); without this, the other workers would train from fresh weights and a different
    epoch. Each variable becomes the all-reduced SUM of (chief's value, zeros elsewhere).
    Returns the chief's ``value`` (the epoch to resume at). Outside multi-worker: a no-op.
    """
    if not is_multi_worker(strategy):
        return value
    variables = list(variables)
    # One all-reduce for everything (eager collectives are slow one by one).
    flat = tf.concat([tf.reshape(tf.cast(v.value, tf.float64), [-1]) for v in variables]
                     + [tf.constant([value], tf.float64)], 0)
    keep = 1.0 if is_chief() else 0.0
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: flat * keep),
                            axis=None)
    offset = 0
    for v in variables:
        size = int(tf.size(v.value))
        v.assign(tf.cast(tf.reshape(total[offset:offset + size], v.shape), v.dtype))
        offset += size
    return int(round(float(total[offset])))


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> tuple[int, int]:
    """Set TF's intra-op / inter-op thread pools (0 = TF's choice: one per core).

    Must run before TF executes its first op. When the runtime is already up (a notebook, a
    test session) and the request differs from what it runs with, a warning says the setting
    was not applied. Returns the pool sizes in effect.
    """
    threading = tf.config.threading
    for name, want, getter, setter in (
            ("intra_op", intra_op, threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads),
            ("inter_op", inter_op, threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads)):
        if want and getter() != want:
            try:
                setter(want)
            except RuntimeError:
                log.warning("train.%s_threads=%d not applied: TF's runtime is already running "
                            "with %d (set it before any TF op runs)", name, want, getter())
    return (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())
