"""One operation's ONNX file: converted from its Keras network, made faster by exact graph
rewrites (:mod:`gen_keras.onnx_graph`), then checked against Keras on a random batch — the
parity check every export passes before its manifest is written (:mod:`gen_keras.export`)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gen_keras.errors import ExportError

log = logging.getLogger(__name__)


def random_feeds(inputs: list[dict], rng, batch: int = 8) -> dict[str, np.ndarray]:
    """A batch for each input (a manifest input entry: name, role, shape, dtype, value_range):
    integers across their range (labels, crossovers), values across an image's or a truncation's
    range, standard-normal codes, noise and styles."""
    feeds = {}
    for spec in inputs:
        shape, lo_hi = [batch, *spec["shape"][1:]], spec.get("value_range")
        if spec["dtype"].startswith("int"):
            lo, hi = (int(lo_hi[0]), int(lo_hi[1])) if lo_hi else (0, 0)
            feeds[spec["name"]] = rng.integers(lo, hi + 1, shape).astype(spec["dtype"])
        elif lo_hi is not None:
            feeds[spec["name"]] = rng.uniform(*lo_hi, shape).astype("float32")
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype("float32")
    return feeds


def convert(network, path: Path) -> None:
    """Keras' ONNX export of ``network`` (which must have been called once), then the rewrites."""
    network.export(str(path), format="onnx", verbose=False)
    _optimize(path)


def parity(path: Path, network, feeds: dict[str, np.ndarray], tolerance: float, operation: str) -> dict:
    """The ONNX file's outputs against Keras' on ``feeds``: refused (ExportError) when they differ
    by more than ``tolerance`` times the outputs' scale, max(1, max |output|) — images in [-1, 1]
    are held to ``tolerance`` absolute, a summed per-example score of hundreds of nats to
    ``tolerance`` relative. Returns the figures the manifest records."""
    import onnxruntime as ort

    names = [t.name.split(":")[0] for t in network.inputs]
    want = network([feeds[n] for n in names] if len(names) > 1 else feeds[names[0]])
    want = want if isinstance(want, (list, tuple)) else [want]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_inputs = [i.name for i in sess.get_inputs()]
    if set(onnx_inputs) - set(feeds):
        raise ExportError(f"{operation}: ONNX inputs {onnx_inputs} differ from Keras inputs {list(feeds)}")
    got = sess.run(None, {k: feeds[k] for k in onnx_inputs})
    diff = max(float(np.max(np.abs(np.asarray(g) - np.asarray(w)))) for g, w in zip(got, want))
    scale = max([1.0] + [float(np.max(np.abs(np.asarray(w)))) for w in want])
    if not diff <= tolerance * scale:
        raise ExportError(f"{operation}: ONNX output differs from Keras by {diff:.3g} (> {tolerance} x the "
                          f"outputs' scale {scale:.3g}); export aborted")
    return {"onnx_parity_max_abs_diff": diff, "onnx_parity_max_rel_diff": diff / scale}


def _optimize(path: Path) -> None:
    """Graph rewrites that only make onnxruntime faster (gen_keras.onnx_graph); the parity check
    that follows compares the rewritten file with Keras."""
    import onnx

    from gen_keras.onnx_graph import depthwise_single_output, faster, fold_prelu, subpixel_transposed

    model = onnx.load(str(path))
    changed = fold_prelu(model) + depthwise_single_output(model)
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    try:  # measured: whether it pays depends on the shapes
        if subpixel_transposed(candidate):
            depthwise_single_output(candidate)  # phases to one channel (an image layer's) included
            if faster(candidate, model):
                model, changed = candidate, True
    except Exception as exc:  # an optional rewrite: keep the graph as exported (parity checks it)
        log.warning("%s: the transposed-convolution rewrite was skipped (%s: %s)", path.name,
                    type(exc).__name__, exc)
    if changed:
        onnx.save(model, str(path))
