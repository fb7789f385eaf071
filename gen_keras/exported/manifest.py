"""An export folder's ``manifest.json``: written here, read here, checked once.

The exporter (:mod:`gen_keras.export`) writes, beside the SavedModel and one ONNX file per
operation, a manifest (:func:`write_manifest`) that says what the export is and what its parts
mean: the model kind, latent size (0 for a model without a latent code, a translator), image
shape, value range and label count; the model-level ``facts`` consumers need (a style-based
model's style layout: ``num_ws``, ``w_dim``, ``default_crossover``; for a model trained on a set
with known factors, ``factors``: the factor names and, per code dimension, the factor it carries
most and its normalized mutual information); per operation (``endpoints``)
its ``task``, each input's ``role`` with its shape, dtype, range and default, each output's
``role``, shape and range (:mod:`gen_keras.exported.roles`); and the sha256 of every file.
:func:`verify_export` checks all of it before any file reaches a runtime; a folder that fails is
refused with the reason, never half-loaded. The writer checks what it writes with the same
parser, so a manifest the reader would refuse is never published.

Manifests of format 1 (before roles) are read by the exporter's naming conventions
(:func:`_upgrade_format1`); a style-based export of format 1 has no ``mix`` operation and says
how to re-export in :attr:`ExportSpec.note`.

The check covers corruption, half-copied folders, stray edits, symlinks, files the exporter did
not write and manifests that contradict themselves; it cannot stop someone who can rewrite
``manifest.json`` itself (protect the folder, or the registry: docs/mlflow.md).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError
from gen_keras.exported import roles as R
from gen_keras.files import atomic_write_bytes, sha256_file

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
KNOWN_DTYPES = ("float32", "int32", "int64")
REEXPORT = "gen-keras export --run-id <its source run> (or --model <model.keras>) --out <folder>"


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str  # the tensor's name in the ONNX file and the SavedModel signature
    shape: tuple  # leading None = batch
    dtype: str
    value_range: tuple[float, float] | None = None  # images, labels, truncation, crossover
    role: str | None = None  # gen_keras.exported.roles.INPUT_ROLES
    default: float | int | None = None  # what a consumer feeds when the request leaves it out


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """One output of an operation (manifests of format 1 from before ``output_specs`` have none)."""
    name: str
    shape: tuple  # leading None = batch
    dtype: str
    value_range: tuple[float, float] | None = None
    role: str | None = None  # gen_keras.exported.roles.OUTPUT_ROLES


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
    task: str = ""  # gen_keras.exported.roles.TASKS
    output_roles: tuple[str, ...] = ()  # the role of each of ``outputs``, in order
    direction: str | None = None  # a translation's direction (a2b, b2a); None: one way

    def input(self, name: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> OutputSpec | None:
        return next((o for o in self.output_specs if o.name == name), None)

    def input_for(self, role: str) -> InputSpec | None:
        """The input with ``role`` (an operation has at most one of each)."""
        return next((i for i in self.inputs if i.role == role), None)

    def output_index(self, role: str) -> int | None:
        """The position of the output with ``role`` in :attr:`outputs`."""
        return next((k for k, r in enumerate(self.output_roles) if r == role), None)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def input_roles(self) -> set[str]:
        return {i.role for i in self.inputs}


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """The manifest as its readers use it (``manifest`` keeps the raw dict as written)."""
    name: str
    kind: str
    latent_dim: int
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    num_classes: int
    conditional: bool
    operations: dict  # name -> OperationSpec
    manifest: dict
    facts: dict = dataclasses.field(default_factory=dict)  # model-level facts (``style``, ...)
    format_version: int = FORMAT_VERSION
    note: str = ""  # what a format-1 export lacks and how to re-export it

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

    def by_task(self, task: str) -> list[OperationSpec]:
        """The operations of one task, in name order."""
        return [op for _, op in sorted(self.operations.items()) if op.task == task]

    def signature_names(self) -> list[str]:
        return sorted({n for op in self.operations.values() for n in (op.name, *op.aliases)})


# -- writing ---------------------------------------------------------------------------------------
def input_entry(name: str, shape, dtype: str, role: str, value_range=None, default=None) -> dict:
    """One input as the manifest lists it."""
    entry = {"name": name, "role": role, "shape": [None, *[int(d) for d in shape[1:]]], "dtype": str(dtype)}
    if value_range is not None:
        kind = int if str(dtype).startswith("int") else float
        entry["value_range"] = [kind(v) for v in value_range]
    if default is not None:
        entry["default"] = default
    return entry


def output_entry(name: str, shape, role: str, value_range=None) -> dict:
    """One output as the manifest lists it (outputs are float32)."""
    entry = {"name": name, "role": role, "shape": [None, *[int(d) for d in shape[1:]]], "dtype": "float32"}
    if value_range is not None:
        entry["value_range"] = [float(v) for v in value_range]
    return entry


def operation_entry(name: str, task: str, inputs: list[dict], outputs: list[dict], *, onnx: str,
                    signature: str, aliases=(), direction: str | None = None, **checks) -> dict:
    """One operation as the manifest lists it; ``checks`` are recorded as they are (the ONNX
    parity figures)."""
    entry = {"task": task, "onnx": onnx, "signature": signature, "aliases": list(aliases), "inputs": inputs,
             "outputs": [o["name"] for o in outputs], "output_specs": outputs, **checks}
    if direction is not None:
        entry["direction"] = direction
    return entry


def write_manifest(folder: str | Path, *, name: str, kind: str, latent_dim: int, image_shape, value_range,
                   num_classes: int, conditional: bool, operations: dict, facts: dict | None = None,
                   **record) -> dict:
    """Write ``manifest.json`` into ``folder`` with the sha256 of every file already there, after
    checking it with the reader's own parser; ``record`` holds the fields kept as they are
    (model_config, source_run_id, created, versions, saved_model). Returns the manifest."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    manifest = {"format_version": FORMAT_VERSION, "name": name, "kind": kind, "latent_dim": int(latent_dim),
                "image_shape": [int(d) for d in image_shape], "value_range": [float(v) for v in value_range],
                "num_classes": int(num_classes), "conditional": bool(conditional), "facts": facts or {},
                **record, "endpoints": operations, "files": files}
    manifest = json.loads(json.dumps(manifest))  # exactly what a reader will see
    parse_manifest(manifest, str(folder))  # never publish what the reader refuses
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    return manifest


