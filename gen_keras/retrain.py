"""Scheduled retraining with a quality gate and the MLflow Model Registry.

One job, run on a schedule for a registered model name::

    train a challenger (or resume the interrupted attempt of this schedule slot)
      → score it on the fixed test split (gen_keras.eval.gate_score; lower is better)
      → register it as a new version, alias ``challenger``
      → compare with the ``champion`` under the same evaluator, sample count and seed
      → move ``champion`` only when the challenger is better by ``margin``
      → tag the version with the decision, both scores and the reason
      → publish the champion's export into the serving folder atomically.

The attempt of a slot is the MLflow run ``<model name>-<slot>`` (the slot defaults to today's
UTC date), so running the same command again after a crash resumes that attempt: an unfinished
training resumes from its epoch checkpoint, a finished one is not retrained, a registered
version is not registered twice, a version already gated is not gated twice.

Exit codes (``RetrainResult.exit_code`` / ``gen-keras retrain``): 0 promoted, 3 kept the
champion, 1 failed (nothing promoted; the champion and the serving folder are untouched),
2 bad config, 4 another retrain of the same model name holds the lock (nothing done).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from gen_keras.config import RunConfig
from gen_keras.errors import ConfigError, GenKerasError

log = logging.getLogger("gen_keras.retrain")

EXIT_PROMOTED, EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_KEPT, EXIT_BUSY = 0, 1, 2, 3, 4
CHAMPION, CHALLENGER = "champion", "challenger"
TAG = "gate."  # prefix of the decision tags on model versions and runs
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class RetrainError(GenKerasError, RuntimeError):
    """The job failed; nothing was promoted and the served champion is unchanged."""


class RetrainBusy(RetrainError):
    """Another retrain of the same model name holds the lock."""

    exit_code = EXIT_BUSY


@dataclasses.dataclass
class GateSpec:
    """How challenger and champion are compared: same metric, sample count and seed."""
    metric: str
    num_samples: int = 1000
    seed: int = 0
    margin: float = 0.0  # promote only when challenger < champion - margin (metric units)


@dataclasses.dataclass
class RetrainResult:
    model_name: str
    run_name: str
    run_id: str
    version: str  # the challenger's model version
    decision: str  # promoted | kept
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None  # None when there was no champion
    champion_version: str  # the champion after the job
    served_path: Path | None

    @property
    def exit_code(self) -> int:
        return EXIT_PROMOTED if self.decision == "promoted" else EXIT_KEPT


# ----------------------------------------------------------------------------------------------
# Small pure pieces
# ----------------------------------------------------------------------------------------------
def default_slot(now: _dt.datetime | None = None) -> str:
    """Today's date in UTC: one attempt per model name per day."""
    return (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d")


def slot_run_name(model_name: str, slot: str) -> str:
    """The MLflow run name (and checkpoint folder) of one scheduled attempt."""
    check_name(model_name, "--model-name")
    check_name(slot, "--slot")
    return f"{model_name}-{slot}"


def check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{what}={value!r} must be 1-100 characters of letters, digits, '_', "
                          "'.', '-', starting with a letter or digit (it names files and runs)")


def decide(challenger: float, champion: float | None, margin: float) -> tuple[str, str]:
    """``("promoted" | "kept", reason)``; scores are lower-is-better.

    The challenger is promoted when there is no champion, or when
    ``challenger < champion - margin``; a tie (at the margin) keeps the champion. A non-finite
    challenger score is an error upstream (:func:`gate_score` refuses it).
    """
    if champion is None:
        return "promoted", "no champion yet"
    if not math.isfinite(champion):
        return "promoted", f"champion score {champion} is not finite"
    if challenger < champion - margin:
        return "promoted", (f"challenger {challenger:.6g} < champion {champion:.6g} - margin "
                            f"{margin:g}")
    return "kept", f"challenger {challenger:.6g} >= champion {champion:.6g} - margin {margin:g}"


