"""``gen-keras export --run-id ID | --model PATH [--out DIR]``: SavedModel + ONNX + manifest."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("export", help="export a trained model (SavedModel + ONNX + manifest.json)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-id", help="an MLflow run that logged model/model.keras")
    src.add_argument("--model", help="a model.keras written by gen-keras (with its .sha256)")
    p.add_argument("--out", help="export folder (default outputs/exports/<run id or model folder>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export atomically")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from gen_keras.artifacts import load_model, load_model_from_run
    from gen_keras.export import export_model

    if args.run_id:
        model = load_model_from_run(args.run_id, args.tracking_uri)
        name = args.run_id
    else:
        model = load_model(args.model)
        name = Path(args.model).resolve().parent.name
    out = Path(args.out) if args.out else Path("outputs") / "exports" / name
    export_model(model, out, run_id=args.run_id, name=out.name, overwrite=args.overwrite)
    if args.run_id:
        from mlflow import MlflowClient

        from gen_keras.exported.pyfunc import log_model
        from gen_keras.stores import tracking_uri

        client = MlflowClient(tracking_uri(args.tracking_uri))
        client.log_artifacts(args.run_id, str(out), "export")
        run = client.get_run(args.run_id)
        model_id = log_model(client, args.run_id, run.info.experiment_id, out)
        client.set_tag(args.run_id, "gen_keras.model_id", model_id)
        print(f"logged to run {args.run_id}: export/ and the MLflow Model models:/{model_id}")
    print(f"exported {model.kind} to {out.resolve()} (manifest.json, saved_model/, "
          f"{', '.join(sorted(p.name for p in out.glob('*.onnx')))})")
    return 0
