"""Export a trained model for serving: SavedModel signatures + one ONNX file per operation +
``manifest.json``.

The model declares its export surface (``export_endpoints``: generate / encode / reconstruct /
translate / mix ...) with the task of each operation and the role of each tensor, and its
model-level facts (``export_facts``); this module has no per-model branches. Three steps, each
its own place: the ONNX file of each operation with its parity check against Keras
(:mod:`gen_keras.onnx_export`), the SavedModel with one signature per operation and alias
(:func:`write_saved_model`), and the manifest (:func:`gen_keras.exported.manifest.write_manifest`,
beside its reader). Everything is written into a temporary folder beside the target and renamed
into place only after the manifest, so a failed export leaves nothing half-written behind and an
earlier export at the same place stays intact.
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path

import numpy as np

from gen_keras.errors import ExportError
from gen_keras.exported import manifest as M
from gen_keras.exported.roles import ROLE_DEFAULTS, conventional_direction
from gen_keras.files import publish_folder, temporary_folder


def export_model(model, target: str | Path, *, run_id: str | None = None, name: str | None = None,
                 tolerance: float = 1e-4, overwrite: bool = False, facts: dict | None = None,
                 _fail_after: str | None = None) -> Path:
    """Write the export folder ``target`` atomically; returns it. ``facts`` adds model-level
    facts that training measured (``factors``: per code dimension the factor it carries, from
    :func:`gen_keras.eval.factor_codes.code_factors`) to the model's own (``export_facts``)."""
    from gen_keras.precision import float32_twin

    target = Path(target)
    if target.exists() and not overwrite:
        raise ExportError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    tmp = temporary_folder(target)
    try:
        model = float32_twin(model)  # mixed-precision networks do not convert to ONNX
        endpoints = model.export_endpoints()
        operations = {ep.name: export_operation(model, ep, tmp, tolerance) for ep in endpoints}
        write_saved_model(endpoints, operations, tmp / "saved_model")
        if _fail_after == "files":  # fault injection for tests: a failure before the manifest
            raise ExportError("planted failure after writing files (test fault injection)")
        cfg = model.config
        M.write_manifest(
            tmp, name=name or target.name, kind=cfg.kind, latent_dim=model.latent_dim,
            image_shape=cfg.image_shape, value_range=type(cfg).value_range, num_classes=cfg.num_classes,
            conditional=type(cfg).conditional, operations=operations, facts={**model.export_facts(), **(facts or {})},
            model_config=json.loads(json.dumps(model.get_config()["config"])), source_run_id=run_id,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), versions=_versions(),
            saved_model="saved_model")
        publish_folder(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (ExportError, KeyboardInterrupt)):
            raise
        raise ExportError(f"export to {target} failed: {type(exc).__name__}: {exc}") from exc
    return target


def export_operation(model, ep, folder: Path, tolerance: float) -> dict:
    """The manifest entry of one endpoint, after writing its ONNX file and checking it."""
    from gen_keras import onnx_export

    cfg = model.config
    inputs = [_input(ep, t, cfg) for t in ep.network.inputs]
    outputs = [M.output_entry(n, t.shape, ep.role(n, output=True), ep.value_ranges.get(n) or (
        type(cfg).value_range if ep.role(n, output=True) == "image" else None))
        for n, t in zip(ep.outputs, ep.network.outputs)]
    feeds = onnx_export.random_feeds(inputs, np.random.default_rng(0))
    ep.network([feeds[i["name"]] for i in inputs] if len(inputs) > 1 else feeds[inputs[0]["name"]])  # marks it called
    onnx_file = f"{ep.name}.onnx"
    onnx_export.convert(ep.network, folder / onnx_file)
    checks = onnx_export.parity(folder / onnx_file, ep.network, feeds, tolerance, ep.name)
    task = ep.resolved_task()
    direction = ep.direction or (conventional_direction(ep.name) if task == "translate" else None)
    return M.operation_entry(ep.name, task, inputs, outputs, onnx=onnx_file, signature=ep.name,
                             aliases=ep.aliases, direction=direction, **checks)


def _input(ep, tensor, cfg) -> dict:
    """One input's manifest entry: its role and, where it has them, its range and default."""
    name = tensor.name.split(":")[0]
    role = ep.role(name)
    value_range = ep.value_ranges.get(name)
    if value_range is None and role == "image":
        value_range = type(cfg).value_range
    elif value_range is None and role == "label":
        value_range = [0, int(cfg.num_classes) - 1]
    default_range, default = ROLE_DEFAULTS.get(role, (None, None))
    return M.input_entry(name, tensor.shape, str(tensor.dtype), role, value_range or default_range,
                         ep.defaults.get(name, default))


def write_saved_model(endpoints, operations: dict, path: Path) -> None:
    """One SavedModel with a signature per operation and per alias: positional inputs → a dict of
    named float32 outputs."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    for ep in endpoints:
        archive.track(ep.network)
        signature = [tf.TensorSpec(i["shape"], i["dtype"], name=i["name"]) for i in operations[ep.name]["inputs"]]
        for signature_name in [ep.name, *ep.aliases]:
            archive.add_endpoint(signature_name, _signature_fn(ep), input_signature=signature)
    archive.write_out(str(path), verbose=False)


def _signature_fn(ep):
    import tensorflow as tf

    def fn(*args):
        out = ep.network(list(args) if len(args) > 1 else args[0], training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return {n: tf.cast(o, tf.float32) for n, o in zip(ep.outputs, out)}

    return fn


def _versions() -> dict:
    import keras
    import onnxruntime as ort
    import tensorflow as tf

    import gen_keras

    return {"gen_keras": gen_keras.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "onnxruntime": ort.__version__}
