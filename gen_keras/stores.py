"""Where runs are kept: the ONE rule that turns what a command was given into the tracking store it
uses, the default store, and how long a command waits for a server that does not answer.

Kept apart from ``gen_keras.tracking`` (which writes runs and logs models) so the export reader can
find a store without importing the code that logs to it. Every command resolves its store with
:func:`tracking_uri`; nothing else reads ``$MLFLOW_TRACKING_URI`` or spells the default.
"""
from __future__ import annotations

import os
import socket
import time
import urllib.parse
from pathlib import Path

# How long a command waits for a tracking server that does not answer before it says so.
SERVER_DEADLINE_S = 15.0

# MLflow's HTTP client retries each request with exponential backoff for minutes by default
# (7 retries, factor 2: ~250 s before an error on a dead server). A command must fail fast with a
# clear message, and a training loop must not stall (its sink buffers and retries at each epoch
# end), so: one retry, 1 s backoff, 10 s per request. Set here, where every command's store is
# resolved, so readers (models:/ sources) get the same bound as training and retraining.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in logs


def tracking_uri(*given: str | None, root: str | Path | None = None) -> str:
    """The tracking store a command uses, resolved once: the first non-empty of ``given`` (in
    order: the command line's ``--tracking-uri``, the config's ``tracking.tracking_uri``), else
    ``$MLFLOW_TRACKING_URI``, else the SQLite store ``mlflow.db`` in ``root`` (default
    ``./mlflow`` under the working folder). A SQLite (or file) store is returned with its
    absolute, resolved path, so one store has one spelling (``.../mlflow//mlflow.db`` and
    ``.../mlflow/./mlflow.db`` are one key for the retrain lock). Creates nothing (see
    :func:`ensure_store`)."""
    uri = next((u for u in given if u), None) or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{(Path(root or Path.cwd() / 'mlflow') / 'mlflow.db').resolve()}"
    return normalize(uri)


def default_tracking_uri(root: str | Path | None = None, create: bool = True) -> str:
    """:func:`tracking_uri` with nothing given, its SQLite folder made when ``create`` (kept for
    the benchmarks and tools that call it by this name)."""
    uri = tracking_uri(root=root)
    if create:
        ensure_store(uri)
    return uri


