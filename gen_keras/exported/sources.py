"""Where an export comes from: a local folder, the MLflow model registry (``models:/NAME@ALIAS``,
``models:/NAME/VERSION``), or a training run (``runs:/RUN_ID``: its ``export/`` artifact).

Downloads land in a cache folder keyed by what they are (``<cache>/models/NAME-vN``,
``<cache>/runs/RUN_ID/export``), written to a temporary folder, verified, then renamed into
place; a cached copy that still verifies is reused, one that does not is fetched again. Nothing
here creates a tracking store: a ``sqlite:///`` URI whose file does not exist is an error naming
the file.
"""
from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path

from gen_keras.errors import ArtifactIntegrityError, ModelSourceError
from gen_keras.files import cache_dir as project_cache

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def resolve(source: str, *, tracking_uri: str | None = None,
            cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """``(local export folder, a description for logs)`` for any source string."""
    if source.startswith("models:/"):
        return download_registered(source, tracking_uri, cache_dir)
    if source.startswith("runs:/"):
        run_id = source[len("runs:/"):].strip("/").removesuffix("/export")
        return download_run_export(run_id, tracking_uri, cache_dir), f"{source} ({tracking_uri})"
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ModelSourceError(f"{source}: no such export folder (or give models:/NAME@ALIAS, "
                               "models:/NAME/VERSION or runs:/RUN_ID)")
    return folder, str(folder)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` → (NAME, ALIAS, None); ``models:/NAME/VERSION`` → (NAME, None, VERSION)."""
    if uri.startswith("models:/"):
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


def client_for(tracking_uri: str | None):
    """An MlflowClient for ``tracking_uri`` (default: the configured store) that never creates
    a store: a missing SQLite file is an error naming it."""
    from mlflow import MlflowClient

    from gen_keras.stores import require_existing_store, tracking_uri as resolve_store

    uri = resolve_store(tracking_uri)
    require_existing_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:1000] if str(exc) else ''}"


def download_registered(uri: str, tracking_uri: str | None = None,
                        cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """Resolve a registry URI to its export folder, downloaded (once) under ``cache_dir``.

    The version's ``source`` is the artifact URI of the export folder (``gen-keras retrain``
    registers the run's ``export`` artifact)."""
    name, alias, version = parse_model_uri(uri)
    client, store = client_for(tracking_uri)
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, version))
    except Exception as exc:
        raise ModelSourceError(f"{uri}: the registry at {store} cannot resolve it ({_why(exc)})") from None

    target = Path(cache_dir or project_cache("models")) / f"{name}-v{mv.version}"

    def fetch(dst: Path) -> Path:
        model_dir = fetch_artifact(mv.source, dst, store)
        check_mlflow_model(model_dir, recorded_digest(mv.source, store), f"{uri} (version {mv.version})")
        return export_folder_of(model_dir)

    download_verified(target, fetch, f"{uri}: version {mv.version} source {mv.source}")
    return target, f"{uri} (version {mv.version}, run {mv.run_id})"


FILES_DIGEST_TAG = "gen_keras.files_sha256"


def files_digest(folder: str | Path) -> str:
    """One sha256 over every file of ``folder`` (each file's relative path and sha256, sorted):
    what the logged model's tag records for its whole MLflow Model, the MLmodel file included."""
    import hashlib

    from gen_keras.files import sha256_file

    folder = Path(folder)
    listing = "".join(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n"
                      for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink())
    return hashlib.sha256(listing.encode()).hexdigest()


def recorded_digest(source: str, tracking_uri: str) -> str | None:
    """The digest recorded (in the tracking store, not beside the files) on the logged model a
    registry version points at; None for a source that is no logged model, or one logged before
    gen-keras recorded it."""
    from mlflow import MlflowClient

    logged = LOGGED_MODEL_URI.match(source)
    if not logged:
        return None
    return MlflowClient(tracking_uri).get_logged_model(logged.group(1)).tags.get(FILES_DIGEST_TAG)


def check_mlflow_model(model_dir: Path, digest: str | None, what: str) -> None:
    """Refuse a downloaded MLflow Model whose files (its MLmodel included) are not exactly the
    ones logged: an edited MLmodel could name another loader (a pickle) for MLflow's own
    ``mlflow.pyfunc.load_model``."""
    if digest is not None and files_digest(model_dir) != digest:
        raise ArtifactIntegrityError(
            f"{what}: the MLflow Model's files (MLmodel included) differ from the ones logged (their digest "
            f"is recorded on the logged model, tag {FILES_DIGEST_TAG}); it was altered in the artifact store "
            "after logging — refusing to load it (see docs/mlflow.md, 'Trust')")


def download_run_export(run_id: str, tracking_uri: str | None = None,
                        cache_dir: str | Path | None = None) -> Path:
    """The ``export/`` artifact of an MLflow run as a verified local folder
    (``<cache>/runs/<run_id>/export``, downloaded once)."""
    if not RUN_ID.match(str(run_id)):
        raise ModelSourceError(f"run id {run_id!r} is not an MLflow run id (letters, digits, '-' "
                               "and '_' only)")
    client, store = client_for(tracking_uri)
    try:
        client.get_run(run_id)
    except Exception as exc:
        raise ModelSourceError(f"MLflow run {run_id!r} could not be read from {store} ({_why(exc)})") from None
    names = [a.path for a in client.list_artifacts(run_id)]
    if "export" not in names:
        raise ModelSourceError(f"MLflow run {run_id} has no 'export' artifact (artifacts: {names}); "
                               "it was trained with train.export_at_end=false or did not finish")
    target = Path(cache_dir or project_cache("runs")) / run_id / "export"
    download_verified(target, lambda dst: fetch_artifact(f"runs:/{run_id}/export", dst, store), f"run {run_id}")
    return target


LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")


def fetch_artifact(artifact_uri: str, dst: Path, tracking_uri: str) -> Path:
    """Download ``artifact_uri`` from the store at ``tracking_uri``. A logged model
    (``models:/m-<id>``, what registry versions point at) is looked up in that store explicitly:
    MLflow resolves such URIs against its process-wide tracking URI, which may be another store."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    logged = LOGGED_MODEL_URI.match(artifact_uri)
    if logged:
        artifact_uri = MlflowClient(tracking_uri).get_logged_model(logged.group(1)).artifact_location
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst),
                                                    tracking_uri=tracking_uri))


def download_verified(target: Path, fetch, what: str) -> None:
    """Make ``target`` a verified export folder: keep a copy that verifies, else call
    ``fetch(tmp)`` (which returns the downloaded folder) into a temporary folder beside it,
    verify, and rename into place. The final name never holds a half-written folder."""
    from gen_keras.exported.manifest import verify_export
    from gen_keras.files import publish_folder, temporary_folder

    if target.is_dir():
        try:
            verify_export(target)
            return
        except ArtifactIntegrityError:
            shutil.rmtree(target, ignore_errors=True)
    tmp = temporary_folder(target)
    try:
        try:
            local = fetch(tmp)
        except ArtifactIntegrityError:
            raise
        except Exception as exc:
            raise ModelSourceError(f"{what} could not be downloaded ({_why(exc)})") from None
        verify_export(local)
        publish_folder(local, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_folder_of(model_dir: str | Path) -> Path:
    """The export folder inside a downloaded MLflow Model (its pyfunc ``data``), or the folder
    itself when it is a plain export."""
    import yaml

    model_dir = Path(model_dir)
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return model_dir
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
    if flavor.get("loader_module") != "gen_keras.exported.pyfunc" or not flavor.get("data"):
        raise ModelSourceError(f"{model_dir} is an MLflow Model, but not one gen-keras wrote (no "
                               "gen_keras.exported.pyfunc flavor)")
    return model_dir / flavor["data"]