# -- reading ---------------------------------------------------------------------------------------
def parse_manifest(manifest: dict, where: str) -> ExportSpec:
    """Check the fields every reader relies on, and that the manifest agrees with itself (each
    code input has ``latent_dim`` entries, each generated image is ``image_shape``, each task has
    the inputs it needs); every error names the field. A format-1 manifest is read by the
    exporter's naming conventions first."""
    version = manifest.get("format_version", 1)
    if version not in (1, FORMAT_VERSION):
        raise ArtifactIntegrityError(f"{where}: manifest format_version {version!r}; this gen-keras reads "
                                     f"formats 1 and {FORMAT_VERSION} (a newer export needs a newer gen-keras)")
    note = ""
    if version == 1:
        manifest, note = _upgrade_format1(manifest, where)

    def need(key, kind, test=lambda v: True, what=""):
        if key not in manifest:
            raise ArtifactIntegrityError(f"{where}: manifest has no {key!r}")
        value = manifest[key]
        wrong_type = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        if wrong_type or not test(value):
            raise ArtifactIntegrityError(f"{where}: manifest field {key!r}={_brief(value)} is not {what}")
        return value

    latent = need("latent_dim", int, lambda v: v >= 0, "a positive integer (or 0: no latent code)")
    shape = need("image_shape", list, lambda v: len(v) == 3 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v), "[height, width, channels]")
    lo, hi = need("value_range", list, lambda v: len(v) == 2 and all(
        isinstance(d, (int, float)) and not isinstance(d, bool) for d in v) and v[0] < v[1],
        "[low, high] with low < high")
    classes = need("num_classes", int, lambda v: v >= 0, "an integer >= 0")
    conditional = need("conditional", bool, what="true or false")
    facts = need("facts", dict, what="a mapping") if "facts" in manifest else {}
    if conditional and classes < 1:
        raise ArtifactIntegrityError(f"{where}: a conditional model needs num_classes >= 1, got {classes}")
    operations = {}
    for name, op in need("endpoints", dict, lambda v: bool(v), "a non-empty mapping of operations").items():
        operations[name] = _operation(name, op, f"{where}: operation {name!r}")
    spec = ExportSpec(str(manifest.get("name", Path(where).name)), need("kind", str), latent,
                      tuple(shape), (float(lo), float(hi)), classes, conditional, operations, manifest,
                      facts, version, note)
    _check_agreement(spec, where)
    return spec


