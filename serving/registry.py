"""The models a server holds: export folders checked against their manifests BEFORE any file
reaches a runtime, found in a folder of exports or resolved from the MLflow model registry.

A model that fails its check is refused — kept out of the served set with the reason — and the
others are served. The check covers corruption, half-copied folders and stray edits; it cannot
stop someone who can rewrite ``manifest.json`` itself (protect the folder, or the registry).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import tempfile
import urllib.parse
from pathlib import Path

log = logging.getLogger("serving.registry")

MANIFEST = "manifest.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KNOWN_DTYPES = {"float32", "int32", "int64"}


class ExportRefused(RuntimeError):
    """An export folder is missing files, was altered, or its manifest is unusable."""


class ModelSourceError(RuntimeError):
    """A ``models:/`` URI could not be resolved or downloaded."""


# -- the manifest, as serving reads it ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # leading None = batch
    dtype: str


@dataclasses.dataclass(frozen=True)
class EndpointSpec:
    name: str
    onnx: str
    signature: str
    aliases: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]  # ONNX output names are generic: this order is the contract

    def input(self, name: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.name == name), None)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    kind: str
    latent_dim: int
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    num_classes: int
    conditional: bool
    endpoints: dict  # name -> EndpointSpec
    manifest: dict

    @classmethod
    def from_manifest(cls, manifest: dict, where: str) -> "ModelSpec":
        """Check the fields serving relies on; every error names the field."""
        def need(key, kind, test=lambda v: True, what=""):
            if key not in manifest:
                raise ExportRefused(f"{where}: manifest has no {key!r}")
            value = manifest[key]
            wrong_type = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
            if wrong_type or not test(value):
                raise ExportRefused(f"{where}: manifest field {key!r}={value!r} is not {what}")
            return value

        latent = need("latent_dim", int, lambda v: v > 0, "a positive integer")
        shape = need("image_shape", list, lambda v: len(v) == 3 and all(
            isinstance(d, int) and d > 0 for d in v), "[height, width, channels]")
        lo, hi = need("value_range", list, lambda v: len(v) == 2 and all(
            isinstance(d, (int, float)) for d in v) and v[0] < v[1], "[low, high] with low < high")
        classes = need("num_classes", int, lambda v: v >= 0, "an integer >= 0")
        conditional = need("conditional", bool, what="true or false")
        if conditional and classes < 1:
            raise ExportRefused(f"{where}: a conditional model needs num_classes >= 1, got {classes}")
        endpoints = {}
        for name, ep in need("endpoints", dict, lambda v: "generate" in v,
                             "a mapping holding a 'generate' endpoint").items():
            try:
                inputs = tuple(InputSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in ep["inputs"])
                endpoints[name] = EndpointSpec(name, ep["onnx"], ep.get("signature", name),
                                               tuple(ep.get("aliases", [])), inputs, tuple(ep["outputs"]))
            except (KeyError, TypeError) as exc:
                raise ExportRefused(f"{where}: manifest endpoint {name!r} lacks {exc}") from None
            for i in inputs:
                if i.dtype not in KNOWN_DTYPES:
                    raise ExportRefused(f"{where}: endpoint {name!r} input {i.name!r} has dtype "
                                        f"{i.dtype!r}; serving knows {sorted(KNOWN_DTYPES)}")
        return cls(need("kind", str), latent, tuple(shape), (float(lo), float(hi)), classes,
                   conditional, endpoints, manifest)


# -- verification -----------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_export(export_dir: str | Path) -> ModelSpec:
    """Read the manifest and check every file against its sha256; raise ExportRefused if any
    listed file is missing or differs, if a file lies outside the folder, or if a file that a
    runtime would read (ONNX, SavedModel) is not listed at all."""
    root = Path(export_dir).resolve()
    path = root / MANIFEST
    if not path.is_file():
        raise ExportRefused(f"{export_dir}: no {MANIFEST}; not an export folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportRefused(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ExportRefused(f"{path}: manifest has no 'files' table of sha256 digests")
    spec = ModelSpec.from_manifest(manifest, str(export_dir))
    files = manifest["files"]
    for rel, digest in files.items():
        p = (root / rel).resolve()
        if not p.is_relative_to(root):
            raise ExportRefused(f"{export_dir}: manifest lists {rel!r}, which lies outside the folder")
        if not p.is_file():
            raise ExportRefused(f"{export_dir}: {rel} is listed in the manifest but missing")
        if sha256_file(p) != digest:
            raise ExportRefused(f"{export_dir}: {rel} does not match its sha256 in the manifest "
                                "(altered or corrupted); refusing to load this model")
    for ep in spec.endpoints.values():
        if ep.onnx not in files:
            raise ExportRefused(f"{export_dir}: endpoint {ep.name!r} file {ep.onnx} has no sha256 "
                                "in the manifest")
    saved = manifest.get("saved_model", "saved_model")
    for p in sorted((root / saved).rglob("*")) if (root / saved).is_dir() else []:
        rel = str(p.relative_to(root))
        if p.is_file() and rel not in files:
            raise ExportRefused(f"{export_dir}: {rel} is not listed in the manifest; a file the "
                                "exporter did not write is refused")
    return spec


# -- served models ----------------------------------------------------------------------------------
@dataclasses.dataclass
class ServedModel:
    name: str
    spec: ModelSpec
    backend: object  # serving.backends.Backend
    source: str  # folder path or models:/ URI
    export_dir: Path
    manifest_sha256: str

    def describe(self) -> dict:
        s = self.spec
        ops = ["generate", "interpolate", "predict", *[e for e in ("encode", "reconstruct")
                                                       if e in s.endpoints]]
        signatures = ["serving_default"] + sorted({n for ep in s.endpoints.values()
                                                   for n in (ep.name, *ep.aliases)})
        return {
            "name": self.name, "kind": s.kind, "latent_dim": s.latent_dim,
            "image_shape": list(s.image_shape), "value_range": list(s.value_range),
            "num_classes": s.num_classes, "conditional": s.conditional, "operations": ops,
            "signatures": signatures,
            "endpoints": {n: {"inputs": [dataclasses.asdict(i) for i in ep.inputs],
                              "outputs": list(ep.outputs)} for n, ep in s.endpoints.items()},
            "backend": self.backend.name, "source": self.source,
            "source_run_id": s.manifest.get("source_run_id"), "created": s.manifest.get("created"),
            "manifest_sha256": self.manifest_sha256,
            # TensorFlow Serving's model-status shape, for its existing clients.
            "model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}],
        }


def load_export(export_dir: str | Path, name: str, backend: str = "onnx", source: str | None = None,
                **backend_options) -> ServedModel:
    """Verify, then load with the chosen backend (the ONNX bytes are re-hashed as they are
    loaded, so what runs is exactly what was verified)."""
    from serving.backends import make_backend

    if not NAME_PATTERN.match(name):
        raise ExportRefused(f"model name {name!r} is not usable in a URL: use letters, digits, '.', "
                            "'_' and '-' (at most 128, starting with a letter or digit)")
    export_dir = Path(export_dir)
    spec = verify_export(export_dir)
    engine = make_backend(backend, export_dir, spec, **backend_options)
    return ServedModel(name, spec, engine, source or str(export_dir), export_dir,
                       sha256_file(export_dir / MANIFEST))


def discover(models_dir: str | Path) -> list[tuple[str, Path]]:
    """(name, folder) for each sub-folder (or symlink to one) of ``models_dir`` that holds a
    manifest; hidden folders (an exporter's temporary ``.name.tmp-*``) are skipped."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ModelSourceError(f"--models {models_dir}: no such folder")
    found = []
    for p in sorted(models_dir.iterdir()):
        if p.name.startswith(".") or not p.is_dir():
            continue
        if (p / MANIFEST).is_file():
            found.append((p.name, p))
        else:
            log.warning("%s has no %s; skipped (not an export folder)", p, MANIFEST)
    return found


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` → (NAME, ALIAS, None); ``models:/NAME/VERSION`` → (NAME, None, VERSION)."""
    if not uri.startswith("models:/"):
        raise ModelSourceError(f"{uri!r} is not a models:/NAME@ALIAS (or models:/NAME/VERSION) URI")
    rest = urllib.parse.unquote(uri[len("models:/"):]).strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias and "/" not in name:
            return name, alias, None
    elif rest.count("/") == 1:
        name, version = rest.split("/")
        if name and version.isdigit():
            return name, None, version
    raise ModelSourceError(f"{uri!r} is not a models:/NAME@ALIAS (or models:/NAME/VERSION) URI")


def download_registered(uri: str, dst_root: str | Path, tracking_uri: str | None = None) -> tuple[str, Path, str]:
    """Resolve a registry URI to its export folder, downloaded under ``dst_root``.

    Returns (registered name, local folder, a description of the version for logs/metadata).
    The version's ``source`` is the run artifact URI of the export folder (the trainer logs it
    under the artifact path ``export``).
    """
    import mlflow
    from mlflow import MlflowClient

    name, alias, version = parse_model_uri(uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, version))
    except Exception as exc:
        raise ModelSourceError(f"{uri}: the registry at {client._tracking_client.tracking_uri} "
                               f"cannot resolve it ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:300]})") from None
    dst = Path(dst_root) / f"{name}-v{mv.version}"
    dst.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst),
                                                    tracking_uri=tracking_uri)
    except Exception as exc:
        raise ModelSourceError(f"{uri}: version {mv.version} source {mv.source} could not be "
                               f"downloaded ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
    return name, Path(local), f"{uri} (version {mv.version}, run {mv.run_id})"


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
            log.info("serving %s (%s, %s backend)", name, self.models[name].source,
                     self.models[name].backend.name)
        except (ExportRefused, ModelSourceError) as exc:
            self.refused[name] = str(exc)
            log.error("refused model %s: %s", name, exc)


def load_store(models_dir: str | Path | None = None, model_uris: list[str] = (), backend: str = "onnx",
               tracking_uri: str | None = None, cache_dir: str | Path | None = None,
               **backend_options) -> ModelStore:
    """Load every export under ``models_dir`` and every ``models:/`` URI."""
    store = ModelStore()
    if models_dir is not None:
        for name, folder in discover(models_dir):
            store.add(name, lambda f=folder, n=name: load_export(f, n, backend, **backend_options))
    if model_uris:
        cache = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="gen-keras-serve-"))
        for uri in model_uris:
            try:
                name = parse_model_uri(uri)[0]
            except ModelSourceError as exc:
                store.refused[uri] = str(exc)
                continue

            def load(uri=uri):
                registered, folder, described = download_registered(uri, cache, tracking_uri)
                return load_export(folder, registered, backend, source=described, **backend_options)
            store.add(name, load)
    return store
