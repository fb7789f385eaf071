"""MLflow tracking: where runs go, and a sink that survives a tracking server going away.

Policy when the server is unreachable (documented in the README): training goes on; metrics,
params, tags and artifacts are buffered in memory (and mirrored to ``pending.json`` beside the
checkpoints) and retried at every epoch end. Once the server answers, the buffer is flushed in
order. If it is still down when training ends, the run's outputs stay on disk, the pending
records are saved to ``pending.json``, a warning says so, and the next ``gen-keras train`` of the
same run (or ``gen-keras sync``) delivers them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# (importing gen_keras.stores also bounds MLflow's HTTP retries: a dead server is an error in
# seconds, and the sink below buffers what it could not send)
from gen_keras.stores import default_artifact_location, default_tracking_uri, require_existing_store  # noqa: F401  (re-exported: the store helpers began here)

log = logging.getLogger("gen_keras.tracking")


# The experiment's kind, as MLflow's own "set experiment type" action records it. MLflow 3.17's UI
# uses it to skip its "which kind of experiment?" prompt; WHICH VIEW opens is its sidebar switch
# ("GenAI" / "Model training", remembered per browser, GenAI by default) or ``?workflowType=`` in
# the link -- the tag does not steer that (mlflow/mlflow issue 24498), hence :func:`run_url`.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# Kinds a UI or a client inferred or left open: ours are replaced by the real kind; a kind someone
# chose is kept.
_UNDECIDED_KINDS = ("", "no_inferred_type", "custom_model_development_inferred", "genai_development_inferred")


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, creating it (marked as a model-training experiment) if needed; an
    existing experiment without a kind, or with an inferred one, gets the mark; a kind someone
    chose is kept."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        for key, value in EXPERIMENT_KIND.items():
            if exp.tags.get(key, "") in _UNDECIDED_KINDS:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri),
                                        tags=EXPERIMENT_KIND)
    except Exception:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another process
        if exp is None:
            raise
        return exp.experiment_id


def metric_name(key: str) -> str:
    """A Keras log key as the run's per-epoch metric: ``epoch/<the name Keras prints>``
    (``loss`` → ``epoch/loss``, ``val_loss`` → ``epoch/val_loss``; the validation data is the
    test split). MLflow's UI makes one chart section per prefix and lists the sections
    alphabetically: ``epoch/`` (with the per-epoch image series, ``epoch/samples`` ...) comes
    before the end-of-run figures ``eval/``, ``gate/``, ``test/`` and the GAN health checks
    ``guard/`` (the data set's ``data/``, on folder sources only, comes first)."""
    return f"epoch/{key}"


def run_url(base: str, experiment_id: str | None, run_id: str | None) -> str:
    """The MLflow UI page of a run (or of its experiment), in the UI's "Model training" view:
    MLflow 3.17's UI otherwise opens in the view its sidebar switch last showed (GenAI in a
    fresh browser), whatever the experiment's kind."""
    base = base.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    page = f"/runs/{run_id}" if run_id else ""
    return f"{base}/#/experiments/{experiment_id}{page}?workflowType=machine_learning"


def run_versions() -> dict[str, str]:
    """The versions a run was made with (``version.*`` of the run's record)."""
    import keras
    import mlflow
    import tensorflow as tf

    import gen_keras

    return {"version.gen_keras": gen_keras.__version__, "version.tensorflow": tf.__version__,
            "version.keras": keras.__version__, "version.mlflow": mlflow.__version__,
            "version.python": sys.version.split()[0]}


# Why a run logs NO params: MLflow 3.17's run page prints every param of the run above each
# picture of an image series (mlflow/mlflow issue 23512, a header added in 3.12.0; 3.17's fix is a
# per-chart "Show run parameters" switch, on by default), in a card of fixed height whose picture
# box is a square as wide as that header: 60 params pushed the sample grid out of its card, and
# measured in Chromium one line of two short params still cut off the bottom of a square grid
# (93% shown), eight params 43%; a wide header widens the box and pushes the picture down. So the run's
# whole record -- the resolved config, what the plan derived, the versions -- is the artifact
# config.yaml (read back by logged_config()), and the tags gen_keras.kind / gen_keras.dataset
# are what the runs table can show and search.
RUN_RECORD = "config.yaml"


def run_record(config: dict, derived: dict, versions: dict) -> dict:
    """One run's record, by section: the resolved config (``RunConfig.to_dict()``), then
    ``derived`` (what the plan decided) and ``version`` (``derived.x`` / ``version.x`` keys or
    bare names)."""
    def section(values: dict, name: str) -> dict:
        return {k.removeprefix(f"{name}."): v for k, v in values.items()}
    return {**config, "derived": section(derived, "derived"), "version": section(versions, "version")}


def flat_record(record: dict) -> dict[str, str]:
    """``section.field`` → text, as a run's params used to be (lists and mappings as JSON, the
    rest ``str``)."""
    return {f"{name}.{key}": json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            for name, values in record.items() for key, value in values.items()}


def log_run_record(sink: TrackingSink, record: dict, folder: Path) -> Path:
    """``record`` (see :func:`run_record`) as ``config.yaml``, written into ``folder`` and logged
    at the run's artifact root."""
    import yaml

    from gen_keras.files import atomic_write_text

    path = Path(folder) / RUN_RECORD
    atomic_write_text(path, yaml.safe_dump(record, sort_keys=False))
    sink.log_artifact(path)
    return path


def logged_config(client, run_id: str) -> dict[str, str]:
    """Everything a run recorded about how it was made, as ``section.field`` → text: its
    ``config.yaml`` (see :func:`log_run_record`), over its params (a run logged before
    config.yaml has them all there)."""
    import tempfile

    import yaml
    from mlflow.exceptions import MlflowException

    values = dict(client.get_run(run_id).data.params)
    with tempfile.TemporaryDirectory(prefix="gen_keras_record_") as tmp:
        try:
            local = client.download_artifacts(run_id, RUN_RECORD, tmp)
        except (MlflowException, OSError):  # no such artifact: an older run
            return values
        values.update(flat_record(yaml.safe_load(Path(local).read_text()) or {}))
    return values


@dataclass
class RunContext:
    """Where one run writes, decided once when it starts (``gen_keras.training.trainer.
    run_context``): its tracking store, name, checkpoint folder and output folders; the MLflow
    run id and sink once the run is open."""
    tracking_uri: str  # resolved (gen_keras.stores.tracking_uri); "" on a non-chief worker
    experiment: str
    run_name: str
    outputs_dir: Path
    checkpoint_dir: Path  # <train.checkpoint_dir or outputs/checkpoints>/<run name>
    is_chief: bool = True
    run_id: str | None = None
    sink: "TrackingSink | None" = None
    experiment_id: str | None = None

    @property
    def samples_dir(self) -> Path:
        return self.outputs_dir / "samples" / self.run_name

    @property
    def export_dir(self) -> Path:
        return self.outputs_dir / "exports" / self.run_name


@dataclass
class TrackingSink:
    """Buffered writes to one MLflow run; never raises into the training loop."""
    client: object
    run_id: str
    pending_path: Path | None = None
    pending: list = field(default_factory=list)
    warned: bool = False

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            self.pending.append(("metric", k, float(v), ts, int(step)))
        self.flush()

    def log_params(self, params: dict[str, str]) -> None:
        for k, v in params.items():
            self.pending.append(("param", k, str(v)[:6000]))
        self.flush()

    def set_tag(self, key: str, value: str) -> None:
        self.pending.append(("tag", key, str(value)))
        self.flush()

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.pending.append(("artifact", str(path), artifact_path))
        self.flush()

    def log_mlflow_model(self, export_dir: str | Path, experiment_id: str, step: int) -> None:
        """The export as a logged MLflow Model of the run (pyfunc flavor; see
        :mod:`gen_keras.exported.pyfunc`), its id recorded in the run's tag ``gen_keras.model_id``."""
        self.pending.append(("mlflow_model", str(export_dir), str(experiment_id), int(step)))
        self.flush()

    def log_image(self, path: str | Path, key: str, step: int) -> None:
        """A PNG as a step of the image series ``key`` (the MLflow UI's image view steps through
        them); the PNG file itself is logged with :meth:`log_artifact`."""
        self.pending.append(("image", str(path), key, int(step)))
        self.flush()

    def flush(self) -> bool:
        """Send what is pending, in order; on failure keep the rest and warn once per outage."""
        from mlflow.entities import Metric, Param, RunTag

        while self.pending:
            batch_end = 0
            metrics, params, tags = [], [], []
            for item in self.pending:
                if item[0] in ("artifact", "image", "mlflow_model") or batch_end >= 900:
                    break
                if item[0] == "metric":
                    metrics.append(Metric(item[1], item[2], item[3], item[4]))
                elif item[0] == "param":
                    params.append(Param(item[1], item[2]))
                else:
                    tags.append(RunTag(item[1], item[2]))
                batch_end += 1
            try:
                if batch_end:
                    self.client.log_batch(self.run_id, metrics=metrics, params=params, tags=tags)
                elif self.pending[0][0] == "mlflow_model":
                    from gen_keras.exported.pyfunc import log_model

                    _, path, experiment_id, step = self.pending[0]
                    model_id = log_model(self.client, self.run_id, experiment_id, path, step)
                    self.client.set_tag(self.run_id, "gen_keras.model_id", model_id)
                    batch_end = 1
                elif self.pending[0][0] == "image":
                    _, path, key, step = self.pending[0]
                    from PIL import Image

                    with Image.open(path) as image:
                        self.client.log_image(self.run_id, image.copy(), key=key, step=step)
                    batch_end = 1
                else:
                    _, path, artifact_path = self.pending[0]
                    if Path(path).is_dir():
                        self.client.log_artifacts(self.run_id, path, artifact_path)
                    else:
                        self.client.log_artifact(self.run_id, path, artifact_path)
                    batch_end = 1
            except Exception as exc:  # server down, network error: keep it for later
                if not self.warned:
                    warnings.warn(f"MLflow is unreachable ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:200]}); training goes on and "
                                  f"{len(self.pending)} record(s) are buffered for retry",
                                  RuntimeWarning, stacklevel=2)
                    self.warned = True
                self._save_pending()
                return False
            del self.pending[:batch_end]
        if self.warned:
            log.warning("MLflow is reachable again; buffered records were delivered")
            self.warned = False
        self._save_pending()
        return True

    def _save_pending(self) -> None:
        if self.pending_path is None:
            return
        if self.pending:
            from gen_keras.files import atomic_write_text

            atomic_write_text(self.pending_path, json.dumps(self.pending))
        elif self.pending_path.exists():
            self.pending_path.unlink()

    def load_pending(self) -> None:
        """Re-queue records a previous process could not deliver."""
        if self.pending_path is not None and self.pending_path.exists():
            self.pending = [tuple(x) for x in json.loads(self.pending_path.read_text())] + self.pending


# -- opening a run, and what a run records at its start ------------------------------------------
def open_tracking_run(ctx: RunContext, state: dict | None) -> None:
    """Create the MLflow run (or reopen the unfinished one a checkpoint names) and attach a
    :class:`TrackingSink` to ``ctx``, re-queuing records an earlier process could not deliver.
    A server that does not answer within ``stores.SERVER_DEADLINE_S`` is a ConfigError saying so."""
    from mlflow import MlflowClient

    from gen_keras.errors import ConfigError
    from gen_keras.stores import ensure_store, server_problem

    if ctx.tracking_uri.startswith(("http://", "https://")):
        problem = server_problem(ctx.tracking_uri)
        if problem:
            raise ConfigError(f"{problem}; nothing was trained")
    ensure_store(ctx.tracking_uri)
    client = MlflowClient(tracking_uri=ctx.tracking_uri)
    try:
        exp_id = ctx.experiment_id = get_or_create_experiment(client, ctx.experiment, ctx.tracking_uri)
        if state is not None and state.get("run_id"):
            ctx.run_id = state["run_id"]
            client.update_run(ctx.run_id, status="RUNNING")
        else:
            ctx.run_id = client.create_run(exp_id, run_name=ctx.run_name).info.run_id
    except Exception as exc:
        raise ConfigError(f"cannot reach the MLflow tracking store at {ctx.tracking_uri}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    ctx.sink = TrackingSink(client, ctx.run_id, Path(ctx.checkpoint_dir) / "pending.json")
    ctx.sink.load_pending()


@contextlib.contextmanager
def as_mlflow_default(uri: str):
    """Make ``uri`` MLflow's process-wide tracking store for the block (then restore what was
    there, the environment variable included).

    MLflow 3.17's SQL model registry resolves a ``models:/<model id>`` version source through
    ``MlflowClient()`` -- the DEFAULT store, not the client's (its own TODO in
    ``SqlAlchemyStore.create_model_version``). Without a server that default is
    ``sqlite:///mlflow.db`` in the working folder: registration then fails with "Logged model
    with ID 'm-...' not found" and leaves a stray ``./mlflow.db``."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    saved = tracking_utils._tracking_uri  # None when nothing was set in this process
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)  # (None also clears the variable set_tracking_uri set)
        if saved_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def log_dataset(sink: TrackingSink, info, context: str = "train") -> None:
    """The data set as a run input (never fatal: a dataset record is useful, not essential),
    and the files a folder source skipped."""
    import warnings as _warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            source = resolve_dataset_source(info.source_uri)
        ds = MetaDataset(source=source, name=info.name,
                         digest=f"{info.name}-{info.num_train}-{info.num_test}"[:36])
        sink.client.log_inputs(sink.run_id, datasets=[DatasetInput(
            ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])])
    except Exception as exc:
        log.warning("could not record the dataset input: %s", exc)
    if info.skipped:
        sink.log_metrics({"data/skipped_files": info.skipped}, step=0)
        sink.set_tag("gen_keras.data_skipped_files", info.skipped)
        # a tag, not a param: a run's params are printed above its sample grids in the UI
        sink.set_tag("gen_keras.data_skipped_examples", ", ".join(info.skipped_files[:20]))


def send_missing_epoch(sink: TrackingSink, state: dict, epochs_done: int) -> None:
    """A kill between the checkpoint and the metric upload loses that epoch's points; re-send
    them from the checkpoint state, only if MLflow does not have them (never twice)."""
    logs = (state or {}).get("last_logs") or {}
    if not logs:
        return
    try:
        history = sink.client.get_metric_history(sink.run_id, metric_name(next(iter(logs))))
    except Exception:
        return
    if not any(m.step == epochs_done for m in history):
        sink.log_metrics({metric_name(k): v for k, v in logs.items()}, step=epochs_done)