def resolve_metric(model_config, metric: str | None) -> str:
    """The gate metric: as asked, else NLL for the VAE family (they have a likelihood) and FID
    for the other generators; a metric the kind cannot be scored by is a ConfigError."""
    from gen_keras.eval import GATE_METRICS, is_vae_family
    from gen_keras.models import model_class

    vae = is_vae_family(model_class(model_config.kind))
    metric = metric or ("nll" if vae else "fid")
    if metric not in GATE_METRICS:
        raise ConfigError(f"--metric={metric!r} is not one of {list(GATE_METRICS)}")
    if metric == "nll" and not vae:
        raise ConfigError(f"--metric=nll needs a VAE-family model; model.kind="
                          f"{model_config.kind!r} has no likelihood (use fid or kid)")
    return metric


def evaluator_fingerprint(run_config: RunConfig, gate: GateSpec) -> str:
    """What makes two gate scores comparable: metric, sample count, seed, the test split, the
    image shape, the evaluation code itself (every file of ``gen_keras.eval``) and, for FID/KID,
    the sha256 of the evaluator network the features come from."""
    code = hashlib.sha256()
    try:
        import gen_keras.eval as ev

        root = Path(ev.__file__).parent
        for p in sorted(root.rglob("*.py")):
            code.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
        code.update(str(getattr(ev, "EVALUATOR_VERSION", "")).encode())
    except ImportError:
        pass
    d = run_config.data
    ident = {"metric": gate.metric, "num_samples": gate.num_samples, "seed": gate.seed,
             "dataset": d.dataset, "limit_test": d.limit_test, "test_fraction": d.test_fraction,
             "split_seed": run_config.train.seed, "image_shape": list(run_config.model.image_shape),
             "eval_code": code.hexdigest()}
    if gate.metric in ("fid", "kid"):
        from gen_keras.eval.evaluator import get_evaluator

        ident["evaluator_sha256"] = get_evaluator(run_config).info.get("sha256")
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def gate_score(model, run_config: RunConfig, gate: GateSpec) -> float:
    """The gate metric, looked up by name in ``gen_keras.eval`` (lower is better)."""
    try:
        import gen_keras.eval as ev
    except ImportError as exc:
        raise RetrainError(f"the quality gate needs gen_keras.eval.gate_score, which cannot be "
                           f"imported ({exc})") from None
    scorer = getattr(ev, "gate_score", None)
    if scorer is None:
        raise RetrainError("gen_keras.eval has no gate_score(model, run_config, metric, "
                           "num_samples, seed); the quality gate cannot score models")
    try:
        value = float(scorer(model, run_config, gate.metric, gate.num_samples, gate.seed))
    except ValueError as exc:  # e.g. nll asked of a champion that is a GAN
        raise RetrainError(f"the gate cannot score a {model.config.kind!r} model with "
                           f"{gate.metric}: {exc}") from None
    if not math.isfinite(value):
        raise RetrainError(f"the gate metric {gate.metric} of the model is {value}; a model "
                           "without a finite score is never registered as better")
    return value


# ----------------------------------------------------------------------------------------------
# The lock: one job per model name at a time
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def job_lock(model_name: str, tracking_uri: str | None = None, wait_s: float = 0.0):
    """An exclusive lock for the whole job, keyed on what jobs of one model share — the
    registry (tracking store) and the model name — never on a serving folder or the working
    directory: two jobs for one model conflict wherever they were started. The lock file lives
    in ``$GEN_KERAS_CACHE/locks``; the kernel drops it when the holder dies (even by SIGKILL).
    ``flock`` holds on one machine; jobs on several machines sharing one registry are also caught
    by the champion check-before-set below. ``tracking_uri`` is resolved (and spelled one way)
    by :func:`gen_keras.stores.tracking_uri`, so two spellings of one store are one lock."""
    from gen_keras.files import LockBusy, exclusive_lock
    from gen_keras.stores import tracking_uri as resolve_store

    uri = resolve_store(tracking_uri)
    path = job_lock_path(model_name, uri)
    try:
        with exclusive_lock(path, f"a retrain of {model_name!r} (registry {uri})", wait_s):
            yield path
    except LockBusy as exc:
        raise RetrainBusy(str(exc)) from None


