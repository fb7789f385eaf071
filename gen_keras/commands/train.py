"""``gen-keras train --config CFG [--set section.field=value ...] [--resume [NAME] | --new-run]``."""
from __future__ import annotations

import contextlib
from pathlib import Path


def add_config_args(p) -> None:
    p.add_argument("--config", required=True, help="YAML run config (see pipelines/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow/mlflow.db)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a config, tracked in MLflow",
                       description="A run stopped by a kill or Ctrl-C is resumed by the same command "
                       "(same config, same store): from its last epoch, in the same MLflow run.")
    add_config_args(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_NAME",
                       help="resume the run RUN_NAME (printed when a run starts); without a name, "
                            "require an unfinished run of this config to resume")
    which.add_argument("--new-run", dest="resume", action="store_const", const=False,
                       help="start a new run even if an unfinished run of this config could resume")
    p.set_defaults(func=run)


def run(args) -> int:
    from gen_keras.config_loader import load_config
    from gen_keras.training import train

    cfg = load_config(args.config, args.overrides)
    with sigterm_interrupts():
        result = train(cfg, tracking_uri=args.tracking_uri, resume=args.resume,
                       announce=lambda ctx, state: print(announcement(args, ctx, state), flush=True))
    print(f"\nrun {result.run_name} (MLflow run id {result.run_id}) finished in "
          f"{result.minutes:.1f} min")
    for name, value in sorted(result.logged_metrics.items()):  # by the names MLflow stores
        print(f"  {name}: {value:.6g}")
    print(f"  samples per epoch: {result.samples_dir}")
    if result.model_path:
        print(f"  model: {result.model_path}")
    if result.export_dir:
        print(f"  export (SavedModel + ONNX + manifest.json): {result.export_dir}")
        print(serve_hint(Path(result.export_dir)))
    print(f"  MLflow UI: {ui_hint(result.tracking_uri, result.experiment_id, result.run_id)}")
    return 0


def serve_hint(export_dir: Path, port: int = 8000) -> str:
    """Commands to paste that serve THIS export and ask it for pictures: the server starts in the
    background, the request waits (at most 2 minutes) until ``/readyz`` answers, and ``curl -f``
    fails on an error instead of saving the error as the picture."""
    import json
    import shlex
    import sys

    manifest = json.loads((export_dir / "manifest.json").read_text())
    name = manifest.get("name") or export_dir.name
    endpoints = manifest.get("endpoints", {})
    tasks = {spec.get("task", op) for op, spec in endpoints.items()}
    base = f"http://127.0.0.1:{port}"
    gen_keras = Path(sys.executable).with_name("gen-keras")
    out = shlex.quote(f"{name}.png")
    if "generate" in tasks:
        ask = (f"curl -f -X POST {base}/v1/models/{name}:generate -H 'Content-Type: application/json' "
               f"-H 'Accept: image/png' -d '{{\"n\": 16, \"seed\": 7}}' -o {out}")
    else:  # an image-to-image model: one PNG of its input size in, its translation out
        inputs = next((spec.get("inputs") or [] for spec in endpoints.values()
                       if spec.get("task") == "translate"), [])
        h, w = (inputs[0]["shape"][1:3] if inputs else ["H", "W"])
        ask = (f"curl -f -X POST '{base}/v1/models/{name}:translate?format=png' "
               f"-H 'Content-Type: image/png' --data-binary @input.png -o {out}  # input.png: {w}x{h}")
    serve = f"{shlex.quote(str(gen_keras))} serve --models {shlex.quote(str(export_dir))} --port {port}"
    return (f"  serve it and ask it for pictures (paste as a block):\n"
            f"    {serve} &\n"
            f"    timeout 120 sh -c 'until curl -sf {base}/readyz >/dev/null; do sleep 1; done' &&\n"
            f"    {ask}")


@contextlib.contextmanager
def sigterm_interrupts():
    """While training, SIGTERM (``kill``, a scheduler stopping the job) ends the run as Ctrl-C
    does: the run is marked KILLED, its checkpoint kept, and the same command resumes it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def announcement(args, ctx, state) -> str:
    """What a starting run prints: its name, MLflow run and store, where its checkpoints are, and
    the exact command that resumes it."""
    import shlex

    resumed = (f"resumed from epoch {state.get('epochs_done', 0)}" if state is not None
               else "new")
    command = ["gen-keras", "train", "--config", args.config]
    for item in args.overrides:
        command += ["--set", item]
    if args.tracking_uri:
        command += ["--tracking-uri", args.tracking_uri]
    command += ["--resume", ctx.run_name]
    return (f"run {ctx.run_name} ({resumed}; MLflow run {ctx.run_id} in {ctx.tracking_uri})\n"
            f"  checkpoints: {ctx.checkpoint_dir}\n"
            f"  if it stops before the end, resume it with: {shlex.join(command)}")


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
