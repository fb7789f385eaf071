"""The one training path every model rides: config → data → model (in the strategy scope) →
fit with callbacks → evaluate → save → export, tracked in MLflow and resumable after a kill."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import sys
import time
from pathlib import Path

from gen_keras import precision
from gen_keras.config import ConfigError, RunConfig

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


def _versions() -> dict[str, str]:
    import keras
    import mlflow
    import tensorflow as tf

    import gen_keras

    return {"version.gen_keras": gen_keras.__version__, "version.tensorflow": tf.__version__,
            "version.keras": keras.__version__, "version.mlflow": mlflow.__version__,
            "version.python": sys.version.split()[0]}


def _log_dataset(client, run_id: str, info, context: str = "train") -> None:
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(info.source_uri)
    ds = MetaDataset(source=source, name=info.name,
                     digest=f"{info.name}-{info.num_train}-{info.num_test}"[:36])
    client.log_inputs(run_id, datasets=[DatasetInput(ds._to_mlflow_entity(),
                                                     tags=[InputTag("mlflow.data.context", context)])])


def start_run(run_config: RunConfig, tracking_uri: str | None = None, is_chief: bool = True):
    """Create (or, for an unfinished run of the same name, reopen) the MLflow run."""
    from mlflow import MlflowClient

    from gen_keras.training.checkpoint import read_state
    from gen_keras.tracking import (RunContext, TrackingSink, default_tracking_uri,
                                    get_or_create_experiment)

    t = run_config.tracking
    # A non-chief worker never touches the tracking store (not even to create a local one).
    uri = tracking_uri or t.tracking_uri or (default_tracking_uri() if is_chief else "")
    run_name = t.run_name or (f"{run_config.model.kind}-"
                              f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    ctx = RunContext(uri, t.experiment, None, run_name, Path(t.outputs_dir).resolve(), is_chief)
    state = read_state(checkpoint_dir(run_config, ctx))
    if state is not None:
        if state.get("finished"):
            raise ConfigError(f"tracking.run_name={run_name!r} already finished (run "
                              f"{state.get('run_id')}); choose a new run name")
        if state.get("config") != _resumable(run_config):
            raise ConfigError(f"tracking.run_name={run_name!r} has an unfinished checkpoint made "
                              "with a different config (or, with train.mixed_precision=auto, on "
                              "hardware that resolves it differently); use the same config to "
                              "resume or a new run name")
    if not is_chief:
        return ctx, state
    client = MlflowClient(tracking_uri=uri)
    try:
        exp_id = get_or_create_experiment(client, t.experiment, uri)
        if state is not None and state.get("run_id"):
            ctx.run_id = state["run_id"]
            client.update_run(ctx.run_id, status="RUNNING")
        else:
            run = client.create_run(exp_id, run_name=run_name)
            ctx.run_id = run.info.run_id
    except Exception as exc:
        raise ConfigError(f"cannot reach the MLflow tracking store at {uri}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    ctx.sink = TrackingSink(client, ctx.run_id, checkpoint_dir(run_config, ctx) / "pending.json")
    ctx.sink.load_pending()
    return ctx, state


def checkpoint_dir(run_config: RunConfig, ctx) -> Path:
    if run_config.train.checkpoint_dir:
        return Path(run_config.train.checkpoint_dir).resolve() / ctx.run_name
    return ctx.checkpoint_dir


def _resumable(run_config: RunConfig) -> dict:
    """The config a checkpoint must match to resume: ``auto`` precision resolved (a checkpoint
    is never resumed in another precision, e.g. a GPU run's float16 on a CPU)."""
    d = run_config.to_dict()
    d["train"].pop("progress", None)
    d["train"]["mixed_precision"] = _precision(run_config)
    return d


def _precision(run_config: RunConfig) -> str:
    return precision.resolve(run_config.train.mixed_precision, run_config.distribute.strategy)


def train(run_config: RunConfig, tracking_uri: str | None = None, verbose: int | None = None) -> TrainResult:
    """Train the configured model end to end; see the module docstring.

    Keras' global dtype policy is the config's (``auto`` resolved) during the run and is
    restored afterwards; the returned model keeps the policy it was trained with.
    """
    import keras

    from gen_keras import distribute

    started = time.time()
    cfg = run_config.validate()
    distribute.configure_threads(cfg.train.intra_op_threads, cfg.train.inter_op_threads)
    keras.utils.set_random_seed(cfg.train.seed)
    with precision.global_policy(_precision(cfg)):
        return _train(cfg, tracking_uri, verbose, started)


def _train(cfg: RunConfig, tracking_uri, verbose, started) -> TrainResult:
    from gen_keras import distribute
    from gen_keras.artifacts import save_model
    from gen_keras.data import make_datasets
    from gen_keras.models import build_model
    from gen_keras.training.callbacks import HealthGuard, MLflowMetrics, PreviewImages
    from gen_keras.training.checkpoint import EpochCheckpoint, read_state, write_state

    strategy = distribute.make_strategy(cfg.distribute)
    replicas = strategy.num_replicas_in_sync
    if cfg.train.batch_size % replicas:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be divisible by the "
                          f"{replicas} replicas of distribute.strategy={cfg.distribute.strategy!r}")
    data = make_datasets(cfg)  # bad data config fails here, before any model is built
    is_chief = distribute.is_chief()
    ctx, state = start_run(cfg, tracking_uri, is_chief)
    ckpt_dir = checkpoint_dir(cfg, ctx)
    sink = ctx.sink
    try:
        # keras-team/keras#19246: several steps per call die under the mirrored strategies.
        steps = distribute.supported_steps_per_execution(cfg.train.steps_per_execution, strategy)
        train_cfg = dataclasses.replace(cfg.train, steps_per_execution=steps,
                                        mixed_precision=_precision(cfg))
        with strategy.scope():
            model = build_model(cfg.model)
            model.compile_for_training(train_cfg, replicas)
        checkpoint = EpochCheckpoint(ckpt_dir, model, ctx.run_id, _resumable(cfg))
        initial_epoch = checkpoint.restore() if state is not None else 0
        # Only the chief keeps checkpoints: every worker resumes from the chief's weights/epoch.
        initial_epoch = distribute.sync_from_chief(
            strategy, [*model.variables, *(v for o in model.optimizers_to_track().values()
                                           for v in o.variables)], initial_epoch)
        if sink is not None:
            if initial_epoch == 0:
                sink.log_params({**cfg.flat(), **_versions(),
                                 "derived.replicas": replicas,
                                 "derived.per_replica_batch": cfg.train.batch_size // replicas,
                                 "derived.learning_rate": model_learning_rate(model),
                                 "derived.strategy": type(strategy).__name__,
                                 "derived.workers": distribute.num_workers(strategy),
                                 "derived.steps_per_execution": train_cfg.steps_per_execution,
                                 "derived.mixed_precision": train_cfg.mixed_precision})
                sink.set_tag("gen_keras.kind", cfg.model.kind)
                sink.set_tag("gen_keras.dataset", cfg.data.dataset)
                try:
                    _log_dataset(sink.client, ctx.run_id, data.info)
                except Exception as exc:  # a dataset record is useful, not essential
                    log.warning("could not record the dataset input: %s", exc)
                if data.info.skipped:
                    sink.log_metrics({"data_skipped_files": data.info.skipped}, step=0)
                    sink.set_tag("gen_keras.data_skipped_files", data.info.skipped)
                    sink.log_params({"data.skipped_examples": ", ".join(data.info.skipped_files[:20])})
            else:
                sink.set_tag("gen_keras.resumed_from_epoch", initial_epoch)
                _relog_last_epoch(sink, state, initial_epoch)
        test_images, test_labels = (t.numpy() for t in next(iter(data.test.unbatch().batch(16))))
        callbacks = [HealthGuard(), *model.extra_callbacks(cfg, sink)]
        if is_chief:
            callbacks += [checkpoint, MLflowMetrics(sink),
                          PreviewImages(model, test_images, ctx.samples_dir, sink,
                                        test_labels=test_labels)]
        if verbose is None:
            verbose = (1 if sys.stdout.isatty() else 2) if cfg.train.progress else 0
        history = {}
        if initial_epoch < cfg.train.epochs:
            history = model.fit(data.train, validation_data=data.test, epochs=cfg.train.epochs,
                                initial_epoch=initial_epoch, callbacks=callbacks,
                                verbose=verbose).history
        final = {metric: float(v) for metric, v in
                 model.evaluate(data.test, verbose=0, return_dict=True).items()}
        model_path = export_dir = None
        if is_chief:
            sink.log_metrics({f"final_test_{k}": v for k, v in final.items()}, step=cfg.train.epochs)
            if cfg.train.evaluate_at_end:
                final.update(evaluate_at_end(model, cfg, sink))
            model_path = save_model(model, ctx.outputs_dir / "models" / ctx.run_name / "model.keras")
            sink.log_artifact(model_path, "model")
            sink.log_artifact(model_path.with_name("model.keras.sha256"), "model")
            if cfg.train.export_at_end:
                from gen_keras.export import export_model

                export_dir = export_model(model, ctx.export_dir,
                                          run_id=ctx.run_id,
                                          name=ctx.run_name, overwrite=True)
                sink.log_artifact(export_dir, "export")
            delivered = sink.flush()
            write_state(ckpt_dir, {**(read_state(ckpt_dir) or {}), "run_id": ctx.run_id,
                                   "finished": True, "model_path": str(model_path),
                                   "export_dir": str(export_dir) if export_dir else None})
            if delivered:
                sink.client.set_terminated(ctx.run_id, "FINISHED")
            else:
                # The full command: a bare --run-name would look in ./outputs and the default store.
                log.warning("MLflow still unreachable at the end of training: %d record(s) kept in "
                            "%s; run `gen-keras sync --run-name %s --checkpoint-dir %s "
                            "--tracking-uri %s` when it is back", len(sink.pending),
                            sink.pending_path, ctx.run_name, ckpt_dir.parent, ctx.tracking_uri)
    except BaseException as exc:
        if sink is not None:
            try:
                sink.set_tag("gen_keras.error", f"{type(exc).__name__}: {exc}"[:5000])
                sink.flush()
                sink.client.set_terminated(ctx.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                           else "FAILED")
            except Exception:
                pass
        raise
    distribute.barrier(strategy)  # workers leave together, after the chief's save and export
    return TrainResult(ctx.run_id, ctx.run_name, model, history, model_path, export_dir,
                       ctx.samples_dir, final, (time.time() - started) / 60.0)


