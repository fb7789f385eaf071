"""Saving and loading models: only what the pipeline wrote, checked by sha256, safe_mode on."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ArtifactIntegrityError(RuntimeError):
    """A model or export file is missing, was not written by this pipeline, or was altered."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model, path: str | Path) -> Path:
    """``model.keras`` plus ``model.keras.sha256``, each written to a temp file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.tmp.keras"
    model.save(tmp)
    digest = sha256_file(tmp)
    os.replace(tmp, path)
    atomic_write_bytes(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())
    return path


def load_model(path: str | Path, expected_sha256: str | None = None):
    """Load a ``.keras`` model the pipeline saved: the sha256 must match its recorded digest."""
    import keras

    import gen_keras.models  # noqa: F401  (registers the model classes)
    from gen_keras.models.registry import model_kinds

    path = Path(path)
    if not path.is_file():
        raise ArtifactIntegrityError(f"model file not found: {path}")
    if expected_sha256 is None:
        sidecar = path.with_name(path.name + ".sha256")
        if not sidecar.is_file():
            raise ArtifactIntegrityError(f"{path}: no {sidecar.name} beside it; refusing to load a "
                                         "model file this pipeline did not write")
        expected_sha256 = sidecar.read_text().split()[0]
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(f"{path}: sha256 {actual} does not match the recorded "
                                     f"{expected_sha256}; the file was altered or truncated")
    model_kinds()  # import every model module so deserialization finds the classes
    return keras.saving.load_model(path, safe_mode=True)


def load_model_from_run(run_id: str, tracking_uri: str | None = None, dst: str | Path | None = None):
    """Download ``model/`` from an MLflow run and load it (sha256-checked, safe_mode on)."""
    import mlflow

    from gen_keras.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                    dst_path=str(dst) if dst else None,
                                                    tracking_uri=uri)
    except Exception as exc:
        raise ArtifactIntegrityError(f"run {run_id} at {uri}: cannot download its model "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return load_model(Path(local) / "model.keras")
