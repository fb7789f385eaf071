"""The distribution strategy named in the config, and who the chief is.

Models and optimizers are created inside ``strategy.scope()`` by the trainer; the per-replica
loss scaling lives in the models' losses (``average_over_global_batch``), so a step on N
replicas applies the same update as one device on the same global batch.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

from gen_keras.config import ConfigError


def make_strategy(cfg) -> tf.distribute.Strategy:
    """``default`` | ``mirrored`` (all local GPUs or ``devices``) | ``multi_worker`` | ``tpu``."""
    if cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if cfg.strategy == "mirrored":
        devices = list(cfg.devices) or None
        known = [d.name for d in tf.config.list_logical_devices()]
        for d in devices or []:
            if not any(k.lower().endswith(d.lower().lstrip("/")) for k in known):
                raise ConfigError(f"distribute.devices: {d!r} is not a device here; "
                                  f"devices: {known}")
        return tf.distribute.MirroredStrategy(devices=devices)
    if cfg.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("distribute.strategy='multi_worker' needs the TF_CONFIG environment "
                              "variable (cluster and task); see the README's 'Scaling out' section")
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
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
