"""The quality benchmark: train every registered model kind on mnist10k with a fixed seed and its
config's budget, then print one JSON line per model with the numbers it is judged by.

    python bench/quality.py                      # full budget (each pipelines/configs/<kind>_mnist10k.yaml)
    python bench/quality.py --kinds vae,dcgan    # a subset
    python bench/quality.py --smoke              # seconds per kind: a check that everything runs
    python bench/quality.py --curve dcgan,dcgan_aug_mnist10k,stylegan   # FID at 1, 2, 4, 8, 16 training minutes

Lines (stdout, JSON):
- ``{"model": "real_data_floor", ...}`` first: 2,000 (N) real TRAIN images against the test split
  under the same evaluator and N — the best FID/KID a generator can be expected to reach;
- one line per kind: training minutes and epochs, the sample count N, for the VAE family the test
  ELBO and the importance-weighted NLL (k = 5000 by default, on the seeded binarized test split),
  for every generator FID, KID, precision/recall, density/coverage, classes covered, class KL and
  (conditional kinds) conditional accuracy, plus the product targets each kind is held to
  (``targets``: value, bar, met).

Everything is also tracked in MLflow (experiment ``gen-keras-bench``; the metrics are logged to
each kind's run). The data set, seed and evaluation settings are fixed, so two lines compare.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"

# The bar each figure is held to (issue 8). A kind missing here is still measured.
VAE_NLL_BAR_NATS, VAE_MINUTES_BAR = 100.0, 5.0
DCGAN_MINUTES_BAR, DCGAN_FID_FACTOR, DCGAN_KL_BAR = 16.0, 1.5, 0.05
CONDITIONAL_ACCURACY_BAR = 0.90


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="seconds per kind: 1 epoch on 512 images, 256 samples, k = 10")
    p.add_argument("--kinds", default="", help="comma-separated kinds (default: every kind with a "
                                               "pipelines/configs/<kind>_mnist10k.yaml)")
    p.add_argument("--num-samples", type=int, default=None, help="N for the sample metrics "
                   "(default 2000; smoke 256)")
    p.add_argument("--iwae-k", type=int, default=None, help="importance samples (default 5000; smoke 10)")
    p.add_argument("--nll-max-minutes", type=float, default=1.5,
                   help="time cap of the NLL of each VAE-family model other than the default VAE "
                        "(whose NLL is a target and always covers the whole test split): when the "
                        "full test split at k would take longer (measured decoder speed), the first "
                        "test images that fit are used and the line says how many (nll_test_images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outputs", default=str(ROOT / "bench_outputs"),
                   help="checkpoints, samples and the local MLflow store go here")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: a SQLite store under --outputs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every kind (repeatable)")
    p.add_argument("--curve", default="", metavar="RECIPES",
                   help="time to quality: for each recipe (a kind, i.e. pipelines/configs/<kind>_mnist10k.yaml, "
                        "or a config name in pipelines/configs), train until the last of --marks and "
                        "measure the sample metrics at each mark of training wall-clock time")
    p.add_argument("--marks", default="1,2,4,8,16", help="training minutes of the curve's points")
    return p.parse_args(argv)


def bench_kinds(requested: str) -> list[str]:
    from gen_keras.models import model_kinds

    known = model_kinds()
    if requested:
        kinds = [k.strip() for k in requested.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise SystemExit(f"bench: unknown kind(s) {unknown}; registered: {known}")
    else:
        kinds = known
    missing = [k for k in kinds if not (CONFIGS / f"{k}_mnist10k.yaml").is_file()]
    for k in missing:
        print(f"bench: skipping {k}: no pipelines/configs/{k}_mnist10k.yaml", file=sys.stderr)
    return [k for k in kinds if k not in missing]


def run_overrides(args, kind: str, stamp: str) -> list[str]:
    out = [f"tracking.outputs_dir={args.outputs}", "tracking.experiment=gen-keras-bench",
           f"tracking.run_name=bench-{kind}-{'smoke' if args.smoke else 'full'}-{stamp}",
           "train.progress=false", "train.evaluate_at_end=false", "train.export_at_end=false",
           f"train.seed={args.seed}", "data.dataset=mnist10k"]
    if args.smoke:
        out += ["train.epochs=1", "data.limit_train=512", "train.batch_size=64",
                "data.limit_test=256"]
    return out + list(args.overrides)


def real_data_floor(cfg, num_samples: int, seed: int, evaluator) -> dict:
    """N real train images (a seeded draw) against the first N test images."""
    import numpy as np

    from gen_keras.eval.evaluator import split_in_unit_range
    from gen_keras.eval.samples import compare_features, reference_set

    real, real_labels = reference_set(cfg, num_samples)
    n = len(real)
    train_x, _ = split_in_unit_range(cfg, "train")
    draw = train_x[np.random.default_rng(seed).choice(len(train_x), n, replace=False)]
    rf, rc = evaluator.features_and_classes(real, type(cfg.model).value_range)
    tf_, tc = evaluator.features_and_classes(draw, (0.0, 1.0))
    return compare_features(rf, rc, tf_, tc, evaluator.num_classes, seed=seed)


def targets_for(kind: str, model, metrics: dict, minutes: float, n: int, k: int,
                floor: dict) -> dict:
    """The issue's bars that apply to this kind: {name: {"value", "bar", "met"}}."""
    from gen_keras.eval import is_vae_family

    t = {}

    def bar(name, value, limit, ok):
        t[name] = {"value": value, "bar": limit, "met": bool(ok)}

    # Every generator with a prior to sample from (VAE family, GANs). A plain, denoising or
    # linear autoencoder has none: its ``generate`` decodes N(0, I) codes it never trained on,
    # so its sample metrics are printed for comparison but held to no bar.
    if getattr(model, "has_prior", True):
        bar("classes_covered", metrics.get("classes_covered"), "== classes_total",
            metrics.get("classes_covered") == metrics.get("classes_total"))
    if kind == "vae" and is_vae_family(model):
        nll = metrics.get(f"test_nll_k{k}_nats")
        bar(f"test_nll_k{k}_nats", nll, f"<= {VAE_NLL_BAR_NATS}",
            nll is not None and nll <= VAE_NLL_BAR_NATS and k >= 5000)
        bar("train_minutes", round(minutes, 2), f"<= {VAE_MINUTES_BAR}", minutes <= VAE_MINUTES_BAR)
    if kind == "dcgan":
        fid, floor_fid = metrics.get(f"fid_{n}"), floor.get(f"fid_{n}")
        bar(f"fid_{n}", fid, f"<= {DCGAN_FID_FACTOR} x floor {floor_fid:.3f}",
            fid is not None and floor_fid is not None and fid <= DCGAN_FID_FACTOR * floor_fid)
        kl = metrics.get(f"class_kl_{n}")
        bar(f"class_kl_{n}", kl, f"<= {DCGAN_KL_BAR}", kl is not None and kl <= DCGAN_KL_BAR)
        bar("train_minutes", round(minutes, 2), f"<= {DCGAN_MINUTES_BAR}",
            minutes <= DCGAN_MINUTES_BAR)
    if type(model.config).conditional:
        acc = metrics.get(f"conditional_accuracy_{n}")
        bar(f"conditional_accuracy_{n}", acc, f">= {CONDITIONAL_ACCURACY_BAR}",
            acc is not None and acc >= CONDITIONAL_ACCURACY_BAR)
    return t


