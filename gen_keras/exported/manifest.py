"""An export folder's ``manifest.json``: what it promises, checked once.

The exporter (:mod:`gen_keras.export`) writes, beside the SavedModel and one ONNX file per
operation, a manifest with the model kind, latent size (0 for a model without a latent code, a
translator), image shape, value range, label count, the operations (``endpoints``:
``generate``, ``encode``, ``reconstruct``, ``score``, ``translate``, ...) with their typed inputs
and ordered outputs (``output_specs``: each output's shape and dtype, and for both inputs and
outputs the value range where the model declares one; manifests written before these fields
still parse, with no output specs), and the sha256 of every file. :func:`verify_export`
checks all of it before any file reaches a runtime; a folder that fails is refused with the
reason, never half-loaded. The check covers corruption, half-copied folders, stray edits,
symlinks and files the exporter did not write; it cannot stop someone who can rewrite
``manifest.json`` itself (protect the folder, or the registry).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.files import sha256_file  # noqa: F401  (the export's files are checked with it)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
KNOWN_DTYPES = ("float32", "int32", "int64")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str  # z | x | label | eps | ... (the exporter's names; ONNX keeps them)
    shape: tuple  # leading None = batch
    dtype: str
    value_range: tuple[float, float] | None = None  # where the model promises one (images)


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One output of an operation (manifests from before ``output_specs`` have none)."""
    name: str
    shape: tuple  # leading None = batch
    dtype: str
    value_range: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class OperationSpec:
    """One exported function: a SavedModel signature and an ONNX file with the same inputs."""
    name: str
    onnx: str
    signature: str
    aliases: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]  # ONNX output names are generic: this order is the contract
    output_specs: tuple[OutputSpec, ...] = ()  # shapes / ranges of ``outputs``, in order

    def input(self, name: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> OutputSpec | None:
        return next((o for o in self.output_specs if o.name == name), None)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """The manifest as its readers use it (``manifest`` keeps the raw dict)."""
    name: str
    kind: str
    latent_dim: int
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    num_classes: int
    conditional: bool
    operations: dict  # name -> OperationSpec
    manifest: dict

    @property
    def model_config(self) -> dict:
        return dict(self.manifest.get("model_config") or {})

    @property
    def source_run_id(self) -> str | None:
        return self.manifest.get("source_run_id")

    def operation(self, name: str) -> OperationSpec | None:
        """The operation called ``name`` or with ``name`` among its aliases (``decode``)."""
        if name in self.operations:
            return self.operations[name]
        return next((op for op in self.operations.values() if name in op.aliases), None)

    def signature_names(self) -> list[str]:
        return sorted({n for op in self.operations.values() for n in (op.name, *op.aliases)})


def parse_manifest(manifest: dict, where: str) -> ExportSpec:
    """Check the fields every reader relies on; every error names the field."""
    def need(key, kind, test=lambda v: True, what=""):
        if key not in manifest:
            raise ArtifactIntegrityError(f"{where}: manifest has no {key!r}")
        value = manifest[key]
        wrong_type = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        if wrong_type or not test(value):
            raise ArtifactIntegrityError(f"{where}: manifest field {key!r}={value!r} is not {what}")
        return value

    latent = need("latent_dim", int, lambda v: v >= 0, "a positive integer (or 0: no latent code)")
    shape = need("image_shape", list, lambda v: len(v) == 3 and all(
        isinstance(d, int) and d > 0 for d in v), "[height, width, channels]")
    lo, hi = need("value_range", list, lambda v: len(v) == 2 and all(
        isinstance(d, (int, float)) for d in v) and v[0] < v[1], "[low, high] with low < high")
    classes = need("num_classes", int, lambda v: v >= 0, "an integer >= 0")
    conditional = need("conditional", bool, what="true or false")
    if conditional and classes < 1:
        raise ArtifactIntegrityError(f"{where}: a conditional model needs num_classes >= 1, got {classes}")
    operations = {}
    for name, op in need("endpoints", dict, lambda v: bool(v), "a non-empty mapping of operations").items():
        try:
            inputs = tuple(InputSpec(i["name"], tuple(i["shape"]), i["dtype"],
                                     _value_range(i, f"{where}: operation {name!r} input")) for i in op["inputs"])
            outputs = tuple(OutputSpec(o["name"], tuple(o["shape"]), o["dtype"],
                                       _value_range(o, f"{where}: operation {name!r} output"))
                            for o in op.get("output_specs", []))
            operations[name] = OperationSpec(name, op["onnx"], op.get("signature", name),
                                             tuple(op.get("aliases", [])), inputs, tuple(op["outputs"]), outputs)
        except (KeyError, TypeError) as exc:
            raise ArtifactIntegrityError(f"{where}: manifest operation {name!r} lacks {exc}") from None
        for i in (*inputs, *outputs):
            if i.dtype not in KNOWN_DTYPES:
                raise ArtifactIntegrityError(f"{where}: operation {name!r} input/output {i.name!r} has dtype "
                                             f"{i.dtype!r}; readers know {list(KNOWN_DTYPES)}")
        if outputs and [o.name for o in outputs] != list(operations[name].outputs):
            raise ArtifactIntegrityError(f"{where}: operation {name!r} output_specs name "
                                         f"{[o.name for o in outputs]}, its outputs {list(operations[name].outputs)}")
    if "generate" in operations and latent < 1:
        raise ArtifactIntegrityError(f"{where}: manifest field 'latent_dim'={latent} is not a positive "
                                     "integer, and the model has a 'generate' operation")
    return ExportSpec(str(manifest.get("name", Path(where).name)), need("kind", str), latent,
                      tuple(shape), (float(lo), float(hi)), classes, conditional, operations, manifest)


def _value_range(spec: dict, what: str) -> tuple[float, float] | None:
    """``[low, high]`` with low < high, or None when the spec has none."""
    value = spec.get("value_range")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) or not value[0] < value[1]):
        raise ArtifactIntegrityError(f"{what} {spec.get('name')!r}: value_range={value!r} is not "
                                     "[low, high] with low < high")
    return (float(value[0]), float(value[1]))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(export_dir: str | Path) -> dict:
    """The raw manifest dict of an export folder (not verified: see :func:`verify_export`)."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise ArtifactIntegrityError(f"{export_dir}: no {MANIFEST}; not an export folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactIntegrityError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactIntegrityError(f"{path}: manifest has no 'files' table of sha256 digests")
    return manifest


def verify_export(export_dir: str | Path) -> ExportSpec:
    """The folder's :class:`ExportSpec`, after checking every file against its sha256.

    Refused (:class:`ArtifactIntegrityError`) when a listed file is missing, differs, is a
    symlink or lies outside the folder, when a file a runtime would read (ONNX, SavedModel) is
    not listed, or when a manifest field is unusable.
    """
    root = Path(export_dir)
    if root.is_symlink():  # a served name may point at a version folder; follow that one link
        root = root.resolve()
    manifest = read_manifest(root)
    spec = parse_manifest(manifest, str(export_dir))
    files = manifest["files"]
    for rel, digest in files.items():
        _check_member(root, rel, export_dir)
        if sha256_file(root / rel) != digest:
            raise ArtifactIntegrityError(f"{export_dir}: {rel} does not match its sha256 in the manifest "
                                         "(altered or corrupted); refusing to load this model")
    for op in spec.operations.values():
        if op.onnx not in files:
            raise ArtifactIntegrityError(f"{export_dir}: operation {op.name!r} file {op.onnx} has no "
                                         "sha256 in the manifest")
    saved = manifest.get("saved_model", "saved_model")
    _check_member(root, saved, export_dir, directory=True)
    for p in sorted((root / saved).rglob("*")) if (root / saved).is_dir() else []:
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            raise ArtifactIntegrityError(f"{export_dir}: {rel} is a symlink; an export holds only its own files")
        if p.is_file() and rel not in files:
            raise ArtifactIntegrityError(f"{export_dir}: {rel} is not listed in the manifest; a file the "
                                         "exporter did not write is refused")
    return spec


def _check_member(root: Path, rel: str, where, directory: bool = False) -> None:
    """``rel`` must be a relative path to a regular file (or folder) inside ``root``, with no
    symlink on the way."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ArtifactIntegrityError(f"{where}: manifest lists {rel!r}, which lies outside the folder")
    path = root
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            raise ArtifactIntegrityError(f"{where}: {rel} is (or passes through) a symlink; an export "
                                         "holds only its own files")
    if directory:
        return
    if not path.is_file():
        raise ArtifactIntegrityError(f"{where}: {rel} is listed in the manifest but missing")