def job_lock_path(model_name: str, tracking_uri: str) -> Path:
    """``$GEN_KERAS_CACHE/locks/retrain-<store hash>-<model name>.lock``, the hash of the
    store's one spelling (:func:`gen_keras.stores.normalize`)."""
    from gen_keras.files import cache_dir
    from gen_keras.stores import normalize

    key = hashlib.sha256(normalize(tracking_uri).encode()).hexdigest()[:12]
    return cache_dir("locks", f"retrain-{key}-{model_name}.lock")


# ----------------------------------------------------------------------------------------------
# Registry helpers
# ----------------------------------------------------------------------------------------------
def _missing(exc) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower() \
        or "does not exist" in str(exc).lower()


def version_by_alias(client, name: str, alias: str):
    """The model version an alias points to, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _missing(exc) or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE":
            return None
        raise


def ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if not _missing(exc):
            raise
    try:
        client.create_registered_model(
            name, description="Generator versions gated by `gen-keras retrain`; the alias "
                              "`champion` is the one served.")
    except MlflowException as exc:  # created meanwhile by another job
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise


def register_run(client, name: str, run_id: str):
    """The model version of ``run_id`` (created once: a re-run of the slot finds it)."""
    from gen_keras.tracking import as_mlflow_default

    ensure_registered_model(client, name)
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        return sorted(existing, key=lambda v: int(_ver(v)))[0]
    run = client.get_run(run_id)
    model_id = run.data.tags.get("gen_keras.model_id")
    if not model_id:
        raise RetrainError(f"run {run_id} has no logged MLflow Model (tag gen_keras.model_id): the "
                           "export never reached MLflow; run `gen-keras sync` for the run, then the "
                           "same retrain command again")
    # The version is the MLflow Model (pyfunc flavor over the export), so mlflow.pyfunc,
    # `mlflow models serve` and the registry's schema view work on it.
    with as_mlflow_default(client.tracking_uri):  # where MLflow resolves the source (see there)
        return client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id,
                                           model_id=model_id, description=f"run {run.info.run_name}")


def _ver(model_version) -> str:
    """A version number as a string (MLflow returns int or str depending on the store)."""
    return str(model_version.version)


def _float_tag(tags: dict, key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------
# Publishing the champion for serving
# ----------------------------------------------------------------------------------------------
def publish_champion(client, model_name: str, version, serve_dir: str | Path, *,
                     tracking_uri: str | None = None, keep: int = 3,
                     _fail_after: str | None = None) -> Path:
    """Make ``<serve_dir>/<model name>`` the export of ``version``, atomically.

    The export is downloaded from the version's source into a temporary folder under
    ``<serve_dir>/.versions/``, every file is checked against the manifest's sha256, the folder is
    renamed to ``<model name>-v<N>``, and only then a new symlink replaces ``<serve_dir>/<model
    name>`` with ``os.replace`` (atomic on POSIX). A failure at any point before that leaves the
    previous export serving, untouched. The last ``keep`` version folders are kept for rollback.
    """
    from gen_keras.exported.sources import download_verified, export_folder_of, fetch_artifact
    from gen_keras.files import fsync_dir

    serve_dir = Path(serve_dir)
    versions = serve_dir / ".versions"
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / f"{model_name}-v{_ver(version)}"
    link = serve_dir / model_name

    def fetch(dst: Path) -> Path:
        fetched = fetch_artifact(version.source, dst, tracking_uri)
        if _fail_after == "download":  # fault injection for tests: a failure half way
            raise OSError("planted failure after the download (test fault injection)")
        return export_folder_of(fetched)  # the export inside the version's MLflow Model

    try:  # a verified copy is kept; an absent or damaged one is fetched again
        download_verified(final, fetch, f"{model_name} v{_ver(version)} from {version.source}")
    except Exception as exc:
        raise RetrainError(f"could not publish {model_name} v{_ver(version)} into "
                           f"{serve_dir}: {type(exc).__name__}: {exc}; the previous export "
                           "still serves") from exc
    if link.exists() and not link.is_symlink():
        # A plain folder from an older layout: move it into .versions so the swap can be atomic.
        os.replace(link, versions / f"{model_name}-legacy-{uuid.uuid4().hex[:8]}")
    new_link = serve_dir / f".{model_name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(Path(".versions") / final.name, new_link)
    os.replace(new_link, link)
    fsync_dir(serve_dir)
    _prune(versions, model_name, keep, current=final.name)
    return link


def served_version(serve_dir: str | Path, model_name: str) -> str | None:
    """The version number ``<serve_dir>/<model name>`` points to, or None."""
    link = Path(serve_dir) / model_name
    if not link.is_symlink():
        return None
    m = re.search(r"-v(\d+)$", os.readlink(link))
    return m.group(1) if m else None


def _prune(versions: Path, model_name: str, keep: int, current: str) -> None:
    pattern = re.compile(rf"^{re.escape(model_name)}-v(\d+)$")
    found = sorted((int(m.group(1)), p) for p in versions.iterdir()
                   if (m := pattern.match(p.name)) and p.name != current)
    for _, p in found[:max(0, len(found) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------
def retrain(run_config: RunConfig, model_name: str, *, slot: str | None = None,
            margin: float = 0.0, metric: str | None = None, num_samples: int = 1000,
            seed: int = 0, tracking_uri: str | None = None,
            serve_dir: str | Path = "outputs/serving", lock_wait_s: float = 0.0,
            lock: bool = True, verbose: int | None = None,
            notify_pid_file: str | Path | None = None) -> RetrainResult:
    """Run one scheduled retrain of ``model_name``; see the module docstring.

    ``lock=False`` when the caller already holds :func:`job_lock` (the CLI takes it before
    anything heavy is imported, so a refused job costs nothing). ``notify_pid_file``: a running
    ``gen-keras serve --pid-file`` to send SIGHUP when the served version changes.
    """
    from mlflow import MlflowClient

    from gen_keras.stores import tracking_uri as resolve_store

    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"--margin={margin!r} must be a finite number >= 0 (metric units)")
    if num_samples <= 0:
        raise ConfigError(f"--num-samples={num_samples} must be > 0")
    slot = slot or default_slot()
    run_name = slot_run_name(model_name, slot)
    cfg = dataclasses.replace(
        run_config,
        train=dataclasses.replace(run_config.train, export_at_end=True),  # the registry needs it
        tracking=dataclasses.replace(run_config.tracking, run_name=run_name)).validate()
    gate = GateSpec(resolve_metric(cfg.model, metric), num_samples, seed, float(margin))
    uri = resolve_store(tracking_uri, cfg.tracking.tracking_uri)
    serve_dir = Path(serve_dir).resolve()

    with job_lock(model_name, uri, lock_wait_s) if lock else contextlib.nullcontext():
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        _check_reachable(client, uri)
        started = time.time()
        run_id, model = _train_or_resume(cfg, uri, verbose)
        log.info("challenger %s ready in %.0f s", run_name, time.time() - started)
        version = register_run(client, model_name, run_id)
        tags = client.get_model_version(model_name, _ver(version)).tags
        champion = version_by_alias(client, model_name, CHAMPION)
        decided = tags.get(TAG + "decision")
        if decided == "promoting" and champion is not None and _ver(champion) == _ver(version):
            # A crash between moving the alias and the final tag: the promotion happened.
            client.set_model_version_tag(model_name, _ver(version), TAG + "decision", "promoted")
            decided = tags[TAG + "decision"] = "promoted"
        if decided in ("promoted", "kept"):  # this slot was gated before: never re-decide it
            result = _recorded_result(model_name, cfg, run_id, version, tags, champion)
            log.info("slot %s was already gated: %s", run_name, result.decision)
        else:
            client.set_registered_model_alias(model_name, CHALLENGER, _ver(version))
            started = time.time()
            result = _gate(client, cfg, gate, model_name, run_id, version, model, champion, uri)
            log.info("gate (%s, %d samples) decided %r in %.0f s", gate.metric, gate.num_samples,
                     result.decision, time.time() - started)
        champion = version_by_alias(client, model_name, CHAMPION)
        if champion is None:  # only if someone removed the alias by hand
            raise RetrainError(f"{model_name!r} has no 'champion' alias; nothing to serve")
        before = served_version(serve_dir, model_name)
        result.served_path = publish_champion(client, model_name, champion, serve_dir,
                                              tracking_uri=uri)
        if notify_pid_file and served_version(serve_dir, model_name) != before:
            notify_server(notify_pid_file)
    _tag_project_run(client, result)
    return result


def notify_server(pid_file: str | Path) -> bool:
    """Send SIGHUP to the ``gen-keras serve`` whose pid ``pid_file`` holds, so it loads the new
    champion now; a missing or stale pid file is a warning (the server loads it at its next
    start or SIGHUP), never a failed job. Returns whether a server was told."""
    import signal

    try:
        pid = int(Path(pid_file).read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError) as exc:
        log.warning("could not notify the server through %s (%s); it serves the new champion after "
                    "its next SIGHUP or restart", pid_file, exc)
        return False
    log.info("sent SIGHUP to the server (pid %d) to load the new champion", pid)
    return True


def _tag_project_run(client, result: RetrainResult) -> None:
    """Under ``mlflow run`` (MLFLOW_RUN_ID set), record the outcome on the project's own run."""
    project_run = os.environ.get("MLFLOW_RUN_ID")
    if not project_run or project_run == result.run_id:
        return
    try:
        for key, value in {"gen_keras.retrain_run_id": result.run_id,
                           "gen_keras.model_version": result.version,
                           TAG + "decision": result.decision, TAG + "reason": result.reason}.items():
            client.set_tag(project_run, key, str(value))
    except Exception as exc:  # the job's outcome is already on the model version
        log.warning("could not tag the MLflow Project run %s: %s", project_run, exc)