def _operation(name: str, op, where: str) -> OperationSpec:
    if not isinstance(op, dict):
        raise ArtifactIntegrityError(f"{where} is {_brief(op)}, not a mapping")
    for key in ("onnx", "inputs", "outputs"):
        if key not in op:
            raise ArtifactIntegrityError(f"{where} has no {key!r}")
    inputs = tuple(InputSpec(i["name"], _shape(i["shape"], where), i["dtype"], _value_range(i, f"{where} input"),
                             i.get("role"), i.get("default"))
                   for i in _entries(op, "inputs", ("name", "shape", "dtype"), where))
    outputs = tuple(OutputSpec(o["name"], _shape(o["shape"], where), o["dtype"], _value_range(o, f"{where} output"),
                               o.get("role"))
                    for o in _entries(op, "output_specs", ("name", "shape", "dtype"), where, required=False))
    names = tuple(_listed(op, "outputs", where))
    if not all(isinstance(n, str) for n in names) or not isinstance(op["onnx"], str):
        raise ArtifactIntegrityError(f"{where}: 'outputs' must list names and 'onnx' name a file")
    aliases = tuple(_listed(op, "aliases", where, required=False))
    roles = tuple(_listed(op, "output_roles", where, required=False) or [o.role for o in outputs])
    spec = OperationSpec(name, op["onnx"], str(op.get("signature", name)), aliases, inputs, names, outputs,
                         op.get("task", ""), roles, op.get("direction"))
    for i in inputs:
        if i.default is not None and (isinstance(i.default, bool) or not isinstance(i.default, (int, float))):
            raise ArtifactIntegrityError(f"{where} input {i.name!r} has default {_brief(i.default)}, not a number")
    for i in (*inputs, *outputs):
        if i.dtype not in KNOWN_DTYPES:
            raise ArtifactIntegrityError(f"{where} input/output {i.name!r} has dtype {i.dtype!r}; readers "
                                         f"know {list(KNOWN_DTYPES)}")
    if outputs and [o.name for o in outputs] != list(names):
        raise ArtifactIntegrityError(f"{where}: output_specs name {[o.name for o in outputs]}, its outputs "
                                     f"{list(names)}")
    if spec.task not in R.TASKS:
        raise ArtifactIntegrityError(f"{where} has task {spec.task!r}; this reader knows {list(R.TASKS)}")
    for i in inputs:
        if i.role not in R.INPUT_ROLES:
            raise ArtifactIntegrityError(f"{where} input {i.name!r} has role {i.role!r}; this reader knows "
                                         f"{list(R.INPUT_ROLES)}")
        integer = i.role in R.INTEGER_ROLES
        if integer != i.dtype.startswith("int"):
            raise ArtifactIntegrityError(f"{where} input {i.name!r} ({i.role}) has dtype {i.dtype}")
    roles = [i.role for i in inputs]
    if len(set(roles)) != len(roles):
        raise ArtifactIntegrityError(f"{where} names a role twice among its inputs: {roles}")
    missing = R.TASK_INPUTS[spec.task] - set(roles)
    if missing:
        raise ArtifactIntegrityError(f"{where} ({spec.task}) has no input with role(s) {sorted(missing)}")
    if len(spec.output_roles) != len(names) or any(r not in R.OUTPUT_ROLES for r in spec.output_roles):
        raise ArtifactIntegrityError(f"{where} output roles {list(spec.output_roles)} for outputs {list(names)}; "
                                     f"this reader knows {list(R.OUTPUT_ROLES)}")
    return spec


