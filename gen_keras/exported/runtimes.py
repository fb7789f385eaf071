"""Runtimes for a verified export: onnxruntime (the default: no TensorFlow needed, starts in
about a second) or the SavedModel's signatures in TensorFlow (when asked for).

Both take ``{input name: array}`` and return the outputs as a list in the manifest's order.
"""
from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from gen_keras.errors import ArtifactIntegrityError, ConfigError
from gen_keras.exported.manifest import ExportSpec, sha256_bytes

# A call whose images are estimated to cost at least this much (from the load-time measurement)
# is spread over the cores; cheaper ones run on the calling thread, where a hand-off to another
# thread (~0.05-0.1 ms) would cost more than it saves.
SPREAD_MIN_MS = 1.0


def available_cores() -> int:
    """The CPUs this process may run on, capped by a cgroup v2 CPU quota (a container limited to
    2 CPUs on a 64-core node counts 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period) + 0.5)))
    except (OSError, ValueError):
        pass
    return cores


class OnnxRuntime:
    """onnxruntime sessions for the operations, run data-parallel: every session computes on one
    thread, and a batch worth spreading (by its cost, measured per operation at load) is cut into
    one part per core, the parts run at once and the outputs joined. A call too small to cut but
    costly (one large image) runs on a second session with ``threads`` operator threads, made at
    load only for such operations (it holds a second copy of the weights). See :meth:`plan`.

    Why not onnxruntime's own operator threads for everything: they hand work to the other core
    inside every operator and wait for it; on the server's small requests that costs more than it
    saves, and for batches of 16-256 images cutting the batch was 15-40% faster than operator
    threads (bench/backends.py, docs/serving.md). ``threads``: the cores one call may use (0 = all
    this process may run on; 1 = never spread). Sessions are safe to run from several threads."""

    name = "onnx"

    def __init__(self, export_dir: Path, spec: ExportSpec, threads: int = 0):
        import onnxruntime as ort

        self.parts = max(1, threads or available_cores())
        files = spec.manifest["files"]
        self.sessions, self.wide, self.cost_ms = {}, {}, {}
        for name, op in spec.operations.items():
            data = (Path(export_dir) / op.onnx).read_bytes()
            # Hash the very bytes handed to the runtime: nothing can change between check and load.
            if sha256_bytes(data) != files.get(op.onnx):
                raise ArtifactIntegrityError(f"{export_dir}: {op.onnx} changed after verification")
            refuse_external_data(data, export_dir, op.onnx)
            session = self._session(ort, data, 1, export_dir, op.onnx)
            check_graph(session, op, export_dir)
            self.sessions[name] = session
            if self.parts > 1:
                self.cost_ms[name] = _costs_ms(session, op)
                if self.cost_ms[name] is None or self.cost_ms[name][0] >= SPREAD_MIN_MS:
                    self.wide[name] = self._session(ort, data, self.parts, export_dir, op.onnx)
        self._pool = (ThreadPoolExecutor(self.parts - 1, thread_name_prefix="onnx-part")
                      if self.parts > 1 else None)

    @staticmethod
    def _session(ort, data: bytes, threads: int, export_dir, filename: str):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle operator threads spin by default; with several requests computed at once the
        # spinning steals the cores the other inferences need (batch 64 here: ~190 → ~135 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise ArtifactIntegrityError(f"{export_dir}: onnxruntime cannot load {filename} "
                                         f"({type(exc).__name__}: {str(exc)[:2000]})") from None

    def plan(self, operation: str, n: int | None) -> int:
        """How a call of ``n`` images runs: k > 1 = cut into k parts (one per core, at most one
        per image) when the images' own cost (beyond the fixed cost of a call, which cutting
        does not shorten, e.g. a small MLP's) reaches SPREAD_MIN_MS; else 0 = the session with
        operator threads when one call costs at least that much (e.g. one large image); else
        1 = on the calling thread."""
        if self.parts < 2 or not n:
            return 1
        cost = self.cost_ms.get(operation, (0.0, 0.0))
        if n >= 2 and (cost is None or cost[1] * n >= SPREAD_MIN_MS):
            return min(n, self.parts)
        return 0 if cost is None or cost[0] >= SPREAD_MIN_MS else 1

    def run(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        options = token.options if token is not None else None
        session, n = self.sessions[operation], _batch(feeds)
        k = self.plan(operation, n)
        if k == 1:
            return session.run(None, feeds, options)
        if k == 0:
            return self.wide[operation].run(None, feeds, options)
        bounds = np.linspace(0, n, k + 1).astype(int)
        parts = [{name: v[a:b] for name, v in feeds.items()} for a, b in itertools.pairwise(bounds)]
        futures = [self._pool.submit(session.run, None, part, options) for part in parts[1:]]
        outs = [None] * k
        try:
            outs[0] = session.run(None, parts[0], options)
        finally:
            # A part still queued (the pool busy with another request's parts) is taken back and
            # run here, or dropped when part 0 failed; never return or raise while one runs.
            for i, future in enumerate(futures, 1):
                if future.cancel() and outs[0] is not None:
                    outs[i] = session.run(None, parts[i], options)
            wait(futures)
        for i, future in enumerate(futures, 1):
            if outs[i] is None:
                outs[i] = future.result()
        return [np.concatenate(chunks) for chunks in zip(*outs)]

    def new_token(self) -> RunToken:
        import onnxruntime as ort

        return RunToken(ort.RunOptions())


ONNX_TYPES = {"float32": "tensor(float)", "int32": "tensor(int32)", "int64": "tensor(int64)"}


def refuse_external_data(data: bytes, export_dir, filename: str) -> None:
    """An export's ONNX files hold all their weights: a tensor stored as external data would be
    read from a path outside the verified bytes (relative to the working folder when a session is
    made from bytes), so any reference to external data is refused, whatever the path."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise ArtifactIntegrityError(f"{export_dir}: {filename} is not a readable ONNX model "
                                     f"({type(exc).__name__}: {str(exc)[:2000]})") from None

    def tensors(graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from tensors(sub)

    for tensor in tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            where = {e.key: e.value for e in tensor.external_data}.get("location", "?")
            raise ArtifactIntegrityError(f"{export_dir}: {filename} stores tensor {tensor.name!r} as external "
                                         f"data ({where!r}); an export's ONNX files must hold every weight "
                                         "themselves, so it is refused")


def check_graph(session, op, export_dir) -> None:
    """The ONNX graph's inputs and outputs against the manifest's: names, dtypes, ranks and every
    fixed size (a manifest edited to promise other shapes is refused at load, not at the first
    request)."""
    def problem(declared, name, dtype, shape, kind):
        if dtype is not None and ONNX_TYPES.get(dtype) != declared.type:
            return f"{kind} {name!r} is {declared.type} in the graph, {dtype} in the manifest"
        if declared.shape is not None and len(declared.shape) != len(shape):
            return f"{kind} {name!r} has rank {len(declared.shape)} in the graph, shape {list(shape)} in the manifest"
        for got, want in zip((declared.shape or [])[1:], shape[1:]):
            if isinstance(got, int) and got != want:
                return (f"{kind} {name!r} has shape {list(declared.shape)} in the graph, {list(shape)} in the "
                        "manifest")
        return ""

    graph_inputs = {i.name: i for i in session.get_inputs()}
    outputs = session.get_outputs()
    if sorted(graph_inputs) != sorted(op.input_names) or len(outputs) != len(op.outputs):
        raise ArtifactIntegrityError(f"{export_dir}: {op.onnx} has inputs {sorted(graph_inputs)} and {len(outputs)} "
                                     f"outputs; the manifest says {op.input_names} and {list(op.outputs)}")
    found = [problem(graph_inputs[i.name], i.name, i.dtype, i.shape, "input") for i in op.inputs]
    found += [problem(g, o.name, None, o.shape, "output") for g, o in zip(outputs, op.output_specs)]
    found = [f for f in found if f]
    if found:
        raise ArtifactIntegrityError(f"{export_dir}: {op.onnx} disagrees with the manifest: {'; '.join(found)}")


def _batch(feeds: dict[str, np.ndarray]) -> int | None:
    """The images in a call, or None when the feeds do not share a leading batch axis."""
    sizes = {v.shape[0] if getattr(v, "ndim", 0) else None for v in feeds.values()}
    return sizes.pop() if len(sizes) == 1 else None


def _costs_ms(session, op, batch: int = 8) -> tuple[float, float] | None:
    """``(one call of 1 image, each further image)`` in milliseconds on one thread, from calls of
    zeros (after a warm-up); None (then every call of several images is cut, and one image runs
    on operator threads) when an input has a free dimension besides the batch or the graph
    refuses zeros."""
    def timed(n: int) -> float:  # the fastest of 3 calls: a busy moment at load does not count
        feeds = {spec.name: np.zeros((n, *spec.shape[1:]), np.dtype(spec.dtype)) for spec in op.inputs}
        session.run(None, feeds)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            session.run(None, feeds)
            best = min(best, time.perf_counter() - started)
        return 1000 * best

    if any(d is None for spec in op.inputs for d in spec.shape[1:]):
        return None
    try:
        one, many = timed(1), timed(batch)
    except Exception:  # a graph that refuses zeros: unmeasured
        return None
    return one, max(many - one, 0.0) / (batch - 1)


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
            _check_signature(self.functions[name], op, export_dir)

    def run(self, operation: str, feeds: dict[str, np.ndarray], token=None) -> list[np.ndarray]:
        out = self.functions[operation](**{k: self.tf.constant(v) for k, v in feeds.items()})
        return [out[n].numpy() for n in self.spec.operations[operation].outputs]

    def new_token(self) -> RunToken:
        return RunToken()  # a TensorFlow call cannot be stopped from outside; it runs to the end


def _check_signature(function, op, export_dir) -> None:
    """A SavedModel signature's inputs and outputs against the manifest's (names, dtypes, shapes)."""
    inputs = function.structured_input_signature[1]
    found = []
    if sorted(inputs) != sorted(op.input_names) or sorted(function.structured_outputs) != sorted(op.outputs):
        found.append(f"signature {op.signature!r} has inputs {sorted(inputs)} and outputs "
                     f"{sorted(function.structured_outputs)}; the manifest says {op.input_names} and {list(op.outputs)}")
    for i in op.inputs:
        got = inputs.get(i.name)
        if got is not None and (got.dtype.name != i.dtype or list(got.shape) != list(i.shape)):
            found.append(f"input {i.name!r} is {got.dtype.name} {list(got.shape)} in the SavedModel, {i.dtype} "
                         f"{list(i.shape)} in the manifest")
    if found:
        raise ArtifactIntegrityError(f"{export_dir}: the SavedModel disagrees with the manifest: {'; '.join(found)}")


RUNTIMES = {"onnx": OnnxRuntime, "tf": SavedModelRuntime}


def make_runtime(name: str, export_dir: Path, spec: ExportSpec, **options):
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of {sorted(RUNTIMES)}")
    return RUNTIMES[name](Path(export_dir), spec, **options)
