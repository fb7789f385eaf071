"""The one training path every model rides, step by step:

    plan (config resolved for this machine and strategy) → data → tracking run → model (built
    and compiled in the strategy scope, restored from the last checkpoint) → fit with callbacks
    → evaluate → save → export → final state,

tracked in MLflow and resumable after a kill. Each step is one function below, in that order;
side effects during training live in callbacks (``callbacks.py``, ``guards.py``,
``checkpoint.py``), never in a ``train_step``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import sys
import time
from pathlib import Path

from gen_keras.config import RunConfig
from gen_keras.errors import ConfigError
from gen_keras.plan import RunPlan, adopt_checkpoint_precision, resolve_plan

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


def train(run_config: RunConfig, tracking_uri: str | None = None, verbose: int | None = None,
          callbacks=()) -> TrainResult:
    """Train the configured model end to end (see the module docstring). ``callbacks``: extra
    Keras callbacks after the run's own (e.g. bench/quality.py's wall-clock quality curve)."""
    import keras

    from gen_keras import distribute
    from gen_keras.data import make_datasets

    started = time.time()
    cfg = run_config.validate()
    distribute.configure_threads(cfg.train.intra_op_threads, cfg.train.inter_op_threads)
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = distribute.make_strategy(cfg.distribute)
    plan = resolve_plan(cfg, strategy, is_chief=distribute.is_chief())
    data = make_datasets(cfg)  # a bad data config fails here, before any model is built
    cfg = fill_from_data(cfg, data)
    plan = dataclasses.replace(plan, config=cfg)
    ctx = run_context(plan, tracking_uri)
    with checkpoint_lock(plan, ctx):  # one process per checkpoint folder
        plan, state = start_run(plan, ctx)
        try:
            model, checkpoint, initial_epoch = build_and_restore(plan, strategy, ctx, state)
            log_run_start(ctx.sink, plan, model, data.info, state, initial_epoch)
            history = fit(model, data, plan, ctx, checkpoint, initial_epoch, verbose, callbacks)
            final, model_path, export_dir = finish(model, data, plan, ctx)
        except BaseException as exc:
            mark_failed(ctx, exc)
            raise
    distribute.barrier(strategy)  # workers leave together, after the chief's save and export
    return TrainResult(ctx.run_id, ctx.run_name, model, history, model_path, export_dir,
                       ctx.samples_dir, final, (time.time() - started) / 60.0, ctx.tracking_uri,
                       ctx.experiment_id)


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
def run_context(plan: RunPlan, tracking_uri: str | None = None):
    """Where the run writes: its tracking store, name and output folders."""
    from gen_keras.tracking import RunContext, default_tracking_uri

    t = plan.config.tracking
    # A non-chief worker never touches the tracking store (not even to create a local one).
    uri = tracking_uri or t.tracking_uri or (default_tracking_uri() if plan.is_chief else "")
    run_name = t.run_name or f"{plan.config.model.kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return RunContext(uri, t.experiment, None, run_name, Path(t.outputs_dir).resolve(), plan.is_chief)


def checkpoint_lock(plan: RunPlan, ctx):
    """The chief holds an exclusive lock on the run's checkpoint folder for the whole run: a
    second ``gen-keras train`` (or retrain) of the same run exits at once instead of training
    into the same checkpoints."""
    import contextlib

    from gen_keras.files import exclusive_lock

    if not plan.is_chief:
        return contextlib.nullcontext()
    folder = checkpoint_dir(plan.config, ctx)
    return exclusive_lock(folder.parent / f".{folder.name}.lock", f"training run {ctx.run_name!r}")


def start_run(plan: RunPlan, ctx):
    """Read the checkpoint state (None for a fresh run) and, on the chief, create the MLflow run
    (or reopen the unfinished one the checkpoint names). Returns the plan (with ``auto``, in the
    checkpoint's precision) and the state."""
    from gen_keras.tracking import open_tracking_run
    from gen_keras.training.checkpoint import read_state

    state = read_state(checkpoint_dir(plan.config, ctx))
    if state is not None:
        plan = adopt_checkpoint_precision(plan, state)
        check_resumable(plan, ctx.run_name, state)
    if plan.is_chief:
        open_tracking_run(ctx, state, checkpoint_dir(plan.config, ctx))
    return plan, state


def check_resumable(plan: RunPlan, run_name: str, state: dict) -> None:
    if state.get("finished"):
        raise ConfigError(f"tracking.run_name={run_name!r} already finished (run "
                          f"{state.get('run_id')}); choose a new run name")
    if state.get("config") != plan.resumable():
        differ = _differences(state.get("config"), plan.resumable())
        raise ConfigError(f"tracking.run_name={run_name!r} has an unfinished checkpoint made "
                          f"with a different config ({'; '.join(differ[:5])}"
                          f"{'; ...' if len(differ) > 5 else ''}); use the same config to "
                          "resume or a new run name")


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


def checkpoint_dir(run_config: RunConfig, ctx) -> Path:
    if run_config.train.checkpoint_dir:
        return Path(run_config.train.checkpoint_dir).resolve() / ctx.run_name
    return ctx.checkpoint_dir


# -- the model -------------------------------------------------------------------------------------
def build_and_restore(plan: RunPlan, strategy, ctx, state):
    """The model and its optimizers, built and compiled inside the strategy scope, restored from
    the last checkpoint (every worker gets the chief's weights and epoch)."""
    from gen_keras import distribute
    from gen_keras.models import build_model
    from gen_keras.training.checkpoint import EpochCheckpoint

    with strategy.scope():
        model = build_model(plan.config.model, precision=plan.precision)
        model.compile_for_training(plan)
    checkpoint = EpochCheckpoint(checkpoint_dir(plan.config, ctx), model, ctx.run_id, plan.resumable())
    initial_epoch = checkpoint.restore() if state is not None else 0
    # Only the chief keeps checkpoints: every worker resumes from the chief's weights/epoch.
    variables = [*model.variables, *(v for o in model.optimizers_to_track().values() for v in o.variables)]
    return model, checkpoint, distribute.sync_from_chief(strategy, variables, initial_epoch)


def log_run_start(sink, plan: RunPlan, model, data_info, state, initial_epoch: int) -> None:
    """A fresh run records its config, versions, plan and data set; a resumed run says where it
    resumed and re-sends the last epoch's metrics if MLflow missed them."""
    from gen_keras.tracking import log_dataset, run_versions, send_missing_epoch

    if sink is None:
        return
    if initial_epoch:
        sink.set_tag("gen_keras.resumed_from_epoch", initial_epoch)
        send_missing_epoch(sink, state, initial_epoch)
        return
    learning_rates = {name: float(_current_lr(opt)) for name, opt in model.optimizers_to_track().items()}
    sink.log_params({**plan.config.flat(), **run_versions(), **plan.derived_params(),
                     "derived.learning_rate": json.dumps(learning_rates)})
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
                     initial_epoch=initial_epoch, verbose=verbose,
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
    state; returns ``(metrics, model path, export folder)``."""
    final = {metric: float(v) for metric, v in model.evaluate(data.test, verbose=0, return_dict=True).items()}
    if not ctx.is_chief:
        return final, None, None
    cfg, sink = plan.config, ctx.sink
    sink.log_metrics({f"test/{k}": v for k, v in final.items()}, step=cfg.train.epochs)
    if cfg.train.evaluate_at_end:
        final.update(evaluate_at_end(model, cfg, sink, ctx.samples_dir / "disentanglement"))
    model_path = save_and_log_model(model, ctx)
    export_dir = export_and_log(model, ctx) if cfg.train.export_at_end else None
    close_run(ctx, checkpoint_dir(cfg, ctx), model_path, export_dir)
    return final, model_path, export_dir


def evaluate_at_end(model, run_config, sink, artifacts_dir: Path | None = None) -> dict:
    """Quality metrics that fit the model kind (gen_keras.eval), logged to the run; the files
    the evaluation writes into ``artifacts_dir`` (an encoder's mutual-information heat map and
    latent traversals on a factor data set) are logged under ``eval/``.

    A modest IWAE k keeps this quick; ``gen-keras evaluate --run-id`` re-scores with more. An
    evaluation failure is logged as a tag and never costs the trained model (saved after this).
    """
    from gen_keras.eval import END_OF_TRAINING_IWAE_K, evaluate_model

    try:
        metrics = evaluate_model(model, run_config, iwae_k=END_OF_TRAINING_IWAE_K, seed=run_config.train.seed,
                                 artifacts_dir=artifacts_dir)
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
    from gen_keras.export import export_model

    export_dir = export_model(model, ctx.export_dir, run_id=ctx.run_id, name=ctx.run_name, overwrite=True)
    ctx.sink.log_artifact(export_dir, "export")
    ctx.sink.log_mlflow_model(export_dir, ctx.experiment_id, step=0)  # what MLflow's tools load
    return export_dir


def close_run(ctx, ckpt_dir: Path, model_path: Path, export_dir: Path | None) -> None:
    """Deliver what is pending, mark the checkpoint state finished and the run FINISHED (or say
    how to deliver the records later when MLflow is still away)."""
    from gen_keras.training.checkpoint import read_state, write_state

    sink = ctx.sink
    delivered = sink.flush()
    write_state(ckpt_dir, {**(read_state(ckpt_dir) or {}), "run_id": ctx.run_id, "finished": True,
                           "model_path": str(model_path),
                           "export_dir": str(export_dir) if export_dir else None})
    if delivered:
        sink.client.set_terminated(ctx.run_id, "FINISHED")
    else:
        # The full command: a bare --run-name would look in ./outputs and the default store.
        log.warning("MLflow still unreachable at the end of training: %d record(s) kept in "
                    "%s; run `gen-keras sync --run-name %s --checkpoint-dir %s "
                    "--tracking-uri %s` when it is back", len(sink.pending),
                    sink.pending_path, ctx.run_name, ckpt_dir.parent, ctx.tracking_uri)


def mark_failed(ctx, exc: BaseException) -> None:
    """Record the error on the run and end it FAILED (KILLED for Ctrl-C); never raises."""
    sink = ctx.sink
    if sink is None:
        return
    try:
        sink.set_tag("gen_keras.error", f"{type(exc).__name__}: {exc}"[:5000])
        sink.flush()
        sink.client.set_terminated(ctx.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
    except Exception:
        pass


__all__ = ["TrainResult", "checkpoint_dir", "evaluate_at_end", "train"]
