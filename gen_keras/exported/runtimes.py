"""Runtimes for a verified export: onnxruntime (the default: no TensorFlow needed, starts in
about a second) or the SavedModel's signatures in TensorFlow (when asked for).

Both take ``{input name: array}`` and return the outputs as a list in the manifest's order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_keras.errors import ArtifactIntegrityError, ConfigError
from gen_keras.exported.manifest import ExportSpec, sha256_bytes


class OnnxRuntime:
    """One onnxruntime session per operation (sessions are safe to run from several threads)."""

    name = "onnx"

    def __init__(self, export_dir: Path, spec: ExportSpec, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0 = onnxruntime's choice (the physical cores)
        # Idle pool threads spin by default; with several requests computed at once the
        # spinning steals the cores the other inferences need (batch 64 here: ~190 → ~135 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        files = spec.manifest["files"]
        self.sessions = {}
        for name, op in spec.operations.items():
            data = (Path(export_dir) / op.onnx).read_bytes()
            # Hash the very bytes handed to the runtime: nothing can change between check and load.
            if sha256_bytes(data) != files.get(op.onnx):
                raise ArtifactIntegrityError(f"{export_dir}: {op.onnx} changed after verification")
            try:
                session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types for a bad graph
                raise ArtifactIntegrityError(f"{export_dir}: onnxruntime cannot load {op.onnx} "
                                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
            got = sorted(i.name for i in session.get_inputs())
            if got != sorted(op.input_names) or len(session.get_outputs()) != len(op.outputs):
                raise ArtifactIntegrityError(
                    f"{export_dir}: {op.onnx} has inputs {got} and {len(session.get_outputs())} "
                    f"outputs; the manifest says {op.input_names} and {list(op.outputs)}")
            self.sessions[name] = session

    def run(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        return self.sessions[operation].run(None, feeds, token.options if token is not None else None)

    def new_token(self) -> "RunToken":
        import onnxruntime as ort

        return RunToken(ort.RunOptions())


class RunToken:
    """Cancels one onnxruntime run from another thread (a request that outlived its timeout):
    the run stops at its next operator and raises, freeing its thread."""

    def __init__(self, options=None):
        self.options = options
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.options is not None:
            self.options.terminate = True


class SavedModelRuntime:
    """The SavedModel's named signatures, called through TensorFlow."""

    name = "tf"

    def __init__(self, export_dir: Path, spec: ExportSpec, threads: int = 0):
        try:
            import tensorflow as tf
        except ImportError:
            raise ConfigError("the 'tf' runtime needs TensorFlow (pip install 'gen-keras[cpu]'); "
                              "use the onnx runtime without it") from None
        self.tf, self.spec = tf, spec
        loaded = tf.saved_model.load(str(Path(export_dir) / spec.manifest.get("saved_model", "saved_model")))
        self._loaded = loaded  # keeps the signatures' variables alive
        self.functions = {}
        for name, op in spec.operations.items():
            if op.signature not in loaded.signatures:
                raise ArtifactIntegrityError(f"{export_dir}: the SavedModel has no signature "
                                             f"{op.signature!r} (it has {sorted(loaded.signatures)})")
            self.functions[name] = loaded.signatures[op.signature]

    def run(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        out = self.functions[operation](**{k: self.tf.constant(v) for k, v in feeds.items()})
        return [out[n].numpy() for n in self.spec.operations[operation].outputs]

    def new_token(self) -> RunToken:
        return RunToken()  # a TensorFlow call cannot be stopped from outside; it runs to the end


RUNTIMES = {"onnx": OnnxRuntime, "tf": SavedModelRuntime}


def make_runtime(name: str, export_dir: Path, spec: ExportSpec, **options):
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    return RUNTIMES[name](Path(export_dir), spec, **options)
