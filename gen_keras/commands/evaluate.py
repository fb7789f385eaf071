"""``gen-keras evaluate --run-id ID | --export DIR``: the metrics that fit the model kind, printed
and logged to the model's MLflow run."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="likelihood / sample-quality metrics of a trained model, "
                                        "logged to its MLflow run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-id", help="MLflow run whose model/model.keras artifact to evaluate")
    src.add_argument("--export", dest="export_dir", help="export folder (manifest.json + "
                     "SavedModel); sample metrics only, logged to its source run if reachable")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow/mlflow.db)")
    p.add_argument("--num-samples", type=int, default=2000,
                   help="generated (and real test) images for FID/KID/precision/recall (default 2000)")
    p.add_argument("--iwae-k", type=int, default=1000,
                   help="importance samples per test image for the NLL of VAE-family models "
                        "(default 1000; the published MNIST protocol is 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of latent draws and binarization")
    p.add_argument("--dataset", default=None, help="override the run's data.dataset")
    p.add_argument("--no-log", action="store_true", help="print only; do not log to MLflow")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from gen_keras.errors import ConfigError
    from gen_keras.eval import evaluate_model, load_for_eval

    if args.num_samples < 6:
        raise ConfigError(f"--num-samples={args.num_samples} must be >= 6")
    if args.iwae_k < 1:
        raise ConfigError(f"--iwae-k={args.iwae_k} must be >= 1")
    target = load_for_eval(run_id=args.run_id, export_dir=args.export_dir,
                           tracking_uri=args.tracking_uri, dataset=args.dataset)
    print(f"evaluating {target.run_config.model.kind} from {target.source} on "
          f"{target.run_config.data.dataset}")
    metrics = evaluate_model(target.model, target.run_config, num_samples=args.num_samples,
                             seed=args.seed, iwae_k=args.iwae_k)
    for name, value in sorted(metrics.items()):
        print(f"  {name}: {value:.6g}")
    for key, note in sorted(metrics.notes.items()):
        print(f"  [{key.rsplit('.', 1)[-1]}] {note}")
    if args.no_log:
        return 0
    if target.run_id is None:
        print("  (no MLflow run to log to: the export's source run is not in this tracking store)")
        return 0
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    client = MlflowClient(tracking_uri=target.tracking_uri)
    ts = int(time.time() * 1000)
    step = int(target.run_config.train.epochs)
    client.log_batch(target.run_id,
                     metrics=[Metric(f"eval/{k}", float(v), ts, step) for k, v in metrics.items()],
                     tags=[RunTag(k, v[:5000]) for k, v in metrics.notes.items()]
                     + [RunTag("gen_keras.eval.settings", json.dumps(
                         {"num_samples": args.num_samples, "iwae_k": args.iwae_k, "seed": args.seed,
                          "dataset": target.run_config.data.dataset}))])
    print(f"  logged {len(metrics)} metrics to run {target.run_id}")
    return 0
