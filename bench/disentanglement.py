"""The disentanglement benchmark (issue 16, part 7): VAE (beta = 1), beta-VAE, beta-TCVAE and
FactorVAE trained on the dSprites-like set under ONE wall-clock budget each, for several seeds;
MIG, DCI disentanglement, the FactorVAE score and the test reconstruction measured at marks of
training time (the curve of MIG against training minutes) and at the end.

    python bench/disentanglement.py                        # 4 models x 3 seeds, 5 minutes each (~1.3 h)
    python bench/disentanglement.py --models beta_tcvae --seeds 0 --minutes 2
    python bench/disentanglement.py --smoke                # seconds: a check that everything runs
    python bench/disentanglement.py --plot-from OUT.jsonl  # the MIG curve PNG of a finished run's output

Output (stdout): one JSON line per point (model, seed, mark), one per run, then one summary line
per model (mean and sd over seeds of the final MIG, DCI-D, FactorVAE score and reconstruction)
and a Markdown table for the docs. Run it alone on the machine: the budget is wall-clock time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
# The dsprites architecture of the shipped beta_tcvae / factor_vae configs, for every model.
ARCH = ["model.image_shape=[64,64,1]", "model.latent_dim=10", "model.filters=16", "model.hidden=256",
        "model.decoder=conv", "model.likelihood=bernoulli", "model.binarize=none"]
MODELS = {
    "vae": ("vae_mnist10k.yaml", ARCH),  # beta = 1: the baseline
    "beta_vae": ("beta_vae_mnist10k.yaml", [*ARCH, "model.beta=4.0", "model.warmup_steps=0"]),
    "beta_tcvae": ("beta_tcvae_dsprites.yaml", []),
    "factor_vae": ("factor_vae_dsprites.yaml", []),
}
# Targets of the issue (beta-TCVAE and FactorVAE; each also above the plain VAE's).
MIG_BAR, FACTORVAE_SCORE_BAR = 0.2, 0.7


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of each run (wall clock)")
    p.add_argument("--marks", default="", help="curve points in training minutes (default: 1, 2, 3, ..., --minutes)")
    p.add_argument("--dataset", default="dsprites:100000", help="the factor set and subset size trained on")
    p.add_argument("--samples", type=int, default=5000, help="rendered images the MIG / DCI codes come from")
    p.add_argument("--smoke", action="store_true", help="tiny: 1 seed, 2 short marks, few samples")
    p.add_argument("--outputs", default=str(ROOT / "bench_outputs"))
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--plot-from", default=None, help="only draw mig_curve.png (in --outputs) from the JSON "
                                                     "lines a run printed")
    return p.parse_args(argv)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    if args.plot_from:
        runs = [json.loads(line) for line in Path(args.plot_from).read_text().splitlines()
                if line.startswith("{") and '"curve"' in line]
        print(plot_curves(runs, Path(args.outputs)))
        return 0
    from gen_keras.config import load_config
    from gen_keras.eval import disentanglement as dm
    from gen_keras.eval.curve import QualityClock
    from gen_keras.eval.factor_eval import compiled_encoder
    from gen_keras.tracking import default_tracking_uri
    from gen_keras.training import train

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"bench: unknown model(s) {unknown}; known: {list(MODELS)}")
    seeds = [0] if args.smoke else [int(s) for s in args.seeds.split(",") if s.strip()]
    minutes = 0.05 if args.smoke else args.minutes
    marks = ([0.03, 0.05] if args.smoke else
             [float(m) for m in args.marks.split(",") if m.strip()] or
             [float(m) for m in range(1, int(minutes) + 1)] + ([minutes] if minutes % 1 else []))
    samples = 500 if args.smoke else args.samples
    dataset = "dsprites:2000" if args.smoke else args.dataset
    Path(args.outputs).mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or default_tracking_uri(Path(args.outputs) / "mlflow")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    finals: dict[str, list[dict]] = {m: [] for m in models}
    runs: list[dict] = []
    for model in models:
        config, extra = MODELS[model]
        for seed in seeds:
            overrides = [*extra, f"data.dataset={dataset}", "train.epochs=100000", "train.progress=false",
                         "train.evaluate_at_end=false", "train.export_at_end=false", f"train.seed={seed}",
                         "train.batch_size=64", "tracking.experiment=gen-keras-bench",
                         f"tracking.run_name=bench-dis-{model}-s{seed}-{stamp}",
                         f"tracking.outputs_dir={args.outputs}"]
            if args.smoke:
                overrides += ["data.limit_train=512", "data.limit_test=128"]
            cfg = load_config(CONFIGS / config, overrides)

            traced = {}  # one traced encoder per run: it reads the variables as they train

            def measure(m, seed=seed, traced=traced):
                if "encode" not in traced:
                    traced["encode"] = compiled_encoder(m)
                scores = dm.disentanglement_metrics(traced["encode"], dataset, num_samples=samples, seed=seed)
                return {k: round(float(scores[k]), 4) for k in ("mig", "dci_disentanglement", "factorvae_score")}

            def report(point, model=model, seed=seed):
                print(json.dumps({"model": model, "seed": seed, **point}), flush=True)

            clock = QualityClock(marks, measure, report)
            started = time.time()
            result = train(cfg, tracking_uri=uri, callbacks=[clock])
            final = {**clock.points[-1], "reconstruction": reconstruction(result.model, cfg)}
            finals[model].append(final)
            runs.append({"model": model, "seed": seed, "run_id": result.run_id, "budget_minutes": minutes,
                         "wall_minutes": round((time.time() - started) / 60, 2),
                         "load_average": round(os.getloadavg()[0], 1), "final": final, "curve": clock.points})
            print(json.dumps(runs[-1]), flush=True)
    summary = {m: summarize(finals[m]) for m in models if finals[m]}
    for m, s in summary.items():
        print(json.dumps({"model": m, "seeds": len(finals[m]), "summary": s,
                          "targets": targets(m, s, summary)}), flush=True)
    print(table(summary, len(seeds), minutes))
    print(plot_curves(runs, Path(args.outputs)), file=sys.stderr)
    return 0


def mean_curves(runs: list[dict]) -> dict[str, list[dict]]:
    """Per model, the mean over seeds of MIG (and the training minutes) at each mark."""
    by_model: dict[str, dict[float, list[dict]]] = {}
    for run in runs:
        for point in run["curve"]:
            by_model.setdefault(run["model"], {}).setdefault(point["mark_minutes"], []).append(point)
    return {model: [{"mark_minutes": mark, "train_minutes": statistics.fmean(p["train_minutes"] for p in pts),
                     "mig": statistics.fmean(p["mig"] for p in pts)}
                    for mark, pts in sorted(marks.items())]
            for model, marks in by_model.items()}


def plot_curves(runs: list[dict], outputs: Path) -> Path:
    """``mig_curve.png`` in ``outputs``: mean MIG over seeds against training minutes, per model."""
    from gen_keras.eval.curve import curve_png

    path = outputs / "mig_curve.png"
    curve_png(mean_curves(runs), path, "mig")
    return path


def reconstruction(model, cfg) -> float:
    """Mean negative log-likelihood of 1,000 test images under the model's own decoder
    likelihood at the posterior mean (nats per image; lower is better)."""
    import numpy as np

    from gen_keras.data import load_split_arrays

    x, _ = load_split_arrays(cfg, "test", limit=1000)
    mean = model.encode(x)[0]
    return round(float(-np.mean(np.asarray(model.log_likelihood(x, model.decoder_output(mean))))), 2)


def summarize(finals: list[dict]) -> dict:
    out = {}
    for key in ("mig", "dci_disentanglement", "factorvae_score", "reconstruction"):
        values = [f[key] for f in finals]
        out[key] = {"mean": round(statistics.fmean(values), 4),
                    "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
    return out


def targets(model: str, s: dict, summary: dict) -> dict:
    if model not in ("beta_tcvae", "factor_vae"):
        return {}
    vae = summary.get("vae", {}).get("mig", {}).get("mean")
    mig, fvs = s["mig"]["mean"], s["factorvae_score"]["mean"]
    return {"mig": {"value": mig, "bar": f">= {MIG_BAR} and > vae's {vae}",
                    "met": mig >= MIG_BAR and (vae is None or mig > vae)},
            "factorvae_score": {"value": fvs, "bar": f">= {FACTORVAE_SCORE_BAR}", "met": fvs >= FACTORVAE_SCORE_BAR}}


def table(summary: dict, seeds: int, minutes: float) -> str:
    rows = [f"{seeds} seed(s), {minutes:g} training minutes each (final values, mean ± sd)\n",
            "| model | MIG | DCI-D | FactorVAE score | reconstruction (nats) |",
            "|---|---|---|---|---|"]
    for m, s in summary.items():
        cells = [f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" for k in ("mig", "dci_disentanglement", "factorvae_score")]
        rows.append(f"| {m} | " + " | ".join(cells) + f" | {s['reconstruction']['mean']:.1f} ± {s['reconstruction']['sd']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
