"""The translation benchmark: train each image-to-image config (pipelines/configs) on its task
with a fixed seed and its config's budget, then print one JSON line per run with the numbers it
is judged by and the issue's bars (issue 17).

    python bench/translation.py                          # sr_l1, srgan, pix2pix x2, cyclegan, full budget
    python bench/translation.py --configs sr_l1_sr4,srgan_sr4
    python bench/translation.py --smoke                  # 1 epoch on 512 examples: a check that all runs

Lines (stdout, JSON): the config, kind, task, epochs, the run's wall and CPU minutes, every metric
of the task (gen_keras.eval.translation: PSNR / SSIM / evaluator accuracy / FID against the
bicubic and nearest-neighbour baselines for x4 super-resolution; L1 in the hole and accuracy for
inpainting; the FCN score and FID for label map -> scene; class preservation, cycle L1 and FID
per domain for CycleGAN) and ``targets`` (value, bar, met). SRGAN's bars compare it with the
``sr_l1`` line of the SAME invocation (run ``sr_l1_sr4`` first, as the default order does).
Everything is tracked in MLflow (experiment ``gen-keras-bench``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
DEFAULT = ("sr_l1_sr4", "srgan_sr4", "pix2pix_inpaint", "pix2pix_scenes", "cyclegan_mnistm")

# The bars (issue 17, "Targets").
SR_ACCURACY_BAR = 0.98
SR_L1_PSNR_BAR = 20.5
SRGAN_FID_FACTOR, SRGAN_PSNR_GAP = 0.5, 1.5
INPAINT_ACCURACY_BAR = 0.97
FCN_PIXEL_ACCURACY_BAR = 0.90
CLASS_PRESERVATION_BAR = 0.95
MINUTES_BAR = 15.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(DEFAULT), help="comma-separated config names")
    p.add_argument("--smoke", action="store_true", help="1 epoch on 512 examples, 256 test examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outputs", default=str(ROOT / "bench_outputs"))
    p.add_argument("--tracking-uri", default=None, help="default: a SQLite store under --outputs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (repeatable)")
    return p.parse_args(argv)


def targets(kind: str, metrics: dict, minutes: float, baseline: dict | None, task: str = "") -> dict:
    t = {}

    def bar(name, value, limit, ok):
        t[name] = {"value": value, "bar": limit, "met": bool(ok)}

    fid = next((k for k in metrics if k.startswith("fid_")), None)
    if kind in ("sr_l1", "srgan"):
        acc = metrics.get("evaluator_accuracy")
        bar("evaluator_accuracy", acc, f">= {SR_ACCURACY_BAR}", acc is not None and acc >= SR_ACCURACY_BAR)
    if kind == "sr_l1":
        bar("psnr", metrics.get("psnr"), f">= {SR_L1_PSNR_BAR}", metrics.get("psnr", 0) >= SR_L1_PSNR_BAR)
    if kind == "srgan" and baseline is not None and fid:
        limit = SRGAN_FID_FACTOR * baseline[fid]
        bar(fid, metrics[fid], f"<= {SRGAN_FID_FACTOR} x sr_l1 {baseline[fid]:.4f}", metrics[fid] <= limit)
        gap = baseline["psnr"] - metrics["psnr"]
        bar("psnr_gap_to_sr_l1", gap, f"<= {SRGAN_PSNR_GAP} dB", gap <= SRGAN_PSNR_GAP)
    if kind == "pix2pix" and task.startswith("pairs:scenes"):
        acc = metrics.get("fcn_pixel_accuracy")
        bar("fcn_pixel_accuracy", acc, f">= {FCN_PIXEL_ACCURACY_BAR}", acc is not None and acc >= FCN_PIXEL_ACCURACY_BAR)
    elif kind == "pix2pix":
        acc = metrics.get("evaluator_accuracy")
        bar("evaluator_accuracy", acc, f">= {INPAINT_ACCURACY_BAR}", acc is not None and acc >= INPAINT_ACCURACY_BAR)
    if kind == "cyclegan":
        for d in ("a2b", "b2a"):
            v = metrics.get(f"class_preservation_{d}")
            bar(f"class_preservation_{d}", v, f">= {CLASS_PRESERVATION_BAR}", v is not None and v >= CLASS_PRESERVATION_BAR)
    # The run's wall clock (training, evaluation, saving): an upper bound of the training time.
    bar("run_minutes", round(minutes, 2), f"<= {MINUTES_BAR}", minutes <= MINUTES_BAR)
    return t


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    from gen_keras.config_loader import load_config
    from gen_keras.tracking import default_tracking_uri
    from gen_keras.training import train

    Path(args.outputs).mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or default_tracking_uri(Path(args.outputs) / "mlflow")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    budget = "smoke" if args.smoke else "full"
    baseline = None
    failed = False
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        overrides = [f"tracking.outputs_dir={args.outputs}", "tracking.experiment=gen-keras-bench",
                     f"tracking.run_name=bench-{name}-{budget}-{stamp}", "train.progress=false",
                     "train.evaluate_at_end=true", "train.export_at_end=false", f"train.seed={args.seed}"]
        if args.smoke:
            overrides += ["train.epochs=1", "data.limit_train=512", "data.limit_test=256"]
        cfg = load_config(CONFIGS / f"{name}.yaml", overrides + list(args.overrides))
        kind = cfg.model.kind
        line = {"config": name, "model": kind, "task": cfg.data.dataset, "budget": budget,
                "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size, "seed": args.seed}
        try:
            cpu = _cpu_seconds()
            started = time.time()
            result = train(cfg, tracking_uri=uri)
            run_minutes = result.minutes
            metrics = {k: round(float(v), 6) for k, v in result.final_metrics.items()}
        except Exception as exc:  # one failed run never hides the others' lines
            print(json.dumps({**line, "error": f"{type(exc).__name__}: {exc}"[:500]}), flush=True)
            failed = True
            continue
        if kind == "sr_l1":
            baseline = metrics
        line.update(run_minutes=round(run_minutes, 2), cpu_minutes=round((_cpu_seconds() - cpu) / 60, 2),
                    wall_minutes=round((time.time() - started) / 60, 2), run_id=result.run_id,
                    metrics=metrics, targets=targets(kind, metrics, run_minutes, baseline, cfg.data.dataset))
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    raise SystemExit(main())
