"""The one training path every model rides, step by step:

    strategy → data → the run (its store, name and checkpoint folder, decided once: the run
    context) → plan (the config resolved once for this machine, strategy and checkpoint) →
    tracking run → model (built and compiled in the strategy scope, restored from the last
    checkpoint) → fit with callbacks → evaluate (on the run's own test split) → save → export →
    final state,

tracked in MLflow and resumable after a kill. Each step is one function below, in that order;
side effects during training live in callbacks (``callbacks.py``, ``guards.py``,
``checkpoint.py``), never in a ``train_step``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import sys
import time
from pathlib import Path

from gen_keras.config import RunConfig
from gen_keras.errors import ConfigError
from gen_keras.plan import RunPlan

log = logging.getLogger("gen_keras.training")


@dataclasses.dataclass
class TrainResult:
    run_id: str | None
    run_name: str
    model: object
    history: dict
    model_path: Path | None
    export_dir: Path | None
    samples_dir: Path
    final_metrics: dict
    minutes: float
    tracking_uri: str = ""
    experiment_id: str | None = None
    checkpoint_dir: Path | None = None
    logged_metrics: dict = dataclasses.field(default_factory=dict)  # the end-of-run figures, by
    # the names MLflow stores them under (test/..., eval/...)


def train(run_config: RunConfig, tracking_uri: str | None = None, verbose: int | None = None,
          callbacks=(), *, resume: str | bool | None = None, finished: str = "refuse",
          announce=None) -> TrainResult:
    """Train the configured model end to end (see the module docstring). ``callbacks``: extra
    Keras callbacks after the run's own (e.g. bench/quality.py's wall-clock quality curve).

    Which run: ``tracking.run_name`` when set; else an unfinished run of this same config that a
    kill or an interrupt stopped is resumed (``resume=None``, the default: the same command
    resumes), ``resume=False`` always starts a new dated run, ``resume=True`` requires one to
    resume, ``resume="NAME"`` resumes the run NAME (see :mod:`gen_keras.training.resume`).
    ``finished="load"``: a run that already finished is loaded and returned, not refused (the
    retrain job's re-run of a slot). ``announce(ctx, state)``: called once the run is open (the
    CLI prints the run and how to resume it)."""
    import keras

    from gen_keras import distribute
    from gen_keras.data import make_datasets

    started = time.time()
    cfg = run_config.validate()
    distribute.configure_threads(cfg.train.intra_op_threads, cfg.train.inter_op_threads)
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = distribute.make_strategy(cfg.distribute)
    layout = distribute.layout(strategy, cfg.train.steps_per_execution)
    data = make_datasets(cfg)  # a bad data config fails here, before any model is built
    cfg = fill_from_data(cfg, data)
    ctx = run_context(cfg, layout, tracking_uri, resume)
    with checkpoint_lock(ctx):  # one process per checkpoint folder
        plan, state = start_run(cfg, layout, ctx, finished)
        if state is not None and state.get("finished"):
            return finished_result(ctx, state, started)
        if announce is not None:
            announce(ctx, state)
        try:
            model, checkpoint, initial_epoch = build_and_restore(plan, strategy, ctx, state)
            log_run_start(ctx.sink, plan, model, data.info, state, initial_epoch, ctx.checkpoint_dir)
            history = fit(model, data, plan, ctx, checkpoint, initial_epoch, verbose, callbacks)
            final, model_path, export_dir, logged = finish(model, data, plan, ctx)
        except BaseException as exc:
            mark_failed(ctx, exc)
            raise
    distribute.barrier(strategy)  # workers leave together, after the chief's save and export
    return TrainResult(ctx.run_id, ctx.run_name, model, history, model_path, export_dir,
                       ctx.samples_dir, final, (time.time() - started) / 60.0, ctx.tracking_uri,
                       ctx.experiment_id, ctx.checkpoint_dir, logged)


def fill_from_data(run_config: RunConfig, data) -> RunConfig:
    """The config with the model fields that come from the data filled in where the config
    leaves them at 0: ``model.dataset_size`` (beta-TCVAE's minibatch weighted sampling needs N)
    becomes the number of training images this run reads, after ``data.limit_train``. The
    filled config is what the run logs, checkpoints and saves with the model."""
    model = run_config.model
    if getattr(model, "dataset_size", None) != 0:
        return run_config
    n = data.info.num_train
    if run_config.data.limit_train:
        n = min(n, run_config.data.limit_train)
    return dataclasses.replace(run_config, model=dataclasses.replace(model, dataset_size=n))


# -- the tracking run ----------------------------------------------------------------------------
def run_context(cfg: RunConfig, layout, tracking_uri: str | None = None, resume=None):
    """Where the run writes, decided here once: its tracking store (``--tracking-uri``, then
    ``tracking.tracking_uri``, then the default; a non-chief worker never touches one), its name
    (the configured one, a run of this config to resume, or a new dated one) and its folders."""
    from gen_keras import distribute
    from gen_keras.stores import tracking_uri as resolve_store
    from gen_keras.tracking import RunContext
    from gen_keras.training.resume import choose_run_name

    t = cfg.tracking
    if t.run_name and isinstance(resume, str) and resume != t.run_name:
        raise ConfigError(f"--resume {resume} names another run than tracking.run_name={t.run_name!r}")
    is_chief = distribute.is_chief()
    uri = resolve_store(tracking_uri, t.tracking_uri) if is_chief else ""
    checkpoints = checkpoint_root(cfg)
    run_name = t.run_name
    if is_chief and (resume or not run_name):
        run_name = choose_run_name(cfg, layout, checkpoints, run_name or resume, uri) or run_name
    run_name = run_name or f"{cfg.model.kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return RunContext(uri, t.experiment, run_name, Path(t.outputs_dir).resolve(),
                      checkpoints / run_name, is_chief)


def checkpoint_root(cfg: RunConfig) -> Path:
    """The folder holding every run's checkpoint folder: ``train.checkpoint_dir``, else
    ``<outputs>/checkpoints``."""
    if cfg.train.checkpoint_dir:
        return Path(cfg.train.checkpoint_dir).resolve()
    return Path(cfg.tracking.outputs_dir).resolve() / "checkpoints"


def checkpoint_lock(ctx):
    """The chief holds an exclusive lock on the run's checkpoint folder for the whole run: a
    second ``gen-keras train`` (or retrain) of the same run exits at once instead of training
    into the same checkpoints."""
    import contextlib

    from gen_keras.files import exclusive_lock
    from gen_keras.training.resume import lock_path

    if not ctx.is_chief:
        return contextlib.nullcontext()
    return exclusive_lock(lock_path(ctx.checkpoint_dir), f"training run {ctx.run_name!r}")


def start_run(cfg: RunConfig, layout, ctx, finished: str = "refuse"):
    """Read the checkpoint state (None for a fresh run), resolve THE plan with it (``auto``
    precision adopted from the checkpoint) and check the run may resume; on the chief, mark dead
    runs of the same store KILLED and create the MLflow run (or reopen the unfinished one the
    checkpoint names). Returns ``(plan, state)``; a finished state only with ``finished="load"``."""
    from gen_keras.checkpoint_state import read_state, update_state
    from gen_keras.plan import resolve_plan
    from gen_keras.tracking import open_tracking_run
    from gen_keras.training.resume import mark_dead_runs

    state = read_state(ctx.checkpoint_dir)
    plan = resolve_plan(cfg, layout, is_chief=ctx.is_chief, checkpoint=state)
    if state is not None:
        check_resumable(plan, ctx.run_name, state, finished_ok=finished == "load")
        if state.get("finished"):
            return plan, state
    if plan.is_chief:
        open_tracking_run(ctx, state)
        mark_dead_runs(ctx.checkpoint_dir.parent, ctx.sink.client, ctx.tracking_uri, skip=ctx.checkpoint_dir)
        if state is not None and state.get("stopped"):
            update_state(ctx.checkpoint_dir, stopped=None)  # running again
    return plan, state


def check_resumable(plan: RunPlan, run_name: str, state: dict, finished_ok: bool = False) -> None:
    if state.get("finished") and not finished_ok:
        raise ConfigError(f"tracking.run_name={run_name!r} already finished (run "
                          f"{state.get('run_id')}); choose a new run name")
    if state.get("config") != plan.resumable():
        differ = _differences(state.get("config"), plan.resumable())
        what = "a finished run" if state.get("finished") else "an unfinished checkpoint"
        raise ConfigError(f"tracking.run_name={run_name!r} has {what} made "
                          f"with a different config ({'; '.join(differ[:5])}"
                          f"{'; ...' if len(differ) > 5 else ''}); use the same config to "
                          "resume or a new run name")


def finished_result(ctx, state: dict, started: float) -> TrainResult:
    """A run that finished earlier, as its result: the saved model loaded (sha256-checked)."""
    from gen_keras.artifacts import load_model

    log.info("run %s finished training earlier (run %s); not retraining", ctx.run_name,
             state.get("run_id"))
    export_dir = state.get("export_dir")
    return TrainResult(state.get("run_id"), ctx.run_name, load_model(state["model_path"]), {},
                       Path(state["model_path"]), Path(export_dir) if export_dir else None,
                       ctx.samples_dir, {}, (time.time() - started) / 60.0, ctx.tracking_uri,
                       None, ctx.checkpoint_dir)


_ABSENT = object()


def _differences(stored, now, prefix: str = "") -> list[str]:
    """``key: checkpoint X, now Y`` for each leaf that differs between two config dicts (values
    shortened; a key one side lacks is "absent")."""
    if not prefix and not isinstance(stored, dict):
        return ["the checkpoint records no config"]
    if isinstance(stored, dict) and isinstance(now, dict):
        return [d for k in sorted(set(stored) | set(now), key=str)
                for d in _differences(stored.get(k, _ABSENT), now.get(k, _ABSENT), f"{prefix}{k}.")]
    if stored == now:
        return []

    def show(value) -> str:
        text = "absent" if value is _ABSENT else repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return [f"{prefix.rstrip('.')}: checkpoint {show(stored)}, now {show(now)}"]


# -- the model -------------------------------------------------------------------------------------
def build_and_restore(plan: RunPlan, strategy, ctx, state):
    """The model and its optimizers, built and compiled inside the strategy scope, given the
    trained networks it declares (SRGAN's content network: ``model.pretrained_parts()``), restored
    from the last checkpoint (every worker gets the chief's weights and epoch)."""
    from gen_keras import distribute
    from gen_keras.eval.translation import hand_in_pretrained
    from gen_keras.models import build_model
    from gen_keras.training.checkpoint import EpochCheckpoint

    with strategy.scope():
        model = build_model(plan.config.model, precision=plan.precision)
        model.compile_for_training(plan)
    hand_in_pretrained(model, plan.config)
    checkpoint = EpochCheckpoint(ctx.checkpoint_dir, model, ctx.run_id, plan.resumable(),
                                 tracking_uri=ctx.tracking_uri)
    initial_epoch = checkpoint.restore() if state is not None else 0
    # Only the chief keeps checkpoints: every worker resumes from the chief's weights/epoch.
    variables = [*model.variables, *(v for o in model.optimizers_to_track().values() for v in o.variables)]
    return model, checkpoint, distribute.sync_from_chief(strategy, variables, initial_epoch)


def log_run_start(sink, plan: RunPlan, model, data_info, state, initial_epoch: int, folder: Path) -> None:
    """A fresh run records its config, versions and plan (``config.yaml``, written into ``folder``)
    and its data set; a resumed run says where it resumed and re-sends the last epoch's metrics if
    MLflow missed them."""
    from gen_keras.tracking import log_dataset, log_run_record, run_record, run_versions, send_missing_epoch

    if sink is None:
        return
    if initial_epoch:
        sink.set_tag("gen_keras.resumed_from_epoch", initial_epoch)
        send_missing_epoch(sink, state, initial_epoch)
        return
    learning_rates = {name: float(_current_lr(opt)) for name, opt in model.optimizers_to_track().items()}
    derived = {**plan.derived_params(), "learning_rate": learning_rates}
    log_run_record(sink, run_record(plan.config.to_dict(), derived, run_versions()), folder)
    sink.set_tag("gen_keras.kind", plan.config.model.kind)
    sink.set_tag("gen_keras.dataset", plan.config.data.dataset)
    log_dataset(sink, data_info)


def _current_lr(optimizer) -> float:
    import numpy as np

    lr = optimizer.learning_rate
    return float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))


# -- fit -----------------------------------------------------------------------------------------------
def fit(model, data, plan: RunPlan, ctx, checkpoint, initial_epoch: int, verbose, extra=()) -> dict:
    """``model.fit`` from ``initial_epoch`` with the callbacks this run needs (and ``extra``)."""
    cfg = plan.config
    if initial_epoch >= cfg.train.epochs:
        return {}
    if verbose is None:
        verbose = (1 if sys.stdout.isatty() else 2) if cfg.train.progress else 0
    return model.fit(data.train, validation_data=data.test, epochs=cfg.train.epochs,
                     initial_epoch=initial_epoch, verbose=verbose, shuffle=False,  # tf.data shuffles
                     callbacks=[*training_callbacks(model, data, ctx, checkpoint), *extra]).history


def training_callbacks(model, data, ctx, checkpoint) -> list:
    """The health guards every run needs and the ones the model declares; on the chief also the
    checkpoint, the per-epoch metrics and the preview images."""
    from gen_keras.training.callbacks import HealthGuard, MLflowMetrics
    from gen_keras.training.guards import guard_callbacks

    callbacks = [HealthGuard(), *guard_callbacks(model, ctx.sink)]
    if ctx.is_chief:
        callbacks += [checkpoint, MLflowMetrics(ctx.sink), preview_callback(model, data, ctx)]
    return callbacks


def preview_callback(model, data, ctx):
    """The per-epoch pictures of what the model declares it makes (``model.preview``): samples
    (and reconstructions) from a fixed latent batch, or input | output | target grids of a
    fixed batch of test pairs for a translation model."""
    from gen_keras.training.callbacks import PreviewImages, TranslationPreview

    first, second = (t.numpy() for t in next(iter(data.test.unbatch().batch(16))))
    if model.preview == "translation":  # test batches are (input, target) / (a, b)
        return TranslationPreview(model, first, second, ctx.samples_dir, ctx.sink)
    return PreviewImages(model, first, ctx.samples_dir, ctx.sink, test_labels=second)


# -- after training --------------------------------------------------------------------------------
def finish(model, data, plan: RunPlan, ctx):
    """Test metrics, then (chief) quality metrics, the saved model, the export and the final
    state; returns ``(metrics, model path, export folder, the metrics by their MLflow names)``."""
    final = {metric: float(v) for metric, v in model.evaluate(data.test, verbose=0, return_dict=True).items()}
    logged = {f"test/{k}": v for k, v in final.items()}
    if not ctx.is_chief:
        return final, None, None, logged
    cfg, sink = plan.config, ctx.sink
    sink.log_metrics(logged, step=cfg.train.epochs)
    if cfg.train.evaluate_at_end:
        quality = evaluate_at_end(model, cfg, sink, ctx.samples_dir / "disentanglement", data)
        final.update(quality)
        logged.update({f"eval/{k}": v for k, v in quality.items()})  # as evaluate_at_end logs them
    model_path = save_and_log_model(model, ctx)
    export_dir = export_and_log(model, ctx) if cfg.train.export_at_end else None
    close_run(ctx, model_path, export_dir)
    return final, model_path, export_dir, logged


def evaluate_at_end(model, run_config, sink, artifacts_dir: Path | None = None, data=None) -> dict:
    """Quality metrics that fit the model kind (gen_keras.eval), logged to the run; the files
    the evaluation writes into ``artifacts_dir`` (an encoder's mutual-information heat map and
    latent traversals on a factor data set) are logged under ``eval/``. ``data``: the run's own
    data pipelines, whose test split the evaluation reads instead of reading it again.

    A modest IWAE k keeps this quick; ``gen-keras evaluate --run-id`` re-scores with more. An
    evaluation failure is logged as a tag and never costs the trained model (saved after this).
    """
    from gen_keras.eval import END_OF_TRAINING_IWAE_K, evaluate_model

    try:
        metrics = evaluate_model(model, run_config, iwae_k=END_OF_TRAINING_IWAE_K, seed=run_config.train.seed,
                                 artifacts_dir=artifacts_dir, data=data)
    except Exception as exc:
        log.warning("end-of-training evaluation failed: %s: %s", type(exc).__name__, exc)
        if sink is not None:
            sink.set_tag("gen_keras.eval.error", f"{type(exc).__name__}: {exc}"[:5000])
        return {}
    if sink is not None:
        if metrics:
            sink.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=run_config.train.epochs)
        for key, note in getattr(metrics, "notes", {}).items():
            sink.set_tag(key, note)
        for path in getattr(metrics, "artifacts", {}).values():
            sink.log_artifact(path, "eval/disentanglement")
    return dict(metrics)


