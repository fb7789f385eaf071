"""Where the latent tools get a model from: an export folder (manifest + ONNX files, run with
onnxruntime), an MLflow run id (its ``export/`` artifact, downloaded and sha256-checked), or a
model in memory. All three look the same to the tools (:class:`LatentModel`):

- ``generate(z, labels=None)`` → images ``[N, H, W, C]`` in ``value_range``;
- ``encode(x, labels=None)`` → latent codes ``[N, latent_dim]``: the posterior mean for a VAE
  (the ``mean`` output of the ``encode`` endpoint), ``z`` for an autoencoder;
- ``latent_dim``, ``image_shape``, ``value_range``, ``num_classes``, ``conditional``, ``has_encoder``.

The artifact path needs no gen_keras model class: a GAN generator exported by any version of
the pipeline works as long as its manifest names a ``generate`` endpoint.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from gen_keras.artifacts import ArtifactIntegrityError


class LatentModel:
    """The interface the latent tools use; see the module docstring."""

    latent_dim: int
    image_shape: tuple[int, int, int]
    value_range: tuple[float, float]
    num_classes: int
    conditional: bool
    has_encoder: bool
    kind: str

    def generate(self, z, labels=None) -> np.ndarray:
        raise NotImplementedError

    def encode(self, x, labels=None) -> np.ndarray:
        raise NotImplementedError

    def check_labels(self, labels, n: int) -> np.ndarray | None:
        """int32 labels ``[n]`` for a conditional model (a single int is repeated), None for
        an unconditional one (labels are ignored); a clear error when missing or unknown."""
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(f"the {self.kind!r} model is class-conditional: give a label "
                             f"(a class in 0..{self.num_classes - 1})")
        values = np.asarray(labels)
        if values.ndim == 0:
            values = np.full((n,), values.item())
        if values.shape != (n,):
            raise ValueError(f"{values.shape[0]} labels for {n} inputs")
        bad = sorted({v for v in values.tolist()
                      if not float(v).is_integer() or not 0 <= v < self.num_classes})
        if bad:
            raise ValueError(f"unknown class(es) {bad[:10]}: the {self.kind!r} model knows "
                             f"classes 0..{self.num_classes - 1}")
        return values.astype(np.int32)

    def require_encoder(self, tool: str) -> None:
        if not self.has_encoder:
            raise ValueError(f"{tool} needs an encoder, and the {self.kind!r} model has none (a "
                             "GAN generator exports only 'generate'); use latent codes from the "
                             "prior instead")

    def as_codes(self, z) -> np.ndarray:
        """``[N, latent_dim]`` float32 (one vector becomes a batch of one)."""
        z = np.asarray(z, np.float32)
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent codes of shape {list(z.shape)}; this model's latent "
                             f"size is {self.latent_dim}")
        return z

    def as_images(self, x) -> np.ndarray:
        """``[N, H, W, C]`` float32 (one image becomes a batch of one)."""
        x = np.asarray(x, np.float32)
        x = x[None] if x.ndim == len(self.image_shape) else x
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images of shape {list(x.shape)}; this model takes "
                             f"{list(self.image_shape)}")
        return x

    def sample_latent(self, n: int, seed: int = 0) -> np.ndarray:
        """Codes from the N(0, I) prior every model here samples from."""
        return np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
class ExportedModel(LatentModel):
    """An export folder run with onnxruntime, one lazily created session per endpoint."""

    def __init__(self, export_dir: str | Path, verify: bool = True, batch_size: int = 500):
        from gen_keras.export import read_manifest

        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(self.export_dir, verify=verify)
        m = self.manifest
        self.kind = str(m.get("kind", "unknown"))
        self.latent_dim = int(m["latent_dim"])
        self.image_shape = tuple(int(d) for d in m["image_shape"])
        self.value_range = tuple(float(v) for v in m["value_range"])
        self.num_classes = int(m.get("num_classes", 0))
        self.conditional = bool(m.get("conditional", False))
        self.endpoints = dict(m["endpoints"])
        self.has_encoder = "encode" in self.endpoints
        self.model_config = dict(m.get("model_config") or {})
        self.source_run_id = m.get("source_run_id")
        self.batch_size = int(batch_size)
        self._sessions: dict = {}
        if "generate" not in self.endpoints:
            raise ArtifactIntegrityError(f"{self.export_dir}: the manifest has no 'generate' "
                                         f"endpoint (endpoints: {sorted(self.endpoints)})")

    def _session(self, endpoint: str):
        if endpoint not in self.endpoints:
            raise ValueError(f"the export {self.export_dir} has no {endpoint!r} endpoint "
                             f"(endpoints: {sorted(self.endpoints)})")
        if endpoint not in self._sessions:
            import onnxruntime as ort

            path = self.export_dir / self.endpoints[endpoint]["onnx"]
            self._sessions[endpoint] = ort.InferenceSession(str(path),
                                                            providers=["CPUExecutionProvider"])
        return self._sessions[endpoint]

    def run(self, endpoint: str, **inputs) -> dict[str, np.ndarray]:
        """Run one endpoint on named inputs (in chunks); outputs by the manifest's names."""
        spec = self.endpoints.get(endpoint)
        sess = self._session(endpoint)
        names = [i["name"] for i in spec["inputs"]]
        missing = [n for n in names if inputs.get(n) is None]
        if missing:
            raise ValueError(f"endpoint {endpoint!r} needs input(s) {missing}")
        feeds = {i["name"]: np.asarray(inputs[i["name"]], dtype=i["dtype"]) for i in spec["inputs"]}
        n = len(next(iter(feeds.values())))
        chunks = [sess.run(None, {k: v[s:s + self.batch_size] for k, v in feeds.items()})
                  for s in range(0, n, self.batch_size)] or [sess.run(None, feeds)]
        return {name: np.concatenate([c[j] for c in chunks]) for j, name in enumerate(spec["outputs"])}

    def generate(self, z, labels=None) -> np.ndarray:
        z = self.as_codes(z)
        return self.run("generate", z=z, label=self.check_labels(labels, len(z)))["image"]

    def encode_all(self, x, labels=None) -> dict[str, np.ndarray]:
        """Every output of the ``encode`` endpoint (``mean``, ``log_var`` or ``z``)."""
        self.require_encoder("encoding")
        x = self.as_images(x)
        return self.run("encode", x=x, label=self.check_labels(labels, len(x)))

    def encode(self, x, labels=None) -> np.ndarray:
        out = self.encode_all(x, labels)
        return out["mean"] if "mean" in out else out[self.endpoints["encode"]["outputs"][0]]

    def reconstruct(self, x, labels=None) -> np.ndarray:
        x = self.as_images(x)
        return self.run("reconstruct", x=x, label=self.check_labels(labels, len(x)))["image"]