def _check_agreement(spec: ExportSpec, where: str) -> None:
    """The manifest's model-level fields against its operations' tensors."""
    if spec.by_task("generate") and spec.latent_dim < 1:
        raise ArtifactIntegrityError(f"{where}: manifest field 'latent_dim'={spec.latent_dim} is not a positive "
                                     "integer, and the model has a 'generate' operation")
    for op in spec.operations.values():
        here = f"{where}: operation {op.name!r}"
        for i in op.inputs:
            if i.role in ("code", "mixing_code") and tuple(i.shape[1:]) != (spec.latent_dim,):
                raise ArtifactIntegrityError(f"{here} input {i.name!r} has shape {list(i.shape)}; the manifest's "
                                             f"latent_dim is {spec.latent_dim}")
            if i.role == "label" and not spec.conditional:
                raise ArtifactIntegrityError(f"{here} takes a label, and the manifest says the model is not "
                                             "conditional")
            if i.role == "image" and len(i.shape) != 4:
                raise ArtifactIntegrityError(f"{here} input {i.name!r} has shape {list(i.shape)}, not [N, H, W, C]")
        if op.task in ("generate", "mix", "synthesize", "reconstruct") and op.output_specs:
            image = op.output_specs[op.output_index("image") or 0]
            if tuple(image.shape[1:]) != spec.image_shape:
                raise ArtifactIntegrityError(f"{here} makes images of shape {list(image.shape[1:])}; the "
                                             f"manifest's image_shape is {list(spec.image_shape)}")
    factors = spec.facts.get("factors")
    if factors is not None:
        names = factors.get("factors") if isinstance(factors, dict) else None
        dims = factors.get("dimensions") if isinstance(factors, dict) else None
        if (not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not isinstance(dims, list)
                or len(dims) != spec.latent_dim or not all(
                    isinstance(d, dict) and (d.get("factor") is None or d.get("factor") in names)
                    and isinstance(d.get("mi"), (int, float)) for d in dims)):
            raise ArtifactIntegrityError(f"{where}: facts.factors={_brief(factors)} needs 'factors' (names) and one "
                                         f"'dimensions' entry per code dimension ({spec.latent_dim}), each with "
                                         "'factor' (one of the names, or null) and 'mi'")
    style = spec.facts.get("style")
    if style is not None:
        if not isinstance(style, dict) or not all(isinstance(style.get(k), int) and not isinstance(style.get(k), bool)
                                                  for k in ("num_ws", "w_dim", "default_crossover")):
            raise ArtifactIntegrityError(f"{where}: facts.style={_brief(style)} needs integers num_ws, w_dim, "
                                         "default_crossover")
        for op in spec.operations.values():
            styles = op.input_for("styles")
            if styles is not None and tuple(styles.shape[1:]) != (style["num_ws"], style["w_dim"]):
                raise ArtifactIntegrityError(f"{where}: operation {op.name!r} takes styles {list(styles.shape)}; "
                                             f"facts.style says {style['num_ws']} x {style['w_dim']}")


def _entries(op: dict, key: str, fields: tuple, where: str, required: bool = True) -> list[dict]:
    """The list ``op[key]``, each entry an object with ``fields``."""
    entries = _listed(op, key, where, required)
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(f not in entry for f in fields):
            raise ArtifactIntegrityError(f"{where}: {key}[{k}]={_brief(entry)} is not an object with "
                                         f"{', '.join(fields)}")
    return entries


