"""Runtimes for an export: onnxruntime (the default: no TensorFlow needed, starts in about a
second, and fastest for small batches here — see docs/serving.md for the measurement) or the
SavedModel's signatures in TensorFlow.

Both take ``{input name: array}`` and return the outputs as a list in the manifest's order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.registry import ExportRefused, ModelSpec, sha256_bytes


class OnnxBackend:
    """One onnxruntime session per endpoint (sessions are safe to run from several threads)."""

    name = "onnx"

    def __init__(self, export_dir: Path, spec: ModelSpec, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0 = onnxruntime's choice (the physical cores)
        # Idle pool threads spin by default; with several requests computed at once (--threads)
        # the spinning steals the cores the other inferences need (batch 64 here: ~190 → ~135 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        files = spec.manifest["files"]
        self.sessions, self.spec = {}, spec
        for name, ep in spec.endpoints.items():
            data = (export_dir / ep.onnx).read_bytes()
            # Hash the very bytes handed to the runtime: nothing can change between check and load.
            if sha256_bytes(data) != files.get(ep.onnx):
                raise ExportRefused(f"{export_dir}: {ep.onnx} changed after verification")
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            got = sorted(i.name for i in session.get_inputs())
            if got != sorted(i.name for i in ep.inputs) or len(session.get_outputs()) != len(ep.outputs):
                raise ExportRefused(f"{export_dir}: {ep.onnx} has inputs {got} and "
                                    f"{len(session.get_outputs())} outputs; the manifest says "
                                    f"{[i.name for i in ep.inputs]} and {list(ep.outputs)}")
            self.sessions[name] = session

    def run(self, endpoint: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[endpoint].run(None, feeds)


class SavedModelBackend:
    """The SavedModel's named signatures, called through TensorFlow."""

    name = "tf"

    def __init__(self, export_dir: Path, spec: ModelSpec, threads: int = 0):
        try:
            import tensorflow as tf
        except ImportError:
            raise ExportRefused("the 'tf' backend needs TensorFlow (pip install 'gen-keras[cpu]'); "
                                "use --backend onnx without it") from None
        self.tf, self.spec = tf, spec
        loaded = tf.saved_model.load(str(export_dir / spec.manifest.get("saved_model", "saved_model")))
        self._loaded = loaded  # keeps the signatures' variables alive
        self.functions = {}
        for name, ep in spec.endpoints.items():
            if ep.signature not in loaded.signatures:
                raise ExportRefused(f"{export_dir}: the SavedModel has no signature {ep.signature!r} "
                                    f"(it has {sorted(loaded.signatures)})")
            self.functions[name] = loaded.signatures[ep.signature]

    def run(self, endpoint: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.functions[endpoint](**{k: self.tf.constant(v) for k, v in feeds.items()})
        return [out[n].numpy() for n in self.spec.endpoints[endpoint].outputs]


BACKENDS = {"onnx": OnnxBackend, "tf": SavedModelBackend}


def make_backend(name: str, export_dir: Path, spec: ModelSpec, **options):
    if name not in BACKENDS:
        raise ExportRefused(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](Path(export_dir), spec, **options)
