"""Saving and loading models: only what the pipeline wrote, checked by sha256, safe_mode on."""
from __future__ import annotations

from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError, ModelSourceError
from gen_keras.exported.manifest import sha256_file
from gen_keras.files import atomic_write, atomic_write_text


def save_model(model, path: str | Path) -> Path:
    """``model.keras`` plus ``model.keras.sha256``, each published atomically (fsynced temporary
    file, rename): a crash leaves the previous pair or the new one, never a torn file."""
    path = Path(path)
    digest = {}

    def write(tmp: Path) -> None:
        model.save(tmp)
        digest["sha256"] = sha256_file(tmp)

    atomic_write(path, write)
    atomic_write_text(path.with_name(path.name + ".sha256"), f"{digest['sha256']}  {path.name}\n")
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
        recorded = sidecar.read_text().split()
        if not recorded:
            raise ArtifactIntegrityError(f"{sidecar}: empty; refusing to load {path.name} without "
                                         "its recorded sha256")
        expected_sha256 = recorded[0]
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(f"{path}: sha256 {actual} does not match the recorded "
                                     f"{expected_sha256}; the file was altered or truncated")
    model_kinds()  # import every model module so deserialization finds the classes
    return keras.saving.load_model(path, safe_mode=True)


def load_model_from_run(run_id: str, tracking_uri: str | None = None):
    """Download ``model/`` from an MLflow run and load it (sha256-checked, safe_mode on)."""
    import tempfile

    import mlflow

    client, uri = _run_client(run_id, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="gen_keras_model_") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model",
                                                        dst_path=tmp, tracking_uri=uri)
        except Exception as exc:
            raise ModelSourceError(f"MLflow run {run_id} in {uri} has no model/model.keras artifact "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); did "
                                   "training finish?") from None
        return load_model(Path(local) / "model.keras")


def run_params(run_id: str, tracking_uri: str | None = None) -> dict[str, str]:
    """How an MLflow run was made, ``section.field`` → text: its ``config.yaml`` (an older run:
    its params; see :func:`gen_keras.tracking.logged_config`)."""
    from gen_keras.tracking import logged_config

    client, _ = _run_client(run_id, tracking_uri)
    return logged_config(client, run_id)


def _run_client(run_id: str, tracking_uri: str | None):
    """A client for the store holding ``run_id``; a clear error naming the store and the cause
    when the run cannot be read (a missing SQLite store is never created)."""
    from gen_keras.exported.sources import RUN_ID, client_for

    if not RUN_ID.match(str(run_id)):
        raise ModelSourceError(f"run id {run_id!r} is not an MLflow run id")
    client, uri = client_for(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception as exc:
        raise ModelSourceError(f"MLflow run {run_id} could not be read from the tracking store {uri} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return client, uri
