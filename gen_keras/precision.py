"""Mixed precision: the policy a config names, with ``auto`` resolved for the machine it runs on.

``train.mixed_precision``:

- ``auto`` (the default): ``mixed_float16`` on a GPU with tensor cores (compute capability
  >= 7.0), ``mixed_bfloat16`` on a CPU with native bfloat16 instructions (AVX512_BF16 or AMX),
  float32 everywhere else. Measured by ``bench/throughput.py`` before it became the default
  (docs/scaling.md): on 2 AVX512_BF16 cores the VAE trains 1.2x and the DCGAN 1.3x faster than
  the float32 textbook reference, with the loss after one epoch within 0.04% of float32 (same
  seed, same batches). Each process resolves ``auto`` on its own hardware: on a cluster of
  mixed machines name the policy. Under ``distribute.strategy: tpu`` it is ``mixed_bfloat16``.
- ``none`` | ``mixed_float16`` | ``mixed_bfloat16``: as named.

Variables stay float32 in every policy; the networks' last layers and every loss run in float32
(:mod:`gen_keras.models.networks`), and evaluation and export use a float32 copy of the weights
(:func:`float32_twin`), so the quality metrics, anomaly scores, latent tools and the served model
do not depend on the policy (the losses logged during training are in the training precision).
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

POLICIES = ("auto", "none", "mixed_float16", "mixed_bfloat16")
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


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
    return "mixed_bfloat16" if cpu_flags() & _BF16_CPU_FLAGS else "none"


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