def _listed(op: dict, key: str, where: str, required: bool = True) -> list:
    value = op[key] if required else op.get(key, [])
    if not isinstance(value, list):
        raise ArtifactIntegrityError(f"{where}: {key}={_brief(value)} is not a list")
    return value


def _shape(value, where: str) -> tuple:
    if not isinstance(value, list) or not value or value[0] is not None or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value[1:]):
        raise ArtifactIntegrityError(f"{where}: shape {_brief(value)} is not [null, d1, d2, ...] with positive sizes")
    return tuple(value)


def _brief(value, limit: int = 80) -> str:
    """A value for a message: its repr, cut short (a hostile manifest's value may be huge)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _upgrade_format1(manifest: dict, where: str) -> tuple[dict, str]:
    """A format-1 manifest in format-2 form, its roles and tasks read from the exporter's
    conventional names (gen_keras.exported.roles); and what it lacks."""
    upgraded = copy.deepcopy(manifest)
    endpoints = upgraded.get("endpoints")
    if not isinstance(endpoints, dict):
        return upgraded, ""  # the parser names the problem
    value_range = manifest.get("value_range")
    classes = manifest.get("num_classes")
    for name, op in endpoints.items():
        if not isinstance(op, dict):
            continue
        task = R.CONVENTIONAL_TASKS.get(name)
        if task is None:
            raise ArtifactIntegrityError(f"{where}: format-1 export with an operation {name!r} this reader cannot "
                                         f"interpret; re-export it with this gen-keras: {REEXPORT}")
        op["task"] = task
        if task == "translate" and R.conventional_direction(name):
            op["direction"] = R.conventional_direction(name)
        for i in op.get("inputs") if isinstance(op.get("inputs"), list) else []:
            if not isinstance(i, dict) or i.get("name") not in R.CONVENTIONAL_INPUTS:
                raise ArtifactIntegrityError(f"{where}: format-1 operation {name!r} has an input {_brief(i)} this "
                                             f"reader cannot interpret; re-export it: {REEXPORT}")
            i["role"] = R.CONVENTIONAL_INPUTS[i["name"]]
            if i["role"] == "image" and "value_range" not in i:
                i["value_range"] = value_range
            elif i["role"] == "label" and isinstance(classes, int) and classes > 0:
                i["value_range"] = [0, classes - 1]
            elif i["role"] == "truncation":
                i.setdefault("value_range", [0.0, 1.0])
                i.setdefault("default", 1.0)
        outputs = op.get("outputs") if isinstance(op.get("outputs"), list) else []
        op["output_roles"] = [R.CONVENTIONAL_OUTPUTS.get(o, "") for o in outputs]
        for o in op.get("output_specs") or []:
            if isinstance(o, dict):
                o["role"] = R.CONVENTIONAL_OUTPUTS.get(o.get("name"), "")
    note = ""
    synthesis = endpoints.get("synthesis")
    if isinstance(synthesis, dict) and "mapping" in endpoints:
        try:
            num_ws, w_dim = (int(d) for d in synthesis["inputs"][0]["shape"][1:3])
        except (KeyError, IndexError, TypeError, ValueError):
            raise ArtifactIntegrityError(f"{where}: format-1 synthesis operation without a [N, num_ws, w_dim] "
                                         f"input; re-export it: {REEXPORT}") from None
        upgraded["facts"] = {"style": {"num_ws": num_ws, "w_dim": w_dim, "default_crossover": num_ws // 2}}
        note = (f"exported before operations declared their roles (format 1): it has no 'mix' operation; "
                f"re-export it for :mix: {REEXPORT}")
    return upgraded, note


def _value_range(spec: dict, what: str) -> tuple[float, float] | None:
    """``[low, high]`` with low < high (low <= high for integers), or None when the spec has none."""
    value = spec.get("value_range")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) or not value[0] <= value[1]
            or (value[0] == value[1] and not spec.get("dtype", "").startswith("int"))):
        raise ArtifactIntegrityError(f"{what} {_brief(spec.get('name'))}: value_range={_brief(value)} is not "
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