def likelihood(model, cfg, k: int, seed: int, max_minutes: float, metrics) -> dict:
    """ELBO / IWAE NLL on the test split (capped by ``max_minutes``), added to ``metrics``."""
    from gen_keras.data import load_split_arrays
    from gen_keras.eval.likelihood import iwae_bounds

    images, labels = load_split_arrays(cfg, "test", limit=cfg.data.limit_test)
    labels = labels if type(model.config).conditional else None
    probe = dict(labels=None if labels is None else labels[:20], k=100, seed=seed)
    iwae_bounds(model, images[:20], **probe)  # the first call traces the compiled functions
    t = time.time()
    iwae_bounds(model, images[:20], **probe)
    decodes_per_s = 2000 / max(time.time() - t, 1e-6)
    fit = max_minutes * 60 * decodes_per_s / k  # images that fit (inf: no cap)
    m = len(images) if fit >= len(images) else max(1, int(fit))
    result = iwae_bounds(model, images[:m], None if labels is None else labels[:m], k=k, seed=seed,
                         source=f"{cfg.data.dataset} test split (first {m} images)")
    metrics.update(result.metrics("test"))
    metrics.notes["gen_keras.eval.likelihood_data"] = result.data_note
    return {"nll_test_images": m, "nll_decodes_per_s": round(decodes_per_s)}


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    n_samples = args.num_samples or (256 if args.smoke else 2000)
    k = args.iwae_k or (10 if args.smoke else 5000)

    from gen_keras.config_loader import load_config
    from gen_keras.eval import evaluate_model, is_vae_family
    from gen_keras.eval.evaluator import get_evaluator
    from gen_keras.precision import float32_twin, resolve
    from gen_keras.tracking import default_tracking_uri
    from gen_keras.training import train

    Path(args.outputs).mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or default_tracking_uri(Path(args.outputs) / "mlflow")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kinds = [] if args.curve else bench_kinds(args.kinds)
    budget = "smoke" if args.smoke else "full"

    base_cfg = load_config(CONFIGS / "vae_mnist10k.yaml", run_overrides(args, "vae", stamp))
    started = time.time()
    evaluator = get_evaluator(base_cfg)
    floor = real_data_floor(base_cfg, n_samples, args.seed, evaluator)
    n = int(next(key.split("_")[1] for key in floor if key.startswith("fid_")))
    print(json.dumps({"model": "real_data_floor", "budget": budget,
                      "what": f"{n} real TRAIN images (seed {args.seed}) vs the first {n} test images",
                      "num_samples": n, "evaluator_test_accuracy": evaluator.test_accuracy,
                      "evaluator_minutes": round((time.time() - started) / 60, 2),
                      **{key: round(v, 6) for key, v in floor.items()}}), flush=True)

    if args.curve:
        return curves(args, stamp, uri, evaluator, floor, n, n_samples)
    for kind in kinds:
        cfg = load_config(CONFIGS / f"{kind}_mnist10k.yaml", run_overrides(args, kind, stamp))
        line = {"model": kind, "budget": budget, "epochs": cfg.train.epochs,
                "batch_size": cfg.train.batch_size, "seed": args.seed}
        try:
            cpu_before = _cpu_seconds()
            result = train(cfg, tracking_uri=uri)
            # CPU time next to wall time: on a shared machine the wall clock says little.
            line.update(train_cpu_minutes=round((_cpu_seconds() - cpu_before) / 60, 2),
                        load_average=round(os.getloadavg()[0], 1))
            # Metrics from float32 copies of the weights, whatever precision training used.
            model = float32_twin(result.model)
            line["mixed_precision"] = resolve(cfg.train.mixed_precision)
            eval_started = time.time()
            metrics = evaluate_model(model, cfg, num_samples=n_samples, seed=args.seed,
                                     likelihood=False, evaluator=evaluator)
            if is_vae_family(model):
                cap = float("inf") if kind == "vae" else args.nll_max_minutes
                line.update(likelihood(model, cfg, k, args.seed, cap, metrics))
            line.update(run_id=result.run_id, train_minutes=round(result.minutes, 2),
                        eval_minutes=round((time.time() - eval_started) / 60, 2),
                        num_samples=n, iwae_k=k if is_vae_family(model) else None,
                        **{key: round(v, 6) for key, v in metrics.items()},
                        notes=metrics.notes,
                        targets=targets_for(kind, model, metrics, result.minutes, n, k,
                                            floor))
            _log_to_run(uri, result.run_id, metrics, cfg.train.epochs)
        except Exception as exc:  # one broken kind must not hide the others' numbers
            line.update(error=f"{type(exc).__name__}: {exc}"[:2000])
        print(json.dumps(line), flush=True)
    print(json.dumps({"model": "total", "budget": budget,
                      "minutes": round((time.time() - started) / 60, 2)}), flush=True)
    return 0


