"""Export a trained model for serving: SavedModel signatures + one ONNX file per endpoint +
``manifest.json``.

The model declares its export surface (``export_endpoints``: generate / encode / reconstruct /
translate ...); this module has no per-model branches. Each operation's manifest entry lists its
inputs and its outputs (``output_specs``) with shape and dtype, and the value range where the
model declares one (a translation's image in and image out). Everything is written into a temporary folder beside the
target; the ONNX outputs are checked against Keras (max abs diff <= ``tolerance`` times the
outputs' scale, max(1, max |output|): images in [-1, 1] are held to 1e-4 absolute, a summed
per-example score of hundreds of nats to 1e-4 relative) before the
manifest is written, and only then is the folder renamed into place, so a failed export leaves
nothing half-written behind and an earlier export at the same place stays intact.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from gen_keras.errors import ExportError
from gen_keras.exported.manifest import FORMAT_VERSION, MANIFEST, sha256_file
from gen_keras.files import publish_folder, temporary_folder

log = logging.getLogger(__name__)


def _input_specs(network, value_ranges=None):
    """Name, shape (leading None = batch), dtype — and the value range, where the endpoint
    declares one — of each input."""
    specs = []
    for t in network.inputs:
        name = t.name.split(":")[0]
        spec = {"name": name, "shape": [None, *[int(d) for d in t.shape[1:]]], "dtype": str(t.dtype)}
        if name in (value_ranges or {}):
            spec["value_range"] = [float(v) for v in value_ranges[name]]
        specs.append(spec)
    return specs


def _output_specs(ep):
    """The same for each output, in the endpoint's order (``outputs``: the names)."""
    specs = []
    for name, t in zip(ep.outputs, ep.network.outputs):
        spec = {"name": name, "shape": [None, *[int(d) for d in t.shape[1:]]], "dtype": "float32"}
        if name in ep.value_ranges:
            spec["value_range"] = [float(v) for v in ep.value_ranges[name]]
        specs.append(spec)
    return specs


def _random_inputs(specs, num_classes: int, rng, batch: int = 8):
    feeds = {}
    for s in specs:
        shape = [batch, *s["shape"][1:]]
        if s["dtype"].startswith("int"):
            feeds[s["name"]] = rng.integers(0, max(num_classes, 1), shape).astype(s["dtype"])
        elif "value_range" in s:
            feeds[s["name"]] = rng.uniform(*s["value_range"], shape).astype("float32")
        elif s["name"] == "x":
            feeds[s["name"]] = rng.uniform(0, 1, shape).astype("float32")
        else:
            feeds[s["name"]] = rng.standard_normal(shape).astype("float32")
    return feeds


def _optimize_onnx(path: Path) -> None:
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


def _signature_fn(ep):
    """A SavedModel endpoint: positional inputs → dict of named float32 outputs."""
    import tensorflow as tf

    def fn(*args):
        out = ep.network(list(args) if len(args) > 1 else args[0], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return {n: tf.cast(o, tf.float32) for n, o in zip(ep.outputs, out)}

    return fn


def export_model(model, target: str | Path, *, run_id: str | None = None, name: str | None = None,
                 tolerance: float = 1e-4, overwrite: bool = False, _fail_after: str | None = None) -> Path:
    """Write the export folder ``target`` atomically; returns it."""
    import keras
    import onnxruntime as ort
    import tensorflow as tf

    import gen_keras

    target = Path(target)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    tmp = temporary_folder(target)
    try:
        from gen_keras.precision import float32_twin

        model = float32_twin(model)  # mixed-precision networks do not convert to ONNX
        endpoints = model.export_endpoints()
        cfg = model.config
        rng = np.random.default_rng(0)
        manifest_endpoints = {}
        archive = keras.export.ExportArchive()
        for ep in endpoints:
            archive.track(ep.network)
            specs = _input_specs(ep.network, ep.value_ranges)
            signature = [tf.TensorSpec([None, *s["shape"][1:]], s["dtype"], name=s["name"]) for s in specs]

            for signature_name in [ep.name, *ep.aliases]:
                archive.add_endpoint(signature_name, _signature_fn(ep), input_signature=signature)
            # Parity: onnxruntime vs Keras on a random batch (the Keras call also marks the
            # network as called, which Keras' ONNX exporter requires).
            feeds = _random_inputs(specs, cfg.num_classes, rng)
            want = ep.network([feeds[s["name"]] for s in specs] if len(specs) > 1 else feeds[specs[0]["name"]])
            want = want if isinstance(want, (list, tuple)) else [want]
            onnx_file = f"{ep.name}.onnx"
            ep.network.export(str(tmp / onnx_file), format="onnx", verbose=False)
            _optimize_onnx(tmp / onnx_file)
            sess = ort.InferenceSession(str(tmp / onnx_file), providers=["CPUExecutionProvider"])
            onnx_inputs = [i.name for i in sess.get_inputs()]
            missing = set(onnx_inputs) - set(feeds)
            if missing:
                raise ExportError(f"{ep.name}: ONNX inputs {onnx_inputs} differ from Keras inputs "
                                  f"{list(feeds)}")
            got = sess.run(None, {k: feeds[k] for k in onnx_inputs})
            diff = max(float(np.max(np.abs(np.asarray(g) - np.asarray(w)))) for g, w in zip(got, want))
            scale = max([1.0] + [float(np.max(np.abs(np.asarray(w)))) for w in want])
            if not diff <= tolerance * scale:
                raise ExportError(f"{ep.name}: ONNX output differs from Keras by {diff:.3g} "
                                  f"(> {tolerance} x the outputs' scale {scale:.3g}); export aborted")
            manifest_endpoints[ep.name] = {
                "onnx": onnx_file, "signature": ep.name, "aliases": ep.aliases, "inputs": specs,
                "outputs": ep.outputs, "output_specs": _output_specs(ep), "onnx_parity_max_abs_diff": diff,
                "onnx_parity_max_rel_diff": diff / scale,
            }
        archive.write_out(str(tmp / "saved_model"), verbose=False)
        if _fail_after == "files":  # fault injection for tests: a failure before the manifest
            raise ExportError("planted failure after writing files (test fault injection)")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name or target.name,
            "kind": cfg.kind,
            "latent_dim": int(model.latent_dim),  # 0: no latent code (a translator)
            "image_shape": [int(d) for d in cfg.image_shape],  # the output images' (per operation: output_specs)
            "value_range": list(type(cfg).value_range),
            "num_classes": int(cfg.num_classes),
            "conditional": bool(type(cfg).conditional),
            "model_config": json.loads(json.dumps(model.get_config()["config"])),
            "source_run_id": run_id,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"gen_keras": gen_keras.__version__, "tensorflow": tf.__version__,
                         "keras": keras.__version__, "onnxruntime": ort.__version__},
            "saved_model": "saved_model",
            "endpoints": manifest_endpoints,
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        publish_folder(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (ExportError, KeyboardInterrupt)):
            raise
        raise ExportError(f"export to {target} failed: {type(exc).__name__}: {exc}") from exc
    return target
