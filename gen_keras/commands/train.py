"""``gen-keras train --config CFG [--set section.field=value ...]``."""
from __future__ import annotations


def add_config_args(p) -> None:
    p.add_argument("--config", required=True, help="YAML run config (see pipelines/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow/mlflow.db)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a config, tracked in MLflow")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from gen_keras.config import load_config
    from gen_keras.training import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, tracking_uri=args.tracking_uri)
    print(f"\nrun {result.run_name} (MLflow run id {result.run_id}) finished in "
          f"{result.minutes:.1f} min")
    for k, v in sorted(result.final_metrics.items()):
        print(f"  test {k}: {v:.4f}")
    print(f"  samples per epoch: {result.samples_dir}")
    if result.model_path:
        print(f"  model: {result.model_path}")
    if result.export_dir:
        print(f"  export (SavedModel + ONNX + manifest.json): {result.export_dir}")
    print(f"  MLflow UI: {ui_hint(result.tracking_uri, result.experiment_id, result.run_id)}")
    return 0


def ui_hint(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str:
    """The exact way to browse the store this run went to: a local SQLite store needs a UI
    process pointed at that very file (wherever the command ran); a server is already one. The
    link opens the run in the UI's "Model training" view."""
    import shlex
    import sys
    from pathlib import Path

    from gen_keras.tracking import run_url

    if tracking_uri.startswith(("http://", "https://")):
        return f"open {run_url(tracking_uri, experiment_id, run_id)}"
    mlflow = Path(sys.executable).with_name("mlflow")
    return (f"{shlex.quote(str(mlflow))} ui --backend-store-uri {shlex.quote(tracking_uri)} --port 5000"
            f"\n             then open {run_url('http://127.0.0.1:5000', experiment_id, run_id)}")