def curve_config(recipe: str) -> Path:
    for path in (CONFIGS / f"{recipe}_mnist10k.yaml", CONFIGS / f"{recipe}.yaml"):
        if path.is_file():
            return path
    raise SystemExit(f"bench: --curve {recipe}: no pipelines/configs/{recipe}_mnist10k.yaml or {recipe}.yaml")


def curves(args, stamp: str, uri: str, evaluator, floor: dict, n: int, n_samples: int) -> int:
    """One JSON line per point (recipe, mark), then one per recipe with its whole curve; the
    FID curves as a PNG in --outputs (curve_fid.png)."""
    from gen_keras.config_loader import load_config
    from gen_keras.eval import evaluate_model
    from gen_keras.eval.curve import QualityClock, curve_png
    from gen_keras.precision import float32_twin
    from gen_keras.training import train

    marks = [float(m) for m in args.marks.split(",") if m.strip()]
    keys = (f"fid_{n}", f"kid_{n}", f"precision_{n}", f"recall_{n}", f"class_kl_{n}", "classes_covered")
    results = {}
    for recipe in [r.strip() for r in args.curve.split(",") if r.strip()]:
        path = curve_config(recipe)
        # Epochs are not the budget here: the clock is (the callback stops training at the last mark).
        cfg = load_config(path, run_overrides(args, recipe, stamp) + ["train.epochs=100000"]
                          + (["train.epochs=1000"] if args.smoke else []))

        def measure(model, cfg=cfg):
            m = evaluate_model(float32_twin(model), cfg, num_samples=n_samples, seed=args.seed,
                               likelihood=False, evaluator=evaluator)
            return {k: round(float(m[k]), 6) for k in keys if k in m}

        def report(point, recipe=recipe):
            print(json.dumps({"curve": recipe, "config": path.name, **point}), flush=True)

        clock = QualityClock(marks, measure, report)
        started = time.time()
        try:
            result = train(cfg, tracking_uri=uri, callbacks=[clock])
            run_id = result.run_id
        except Exception as exc:  # one broken recipe must not hide the others' curves
            print(json.dumps({"curve": recipe, "error": f"{type(exc).__name__}: {exc}"[:2000]}), flush=True)
            continue
        results[recipe] = clock.points
        print(json.dumps({"curve": recipe, "config": path.name, "run_id": run_id,
                          "wall_minutes": round((time.time() - started) / 60, 2),
                          "load_average": round(os.getloadavg()[0], 1),
                          "floor_fid": floor.get(f"fid_{n}"), "points": clock.points}), flush=True)
    if results:
        curve_png(results, Path(args.outputs) / "curve_fid.png", f"fid_{n}", floor.get(f"fid_{n}"))
    return 0 if len(results) == len([r for r in args.curve.split(",") if r.strip()]) else 1


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _log_to_run(uri: str, run_id: str | None, metrics, step: int) -> None:
    if not run_id:
        return
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    ts = int(time.time() * 1000)
    MlflowClient(tracking_uri=uri).log_batch(
        run_id, metrics=[Metric(f"eval/{key}", float(v), ts, step) for key, v in metrics.items()],
        tags=[RunTag(key, v[:5000]) for key, v in metrics.notes.items()])


if __name__ == "__main__":
    sys.exit(main())