class InMemoryModel(LatentModel):
    """A gen_keras model object seen through the :class:`LatentModel` interface."""

    def __init__(self, model):
        from gen_keras.precision import float32_twin

        self.model = model = float32_twin(model)  # the float32 weights, as an export has them
        cfg = model.config
        self.kind = cfg.kind
        self.latent_dim = int(cfg.latent_dim)
        self.image_shape = tuple(int(d) for d in cfg.image_shape)
        self.value_range = tuple(float(v) for v in type(cfg).value_range)
        self.num_classes = int(cfg.num_classes)
        self.conditional = bool(type(cfg).conditional)
        self.has_encoder = hasattr(model, "encode")

    def generate(self, z, labels=None) -> np.ndarray:
        z = self.as_codes(z)
        return np.asarray(self.model.generate(z, self.check_labels(labels, len(z))))

    def encode(self, x, labels=None) -> np.ndarray:
        self.require_encoder("encoding")
        x = self.as_images(x)
        labels = self.check_labels(labels, len(x))
        out = self.model.encode(x, labels) if self.conditional else self.model.encode(x)
        return np.asarray(out[0] if isinstance(out, (tuple, list)) else out)


def as_latent_model(obj) -> LatentModel:
    """A :class:`LatentModel` from an export folder path, a LatentModel, or a gen_keras model."""
    if isinstance(obj, LatentModel):
        return obj
    if isinstance(obj, (str, Path)):
        return ExportedModel(obj)
    if hasattr(obj, "config") and hasattr(obj, "generate"):
        return InMemoryModel(obj)
    raise TypeError(f"cannot use a {type(obj).__name__} as a latent model; pass an export "
                    "folder, an ExportedModel, or a gen_keras model")