def normalize(uri: str) -> str:
    """One spelling per store: SQLite and file stores by their resolved absolute path (relative
    SQLite paths are relative to the working folder, as SQLAlchemy reads them); a server URL with
    its scheme and host in lower case and without a trailing slash; anything else as given."""
    uri = uri.strip()
    if uri.startswith("sqlite:///"):
        path, sep, query = uri[len("sqlite:///"):].partition("?")
        if path and path != ":memory:":
            return f"sqlite:///{Path(os.path.expanduser(path)).resolve()}{sep}{query}"
        return uri
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(),
                                        parts.path.rstrip("/"), parts.query, parts.fragment))
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path)).resolve().as_uri()
    if not parts.scheme and uri:  # a plain folder: MLflow's file store
        return Path(os.path.expanduser(uri)).resolve().as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` store, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def ensure_store(uri: str) -> None:
    """Make the folder of a local SQLite store (only a command that writes runs calls this) and,
    for a store that does not exist yet, its database from :func:`empty_store_template`."""
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            seed_store(path)


def seed_store(path: Path) -> None:
    """A new SQLite store at ``path`` as a copy of the empty store of this MLflow version: MLflow
    makes a new database by running every schema migration since its first release (~2.4 s of
    CPU on 2 cores, at every new store), the copy takes milliseconds. The copy appears whole or
    not at all and never replaces a file already there (a store another process made meanwhile
    is kept). Should the template be unavailable, nothing is written and MLflow makes the store
    itself, as before."""
    import shutil

    template = empty_store_template()
    if template is None:
        return
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(template, part)
        os.link(part, path)  # fails if the store appeared meanwhile: that one is kept
    except OSError:
        pass
    finally:
        part.unlink(missing_ok=True)


def empty_store_template() -> Path | None:
    """An empty SQLite tracking store of the installed MLflow — its tables at the latest schema
    revision, no experiment yet (MLflow adds the Default experiment, with this store's own
    artifact root, when it first opens the copy) — made once per MLflow version in the
    project's cache (``$GEN_KERAS_CACHE/mlflow_stores``); None if it cannot be made."""
    from gen_keras.files import atomic_write, cache_dir, exclusive_lock

    try:
        import mlflow
        from mlflow.store.db import utils as db_utils

        folder = cache_dir("mlflow_stores")
        template = folder / f"empty-mlflow-{mlflow.__version__}-{db_utils._get_latest_schema_revision()}.db"
        if not template.is_file():
            with exclusive_lock(folder / ".lock", "making the empty MLflow store", wait_s=120):
                if not template.is_file():
                    atomic_write(template, _make_empty_store)
        return template
    except Exception:  # noqa: BLE001 — MLflow's internals moved: MLflow makes each store itself
        return None


def _make_empty_store(path: Path) -> None:
    """MLflow's own schema migrations into the (empty) SQLite file ``path``."""
    from mlflow.store.db import utils as db_utils

    engine = db_utils.create_sqlalchemy_engine(f"sqlite:///{path}")
    try:
        db_utils._initialize_tables(engine)
        db_utils._verify_schema(engine)
    finally:
        engine.dispose()


def require_existing_store(uri: str, deadline_s: float = SERVER_DEADLINE_S) -> None:
    """A read-only command must not create a store and must not hang on one: for
    ``sqlite:///PATH`` the file must exist (MLflow would otherwise create an empty database, even
    in a mistyped folder); a tracking server must answer ``/health`` within ``deadline_s``."""
    from gen_keras.errors import ModelSourceError

    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise ModelSourceError(f"no MLflow tracking store at {path} (from {uri}); train a model "
                               "first, or pass --tracking-uri / MLFLOW_TRACKING_URI for the store "
                               "that holds the run")
    if uri.startswith(("http://", "https://")):
        problem = server_problem(uri, deadline_s)
        if problem:
            raise ModelSourceError(problem)


def server_problem(uri: str, deadline_s: float = SERVER_DEADLINE_S) -> str | None:
    """None when the MLflow server at ``uri`` answers ``GET /health`` within ``deadline_s``; else
    why not, in words that name the server and the bound. Asked the way MLflow's client asks (its
    credentials, TLS settings and headers from the environment). A server that accepts connections
    but does not answer (hung, overloaded, starting) is asked again until the deadline; a refused
    connection or a name that does not resolve is final at once (nothing is there to wait for)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    start = time.monotonic()
    last = "no answer"
    while (left := deadline_s - (time.monotonic() - start)) > 0:
        try:
            response = http_request(get_default_host_creds(uri), "/health", "GET", max_retries=0,
                                    timeout=min(5.0, max(left, 0.1)), raise_on_status=False)
            if response.status_code < 500:  # it answers (a login-protected /health is fine)
                return None
            last = f"HTTP {response.status_code}"
        except Exception as exc:  # noqa: BLE001  (every way a request fails is a reason to report)
            last = _reason(exc)
            if last in ("connection refused", "its host name does not resolve"):
                break  # nothing is there to wait for
        time.sleep(min(1.0, max(0.0, deadline_s - (time.monotonic() - start))))
    return (f"the MLflow tracking server at {uri} did not answer ({last}; a command waits at most "
            f"{deadline_s:.0f} s for it); start it, or pass --tracking-uri / MLFLOW_TRACKING_URI "
            "for a store that is up")


def _reason(exc: BaseException) -> str:
    """Why a request failed, in a few words (MLflow wraps requests wraps urllib3 wraps socket)."""
    text = " ".join(str(e) for e in _chain(exc))
    if any(isinstance(e, ConnectionRefusedError) for e in _chain(exc)) or "Connection refused" in text:
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in _chain(exc)) or "Failed to resolve" in text \
            or "Name or service not known" in text:
        return "its host name does not resolve"
    if "timed out" in text.lower():
        return "no answer"
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None and len(found) < 10:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)
        if not isinstance(exc, BaseException):
            break
    return found


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a local SQLite store, artifacts go to ``mlflow/artifacts`` beside the database."""
    path = sqlite_path(tracking_uri)
    return (path.parent / "artifacts").resolve().as_uri() if path is not None else None
