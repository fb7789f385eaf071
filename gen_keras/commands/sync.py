"""``gen-keras sync --run-name NAME``: deliver what a run buffered while MLflow was down."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sync", help="send a run's buffered MLflow records (pending.json) once "
                       "the tracking server is back",
                       description="Exit codes: 0 everything delivered, 1 records still pending.")
    p.add_argument("--run-name", required=True, help="the run's tracking.run_name")
    p.add_argument("--outputs-dir", default="outputs",
                   help="the run's tracking.outputs_dir (checkpoints are under it)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="the folder holding the run's checkpoint folder: train.checkpoint_dir "
                        "when the config set one (default <outputs-dir>/checkpoints)")
    p.add_argument("--tracking-uri", default=None,
                   help="default: the store the run recorded in its checkpoint state (else its "
                        "config's tracking_uri, $MLFLOW_TRACKING_URI, ./mlflow/mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gen_keras.sync import sync_pending

    root = Path(args.checkpoint_dir) if args.checkpoint_dir else Path(args.outputs_dir) / "checkpoints"
    r = sync_pending(root / args.run_name, args.tracking_uri)
    print(f"run {args.run_name} ({r.run_id}) at {r.tracking_uri}: {r.delivered} record(s) "
          f"delivered, {r.remaining} pending" + ("; run closed as FINISHED" if r.closed else ""))
    if r.remaining:
        print("gen-keras sync: the tracking server is still unreachable; try again later",
              file=sys.stderr)
        return 1
    return 0