def _check_reachable(client, uri: str) -> None:
    from gen_keras.stores import ensure_store, server_problem

    problem = server_problem(uri) if uri.startswith(("http://", "https://")) else None
    if problem:
        raise RetrainError(f"{problem}; nothing was trained; run the same command when it is back")
    ensure_store(uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:
        raise RetrainError(f"the MLflow tracking server at {uri} is unreachable "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); nothing "
                           "was trained; run the same command when it is back") from None


def _train_or_resume(cfg: RunConfig, uri: str, verbose):
    """Train the slot's challenger, resume it, or (training already finished) load it: the
    trainer decides which from the slot run's checkpoint, with the one plan it resolves."""
    from gen_keras.sync import PENDING, sync_pending
    from gen_keras.training import train

    try:
        result = train(cfg, tracking_uri=uri, verbose=verbose, finished="load")
    except ConfigError:
        raise
    except Exception as exc:
        raise RetrainError(f"training the challenger failed: {type(exc).__name__}: {exc}; the last "
                           "good checkpoint is kept (the same command resumes from it); the "
                           "champion is unchanged") from exc
    ckpt = result.checkpoint_dir
    if (ckpt / PENDING).exists():
        synced = sync_pending(ckpt, uri)
        if synced.remaining:
            raise RetrainError(f"MLflow did not receive {synced.remaining} record(s) of run "
                               f"{result.run_id} (the model is saved; they are kept in "
                               f"{ckpt / PENDING}); run the same command again when the tracking "
                               "server is back")
    return result.run_id, result.model


