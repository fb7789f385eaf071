"""``gen-keras retrain --config CFG --model-name NAME [--slot SLOT] [--margin M] ...``: one
scheduled retrain with a quality gate (see gen_keras/retrain.py and docs/retraining.md)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from gen_keras.commands.train import add_config_args

    p = sub.add_parser("retrain", help="train a challenger, gate it against the registered "
                       "champion, promote it if better, publish the champion for serving",
                       description="Exit codes: 0 promoted, 3 kept the champion, 1 failed, "
                       "2 bad config, 4 another retrain of the same model is running.")
    add_config_args(p)
    p.add_argument("--model-name", required=True, help="registered model name in MLflow")
    p.add_argument("--slot", default=None,
                   help="schedule slot (default: today's UTC date); the same slot resumes the "
                        "same attempt after a crash")
    p.add_argument("--margin", type=float, default=0.0,
                   help="promote only if challenger < champion - margin (metric units; lower is "
                        "better)")
    p.add_argument("--metric", default=None,
                   help="gate metric (default: nll for the VAE family, fid for other generators)")
    p.add_argument("--num-samples", type=int, default=1000, help="samples the gate metric uses")
    p.add_argument("--gate-seed", type=int, default=0, help="seed of the gate metric")
    p.add_argument("--serve-dir", default="outputs/serving",
                   help="serving folder: <serve-dir>/<model-name> is the champion's export")
    p.add_argument("--lock-wait", type=float, default=0.0,
                   help="seconds to wait for another retrain of the same model (default: exit 4 "
                        "at once)")
    p.add_argument("--notify-pid-file", default=None,
                   help="the --pid-file of a running gen-keras serve: send it SIGHUP when the "
                        "served champion changes, so it serves the new one at once")
    p.add_argument("--kept-exit-code", type=int, default=3,
                   help="exit code when the champion is kept (default 3; the MLflow Project "
                        "entry point uses 0)")
    p.set_defaults(func=run)


def run(args) -> int:
    from gen_keras.commands.train import sigterm_interrupts
    from gen_keras.config_loader import load_config
    from gen_keras.retrain import (
        EXIT_BUSY,
        EXIT_FAILED,
        RetrainBusy,
        RetrainError,
        check_name,
        job_lock,
        retrain,
    )

    check_name(args.model_name, "--model-name")
    try:
        # The lock first: a job refused because another one runs exits before importing TF.
        with job_lock(args.model_name, args.tracking_uri or _config_tracking_uri(args), args.lock_wait), \
                sigterm_interrupts():
            cfg = load_config(args.config, args.overrides)
            r = retrain(cfg, args.model_name, slot=args.slot, margin=args.margin,
                        metric=args.metric, num_samples=args.num_samples, seed=args.gate_seed,
                        tracking_uri=args.tracking_uri, serve_dir=args.serve_dir, lock=False,
                        notify_pid_file=args.notify_pid_file)
    except RetrainBusy as exc:
        print(f"gen-keras retrain: busy: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except RetrainError as exc:
        print(f"gen-keras retrain: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    champion = "none" if r.champion_score is None else f"{r.champion_score:.6g}"
    print(f"\n{r.model_name} v{r.version} (run {r.run_name}, id {r.run_id}): {r.decision.upper()}")
    print(f"  {r.metric}: challenger {r.challenger_score:.6g}, champion {champion}")
    print(f"  reason: {r.reason}")
    print(f"  champion: v{r.champion_version}, served from {r.served_path}")
    return args.kept_exit_code if r.decision == "kept" else r.exit_code


def _config_tracking_uri(args) -> str | None:
    """``tracking.tracking_uri`` from the config file and ``--set`` overrides, read with YAML
    alone (the full config check loads every model class, TensorFlow with it), so the job lock is
    keyed on the store the job will use before anything heavy is imported."""
    import yaml

    value = None
    try:
        value = ((yaml.safe_load(open(args.config)) or {}).get("tracking") or {}).get("tracking_uri")
    except (OSError, yaml.YAMLError, AttributeError):
        pass  # the full check reports a bad config file with its reason
    for item in args.overrides:
        key, _, v = item.partition("=")
        if key.strip() == "tracking.tracking_uri":
            value = v.strip()
    return value or None
