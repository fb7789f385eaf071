"""Where runs are kept: the default tracking store and the rule that a read-only command never
creates one. Kept apart from ``gen_keras.tracking`` (which writes runs and logs models) so the
export reader can find a store without importing the code that logs to it."""
from __future__ import annotations

import os
from pathlib import Path


def default_tracking_uri(root: str | Path | None = None, create: bool = True) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store ``./mlflow/mlflow.db`` (its folder made
    only when ``create``: a read-only command never makes a store)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path(root or Path.cwd() / "mlflow")
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def require_existing_store(uri: str) -> None:
    """A read-only command must not create a store: for ``sqlite:///PATH`` the file must exist
    (MLflow would otherwise create an empty database, even in a mistyped folder)."""
    from gen_keras.errors import ModelSourceError

    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise ModelSourceError(f"no MLflow tracking store at {path} (from {uri}); train a model "
                                   "first, or pass --tracking-uri / MLFLOW_TRACKING_URI for the store "
                                   "that holds the run")


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a local SQLite store, artifacts go to ``mlflow/artifacts`` beside the database."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "artifacts").resolve().as_uri()
    return None
