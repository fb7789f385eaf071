"""Mixed precision: the policy a config names, with ``auto`` resolved for the machine it runs on.

``train.mixed_precision``:

- ``auto`` (the default): ``mixed_float16`` on a GPU with tensor cores (compute capability
  >= 7.0); on a CPU with bfloat16 instructions (AVX512_BF16 or AMX), ``mixed_bfloat16`` only
  where it is measured to be faster (:func:`cpu_bfloat16_speed`); float32 everywhere else.
  The flags alone do not say it: on 2 AMD EPYC cores with AVX512_BF16 the VAE trained 1.2x and
  the DCGAN 1.3x faster in bfloat16 (2026-12-01), on 2 Intel Xeon cores with the same flag 1.2x
  and 1.6x *slower* (2026-12-03; docs/scaling.md). Each process resolves ``auto`` on its own
  hardware: on a cluster of mixed machines name the policy. Under ``distribute.strategy: tpu``
  it is ``mixed_bfloat16``; under ``multi_worker`` on CPUs float32 (workers must agree, and
  timings taken on several hosts need not). A checkpoint resumes in the precision it was
  written in (:func:`gen_keras.plan.adopt_checkpoint_precision`).
- ``none`` | ``mixed_float16`` | ``mixed_bfloat16``: as named.

Variables stay float32 in every policy; the networks' last layers and every loss run in float32
(:mod:`gen_keras.models.networks`), and evaluation and export use a float32 copy of the weights
(:func:`float32_twin`), so the quality metrics, anomaly scores, latent tools and the served model
do not depend on the policy (the losses logged during training are in the training precision).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

POLICIES = ("auto", "none", "mixed_float16", "mixed_bfloat16")
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}
BF16_MIN_GAIN = 1.15  # bfloat16 must be this much faster than float32 to be chosen


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _speed_cache() -> Path:
    return Path(os.environ.get("GEN_KERAS_CACHE", Path.home() / ".cache" / "gen_keras")) / "precision.json"


def _machine_key() -> str:
    """What the measurement depends on: the CPU, its flags, the cores this process may use,
    oneDNN on or off, and TensorFlow."""
    import tensorflow as tf

    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")
    return f"{cpu_model()} | flags {flags} | {cores} cores | onednn {onednn} | tensorflow {tf.__version__}"


def _cached(path: Path, key: str) -> dict | None:
    try:
        entry = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and entry.get("policy") in ("none", "mixed_bfloat16") else None


@functools.lru_cache(maxsize=1)
def cpu_bfloat16_speed() -> dict:
    """float32 against bfloat16 on this CPU: milliseconds of one small training-shaped step in
    each (a strided 4x4 convolution of 64 images 14x14x64 -> 128 channels and a 64x1024 @
    1024x512 matmul, forward and backward with the input and weight gradients, activations in
    the step's precision as in a mixed-precision network), the median of interleaved calls;
    ``policy`` is ``mixed_bfloat16`` when bfloat16 is at least ``BF16_MIN_GAIN`` times faster,
    else ``none``. Measured once per machine (about a second after TensorFlow has loaded) and
    kept in ``$GEN_KERAS_CACHE/precision.json`` under :func:`_machine_key`; processes starting
    together measure one at a time (a lock beside the file) and the later ones read the first
    one's answer. An unreadable cache is measured again; delete the file to measure again."""
    from gen_keras.files import LockBusy, atomic_write_text, exclusive_lock

    path, key = _speed_cache(), _machine_key()
    found = _cached(path, key)
    if found is not None:
        return found
    try:
        with exclusive_lock(path.with_suffix(".lock"), "the precision measurement", wait_s=120):
            found = _cached(path, key)  # another process may have measured while we waited
            if found is not None:
                return found
            result = {"key": key, **_measure_bfloat16()}
            try:
                known = json.loads(path.read_text())
            except (OSError, ValueError):
                known = {}
            try:
                atomic_write_text(path, json.dumps({**(known if isinstance(known, dict) else {}), key: result},
                                                   indent=1) + "\n")
            except OSError:  # a read-only cache folder: measured again next time
                pass
            return result
    except (OSError, LockBusy):  # no lock (read-only folder, a stuck holder): measure, keep nothing
        return {"key": key, **_measure_bfloat16()}


def _measure_bfloat16(reps: int = 9) -> dict:
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    data = {"images": rng.normal([64, 14, 14, 64]), "kernel": rng.normal([4, 4, 64, 128]) * 0.05,
            "rows": rng.normal([64, 1024]), "weights": rng.normal([1024, 512]) * 0.03}

    def step_in(dtype):
        images, rows = tf.cast(data["images"], dtype), tf.cast(data["rows"], dtype)  # activations
        kernel, weights = data["kernel"], data["weights"]  # float32 variables, cast per call

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                tape.watch([images, rows, kernel, weights])
                conv = tf.nn.leaky_relu(tf.nn.conv2d(images, tf.cast(kernel, dtype), 2, "SAME"))
                dense = tf.nn.leaky_relu(tf.matmul(rows, tf.cast(weights, dtype)))
                loss = tf.reduce_mean(tf.cast(conv, tf.float32) ** 2) + tf.reduce_mean(tf.cast(dense, tf.float32) ** 2)
            return tape.gradient(loss, [images, rows, kernel, weights])
        return step

    steps = {"float32": step_in(tf.float32), "bfloat16": step_in(tf.bfloat16)}
    times = {name: [] for name in steps}
    for rep in range(reps + 2):  # two warm-up rounds; interleaved, so drifts hit both alike
        for name, step in steps.items():
            started = time.perf_counter()
            [g.numpy() for g in step()]
            if rep >= 2:
                times[name].append(time.perf_counter() - started)
    ms = {name: round(1000 * statistics.median(t), 3) for name, t in times.items()}
    faster = ms["float32"] >= BF16_MIN_GAIN * ms["bfloat16"]
    return {"float32_ms": ms["float32"], "bfloat16_ms": ms["bfloat16"],
            "policy": "mixed_bfloat16" if faster else "none", "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _gpu_has_tensor_cores() -> bool | None:
    """True/False for the first visible GPU, None when there is no GPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    try:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    except Exception:  # details are best-effort in TF
        capability = None
    return capability is not None and tuple(capability) >= (7, 0)


def resolve(name: str, strategy: str = "default") -> str:
    """The concrete policy for ``name`` on this machine (``auto`` resolved; others unchanged);
    ``strategy`` is ``distribute.strategy`` (``auto`` is bfloat16 on a TPU)."""
    if name != "auto":
        return name
    if strategy == "tpu":
        return "mixed_bfloat16"
    gpu = _gpu_has_tensor_cores()
    if gpu is not None:
        return "mixed_float16" if gpu else "none"
    if not cpu_flags() & _BF16_CPU_FLAGS:
        return "none"
    if strategy == "multi_worker":
        # Workers must agree, and timings taken on several hosts (or on one host shared by
        # several workers) need not: float32, unless the config names bfloat16.
        return "none"
    return cpu_bfloat16_speed()["policy"]


def keras_policy(name: str) -> str:
    """The Keras global-policy name of a resolved config value."""
    return "float32" if name == "none" else name


@contextlib.contextmanager
def global_policy(name: str):
    """Keras' global dtype policy set to the resolved ``name`` inside the block, restored after."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(keras_policy(resolve(name)))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def is_float32(model) -> bool:
    """Whether ``model`` computes in float32 (an exported generator always does)."""
    return getattr(model, "precision", "float32") == "float32"


def float32_twin(model):
    """The model itself when it computes in float32, else a float32 copy with its weights.

    Mixed-precision networks do not convert to ONNX (tf2onnx emits MatMuls mixing float16 and
    bfloat16 that onnxruntime refuses) and their bfloat16 activations would add rounding noise
    to likelihoods; the variables are float32 anyway, so the twin is the same weights.
    """
    if is_float32(model):
        return model
    config = model.get_config()
    twin = type(model).from_config({**config, "precision": "float32"})
    twin.set_weights(model.get_weights())
    return twin