def model_learning_rate(model) -> str:
    return json.dumps({name: float(keras_lr(opt)) for name, opt in model.optimizers_to_track().items()})


def keras_lr(opt) -> float:
    import numpy as np

    lr = opt.learning_rate
    return float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))


def _relog_last_epoch(sink, state: dict, epochs_done: int) -> None:
    """A kill between the checkpoint and the metric upload loses that epoch's points; re-send
    them from the checkpoint state, only if MLflow does not have them (never twice)."""
    from gen_keras.training.callbacks import metric_name

    logs = state.get("last_logs") or {}
    if not logs:
        return
    first = metric_name(next(iter(logs)))
    try:
        history = sink.client.get_metric_history(sink.run_id, first)
    except Exception:
        return
    if not any(m.step == epochs_done for m in history):
        sink.log_metrics({metric_name(k): v for k, v in logs.items()}, step=epochs_done)


def evaluate_at_end(model, run_config, sink) -> dict:
    """Quality metrics that fit the model kind (gen_keras.eval), logged to the run.

    A modest IWAE k keeps this quick; ``gen-keras evaluate --run-id`` re-scores with more. An
    evaluation failure is logged as a tag and never costs the trained model (saved after this).
    """
    from gen_keras.eval import END_OF_TRAINING_IWAE_K, evaluate_model

    try:
        metrics = evaluate_model(model, run_config, iwae_k=END_OF_TRAINING_IWAE_K,
                                 seed=run_config.train.seed)
    except Exception as exc:
        log.warning("end-of-training evaluation failed: %s: %s", type(exc).__name__, exc)
        if sink is not None:
            sink.set_tag("gen_keras.eval.error", f"{type(exc).__name__}: {exc}"[:5000])
        return {}
    if sink is not None:
        if metrics:
            sink.log_metrics(metrics, step=run_config.train.epochs)
        for key, note in getattr(metrics, "notes", {}).items():
            sink.set_tag(key, note)
    return dict(metrics)