def _gate(client, cfg, gate: GateSpec, name: str, run_id: str, version, model, champion, uri):
    challenger_score = gate_score(model, cfg, gate)
    fingerprint = evaluator_fingerprint(cfg, gate)  # after scoring: FID's evaluator exists now
    champion_score, source = None, "none"
    if champion is not None and _ver(champion) != _ver(version):
        champion_score, source = _champion_score(client, cfg, gate, champion, fingerprint, uri)
    decision, reason = decide(challenger_score, champion_score, gate.margin)
    tags = {"decision": decision, "reason": reason, "metric": gate.metric,
            "num_samples": gate.num_samples, "seed": gate.seed, "margin": gate.margin,
            "evaluator": fingerprint, "challenger_score": challenger_score,
            "champion_score": "none" if champion_score is None else champion_score,
            "champion_version": _ver(champion) if champion is not None else "none",
            "champion_score_source": source,
            "decided_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    # A promotion is written in three steps so that a crash anywhere is resumable: "promoting"
    # (tags), the alias, then "promoted"; a re-run finishes or redoes whatever is missing.
    tags["decision"] = "promoting" if decision == "promoted" else decision
    for key, value in tags.items():
        client.set_model_version_tag(name, _ver(version), TAG + key, str(value))
        client.set_tag(run_id, TAG + key, str(value))
    client.log_metric(run_id, f"gate/{gate.metric}", challenger_score)
    if decision == "promoted":
        # Check-before-set: the lock serializes jobs on this machine; a job elsewhere that moved
        # the champion while this one was scoring makes this decision stale.
        now = version_by_alias(client, name, CHAMPION)
        if (_ver(now) if now else None) != (_ver(champion) if champion else None):
            client.set_model_version_tag(name, _ver(version), TAG + "decision", "stale")
            raise RetrainError(f"the champion of {name!r} moved to v{_ver(now)} while this job "
                               f"was gating v{_ver(version)}; nothing promoted, re-run to gate "
                               "against the new champion")
        client.set_registered_model_alias(name, CHAMPION, _ver(version))
        client.set_model_version_tag(name, _ver(version), TAG + "decision", "promoted")
        client.set_tag(run_id, TAG + "decision", "promoted")
    return RetrainResult(name, cfg.tracking.run_name, run_id, _ver(version), decision, reason,
                         gate.metric, challenger_score, champion_score,
                         _ver(version) if decision == "promoted" else _ver(champion), None)


def _champion_score(client, cfg, gate, champion, fingerprint: str, uri: str):
    """The champion's score under THIS evaluator: its recorded score when the evaluator
    fingerprint (metric, samples, seed, test split, eval code) matches, else re-scored from its
    sha256-checked model artifact."""
    from mlflow.artifacts import download_artifacts

    from gen_keras.artifacts import load_model

    tags = champion.tags or {}
    recorded = _float_tag(tags, TAG + "challenger_score")
    if recorded is not None and tags.get(TAG + "evaluator") == fingerprint:
        return recorded, "recorded"
    with tempfile.TemporaryDirectory(prefix="gen-keras-champion-") as tmp:
        folder = download_artifacts(run_id=champion.run_id, artifact_path="model", dst_path=tmp,
                                    tracking_uri=uri)
        model = load_model(Path(folder) / "model.keras")
        if tuple(model.config.image_shape) != tuple(cfg.model.image_shape):
            raise RetrainError(f"champion v{_ver(champion)} makes {list(model.config.image_shape)} "
                               f"images, the challenger {list(cfg.model.image_shape)}: their scores "
                               "are not comparable")
        score = gate_score(model, dataclasses.replace(cfg, model=model.config), gate)
    return score, "re-scored"


def _recorded_result(name, cfg, run_id, version, tags, champion) -> RetrainResult:
    return RetrainResult(name, cfg.tracking.run_name, run_id, _ver(version),
                         tags[TAG + "decision"], tags.get(TAG + "reason", ""),
                         tags.get(TAG + "metric", ""), _float_tag(tags, TAG + "challenger_score"),
                         _float_tag(tags, TAG + "champion_score"),
                         _ver(champion) if champion else _ver(version), None)
