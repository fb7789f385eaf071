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
    print("  MLflow UI: bash mlflow/server.sh  (then open http://127.0.0.1:5000)")
    return 0