# ----------------------------------------------------------------------------------------------
# MLflow runs
# ----------------------------------------------------------------------------------------------
def run_cache_dir() -> Path:
    return Path(os.environ.get("GEN_KERAS_CACHE", Path.home() / ".cache" / "gen_keras")) / "runs"


def download_run_export(run_id: str, tracking_uri: str | None = None,
                        cache_dir: str | Path | None = None) -> Path:
    """The ``export/`` artifact of an MLflow run as a local folder whose sha256s are verified.

    Downloads once into ``cache_dir/<run_id>/export`` (atomically); a cached copy that fails
    its check is downloaded again.
    """
    import mlflow.artifacts
    from mlflow import MlflowClient

    from gen_keras.export import read_manifest
    from gen_keras.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    target = Path(cache_dir or run_cache_dir()) / run_id / "export"
    if target.is_dir():
        try:
            read_manifest(target, verify=True)
            return target
        except ArtifactIntegrityError:
            shutil.rmtree(target, ignore_errors=True)
    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_run(run_id)
    except Exception as exc:
        raise ValueError(f"MLflow run {run_id!r} not found at {uri} "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    names = [a.path for a in client.list_artifacts(run_id)]
    if "export" not in names:
        raise ValueError(f"MLflow run {run_id} has no 'export' artifact (artifacts: {names}); "
                         "it was trained with train.export_at_end=false or did not finish")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".download-{uuid.uuid4().hex[:6]}-"))
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="export",
                                                    dst_path=str(tmp), tracking_uri=uri)
        read_manifest(local, verify=True)
        os.replace(local, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def open_run(run_id: str, tracking_uri: str | None = None,
             cache_dir: str | Path | None = None) -> ExportedModel:
    return ExportedModel(download_run_export(run_id, tracking_uri, cache_dir))


def log_to_run(run_id: str, path: str | Path, tracking_uri: str | None = None,
               artifact_path: str = "latent") -> None:
    """Attach a produced file (a PNG, a CSV) to the run it was made from."""
    from mlflow import MlflowClient

    from gen_keras.tracking import default_tracking_uri

    MlflowClient(tracking_uri=tracking_uri or default_tracking_uri()).log_artifact(
        run_id, str(path), artifact_path)


# ----------------------------------------------------------------------------------------------
# Data for the tools
# ----------------------------------------------------------------------------------------------
def load_images(dataset: str, split: str, image_shape, value_range, limit: int = 0,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images in value_range, int32 labels)`` of one split of a data set string
    (``mnist10k``, ``npz:<path>``, ...), prepared as the training pipeline prepares it.

    ``seed`` is the split seed of sources without their own test split (the training run's
    ``train.seed``, 0 by default), so ``test`` here is the run's test split.
    """
    from gen_keras.config import ConfigError, DataConfig
    from gen_keras.data.pipeline import make_pipeline
    from gen_keras.data.sources import open_source

    if split not in ("train", "test"):
        raise ConfigError(f"split={split!r} is not one of ['train', 'test']")
    splits, _ = open_source(DataConfig(dataset=dataset), seed=seed)
    ds = make_pipeline(splits[split], image_shape=tuple(image_shape), value_range=tuple(value_range),
                       batch_size=1000, training=False, seed=0, cache=False, limit=limit)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def open_model(export: str | Path | None = None, run_id: str | None = None,
               tracking_uri: str | None = None) -> ExportedModel:
    """The model named by exactly one of an export folder or an MLflow run id."""
    if (export is None) == (run_id is None):
        raise ValueError("name the model by exactly one of an export folder or an MLflow run id")
    return ExportedModel(export) if export is not None else open_run(run_id, tracking_uri)
