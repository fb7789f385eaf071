"""The models a server holds: exports read through the one export reader
(:class:`gen_keras.exported.reader.ExportReader`: every sha256 checked before any file reaches a
runtime), found in a folder of exports or resolved from the MLflow model registry.

A model that fails to load is refused — kept out of the served set with the reason — and the
others are served.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError, GenKerasError, ModelSourceError
from gen_keras.exported.manifest import MANIFEST, sha256_file
from gen_keras.exported.reader import ExportReader
from gen_keras.exported.sources import download_registered, parse_model_uri

log = logging.getLogger("serving.registry")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The HTTP operations and the export task each needs. A generator answers :generate,
# :interpolate, :codes and :predict; the rest where the export has the task.
FIRST = (("generate", "generate"), ("interpolate", "generate"), ("codes", "generate"))
LATER = (("mix", "mix"), ("encode", "encode"), ("reconstruct", "reconstruct"), ("translate", "translate"))


@dataclasses.dataclass
class ServedModel:
    name: str
    reader: ExportReader
    source: str  # folder path or models:/ URI
    manifest_sha256: str

    @property
    def spec(self):
        return self.reader.spec

    @property
    def adapter(self):
        return self.reader.adapter

    @property
    def operations(self) -> list[str]:
        """What ``POST /v1/models/NAME:OP`` answers for this model, from its export's tasks."""
        has = self.adapter.has_task
        first = [route for route, task in FIRST if has(task)] or (["translate"] if has("translate") else [])
        return [*first, "predict", *[route for route, task in LATER if has(task) and route not in first]]

    def describe(self) -> dict:
        s = self.spec
        described = {
            "name": self.name, "kind": s.kind, "latent_dim": s.latent_dim,
            "image_shape": list(s.image_shape), "value_range": list(s.value_range),
            "num_classes": s.num_classes, "conditional": s.conditional, "operations": self.operations,
            "signatures": ["serving_default", *s.signature_names()],
            "endpoints": {n: _operation_fields(op) for n, op in s.operations.items()},
            "facts": s.facts,
            "backend": self.reader.runtime.name, "source": self.source,
            "source_run_id": s.source_run_id, "created": s.manifest.get("created"),
            "manifest_sha256": self.manifest_sha256,
            # TensorFlow Serving's model-status shape, for its existing clients.
            "model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}],
        }
        if s.note:
            described["note"] = s.note
        if not self.adapter.has_task("generate"):  # what :translate takes and gives, per direction
            described["translations"] = [
                {"direction": direction, "operation": name, "input": _fields(op.input_for("image")),
                 "output": _fields(op.output_specs[op.output_index("image")])}
                for direction, name in self.adapter.translations.items()
                for op in [s.operations[name]] if op.output_specs]
        return described


def _operation_fields(op) -> dict:
    """An operation as the API describes it: its task, inputs (with roles) and outputs."""
    fields = {"task": op.task, "inputs": [_fields(i) for i in op.inputs], "outputs": list(op.outputs),
              "output_roles": list(op.output_roles)}
    if op.direction is not None:
        fields["direction"] = op.direction
    return fields


def _fields(spec) -> dict:
    """An input or output as the API describes it: ``value_range`` and ``default`` only where the
    model declares them."""
    fields = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None or k not in ("value_range", "default")}
    fields["shape"] = list(fields["shape"])  # as JSON shows it, for in-process callers too
    return fields


def load_export(export_dir: str | Path, name: str, backend: str = "onnx", source: str | None = None,
                threads: int = 0) -> ServedModel:
    """Verify, then load with the chosen runtime (the ONNX bytes are re-hashed as they are
    loaded, so what runs is exactly what was verified)."""
    if not NAME_PATTERN.match(name):
        raise ArtifactIntegrityError(f"model name {name!r} is not usable in a URL: use letters, digits, "
                                     "'.', '_' and '-' (at most 128, starting with a letter or digit)")
    reader = ExportReader(export_dir, runtime=backend, threads=threads, source=source)
    if not reader.adapter.has_task("generate") and not reader.adapter.has_task("translate"):
        raise ArtifactIntegrityError(f"{export_dir}: the export has neither a generate nor a translate "
                                     f"operation (it has {', '.join(reader.operations)})")
    return ServedModel(name, reader, source or str(export_dir),
                       sha256_file(reader.export_dir / MANIFEST))


def discover(models_dir: str | Path) -> list[tuple[str, Path]]:
    """(name, folder) for each sub-folder (or symlink to one) of ``models_dir`` that holds a
    manifest; hidden folders (an exporter's temporary ``.name.tmp-*``) are skipped. An export
    folder given directly is that one model, named after the folder."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ModelSourceError(f"--models {models_dir}: no such folder")
    if (models_dir / MANIFEST).is_file():
        log.info("%s is an export folder: serving it as model %r", models_dir, models_dir.resolve().name)
        return [(models_dir.resolve().name, models_dir)]
    found = []
    for p in sorted(models_dir.iterdir()):
        if p.name.startswith(".") or not p.is_dir():
            continue
        if (p / MANIFEST).is_file():
            found.append((p.name, p))
        else:
            log.warning("%s has no %s; skipped (not an export folder)", p, MANIFEST)
    return found


@dataclasses.dataclass
class ModelStore:
    """What is served, and what was refused with its reason."""
    models: dict = dataclasses.field(default_factory=dict)  # name -> ServedModel
    refused: dict = dataclasses.field(default_factory=dict)  # name -> reason

    def add(self, name: str, load) -> None:
        if name in self.models or name in self.refused:
            # Keep the first; a silent replacement would serve a different model under one name.
            self.refused[f"{name} (duplicate)"] = f"another model is already named {name!r}"
            log.error("two models are named %s; only the first is served", name)
            return
        try:
            self.models[name] = load()
            log.info("serving %s (%s, %s runtime)", name, self.models[name].source,
                     self.models[name].reader.runtime.name)
        except Exception as exc:  # one bad export never takes the others down
            reason = str(exc) if isinstance(exc, GenKerasError) else f"{type(exc).__name__}: {exc}"
            self.refused[name] = reason
            log.error("refused model %s: %s", name, reason)


def load_store(models_dir: str | Path | None = None, model_uris: list[str] = (), backend: str = "onnx",
               tracking_uri: str | None = None, cache_dir: str | Path | None = None,
               threads: int = 0) -> ModelStore:
    """Load every export under ``models_dir`` and every ``models:/`` URI (downloaded once into
    ``cache_dir``, default ``$GEN_KERAS_CACHE/models``)."""
    store = ModelStore()
    if models_dir is not None:
        for name, folder in discover(models_dir):
            store.add(name, lambda f=folder, n=name: load_export(f, n, backend, threads=threads))
    for uri in model_uris:
        try:
            name = parse_model_uri(uri)[0]
        except ModelSourceError as exc:
            store.refused[uri] = str(exc)
            continue

        def load(uri=uri):
            folder, described = download_registered(uri, tracking_uri, cache_dir)
            return load_export(folder, parse_model_uri(uri)[0], backend, source=described, threads=threads)
        store.add(name, load)
    return store