def save_and_log_model(model, ctx) -> Path:
    from gen_keras.artifacts import save_model

    model_path = save_model(model, ctx.outputs_dir / "models" / ctx.run_name / "model.keras")
    ctx.sink.log_artifact(model_path, "model")
    ctx.sink.log_artifact(model_path.with_name("model.keras.sha256"), "model")
    return model_path


def export_and_log(model, ctx) -> Path:
    """The export, with what the evaluation measured that consumers use: on a factor data set,
    the factor each code dimension carries (``facts.factors``: the page names its sliders by it)."""
    import json

    from gen_keras.export import export_model

    measured = ctx.samples_dir / "disentanglement" / "code_factors.json"
    facts = {"factors": json.loads(measured.read_text())} if measured.is_file() else None
    export_dir = export_model(model, ctx.export_dir, run_id=ctx.run_id, name=ctx.run_name, overwrite=True,
                              facts=facts)
    ctx.sink.log_artifact(export_dir, "export")
    ctx.sink.log_mlflow_model(export_dir, ctx.experiment_id, step=0)  # what MLflow's tools load
    return export_dir


def close_run(ctx, model_path: Path, export_dir: Path | None) -> None:
    """Deliver what is pending, mark the checkpoint state finished and the run FINISHED (or say
    how to deliver the records later when MLflow is still away)."""
    from gen_keras.checkpoint_state import update_state

    sink, ckpt_dir = ctx.sink, ctx.checkpoint_dir
    delivered = sink.flush()
    update_state(ckpt_dir, run_id=ctx.run_id, tracking_uri=ctx.tracking_uri, finished=True,
                 model_path=str(model_path), export_dir=str(export_dir) if export_dir else None)
    if delivered:
        sink.client.set_terminated(ctx.run_id, "FINISHED")
    else:
        # The full command: a bare --run-name would look in ./outputs and the default store.
        log.warning("MLflow still unreachable at the end of training: %d record(s) kept in "
                    "%s; run `gen-keras sync --run-name %s --checkpoint-dir %s "
                    "--tracking-uri %s` when it is back", len(sink.pending),
                    sink.pending_path, ctx.run_name, ckpt_dir.parent, ctx.tracking_uri)


def mark_failed(ctx, exc: BaseException) -> None:
    """Record the error on the run and end it FAILED (KILLED for Ctrl-C or SIGTERM), in MLflow and
    in the checkpoint state (an interrupted run is resumed by the same command, a failed one is
    not); never raises."""
    from gen_keras.checkpoint_state import STATE, update_state

    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    try:
        if ctx.is_chief and (ctx.checkpoint_dir / STATE).exists():
            update_state(ctx.checkpoint_dir, stopped=status)
    except OSError as err:  # the run's own error is what the caller reports
        log.warning("could not record %s in %s: %s", status, ctx.checkpoint_dir, err)
    sink = ctx.sink
    if sink is None:
        return
    try:
        sink.set_tag("gen_keras.error", f"{type(exc).__name__}: {exc}"[:5000])
        sink.flush()
        sink.client.set_terminated(ctx.run_id, status)
    except Exception:
        pass


__all__ = ["TrainResult", "checkpoint_root", "evaluate_at_end", "train"]
