"""The representation sweep (issue 26, part 5): how useful a VAE's codes are at 100 labels, against
raw pixels and PCA of the same width, for a few recipes (latent width, beta, training length).

    python bench/representation.py --trial latent=10 --set model.latent_dim=10
    python bench/representation.py --config vae_repr_mnist10k.yaml --trial shipped

Each trial trains through ``gen_keras.training.train`` (no end-of-training evaluation), then runs
:func:`gen_keras.eval.probes.representation_report` on the codes of the same images the end of
training probes (at most 5,000 train / 2,000 test), with ``--draws`` class-balanced draws of the
few-label probes (their mean is the figure). One JSON line per trial: settings, training minutes,
and every probe for codes, pixels and PCA.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="vae_mnist10k.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--trial", default="", help="a label for the JSON line")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--outputs", default=str(ROOT / "bench_outputs"))
    args = p.parse_args(argv)

    from gen_keras.config_loader import load_config
    from gen_keras.data import load_split_arrays
    from gen_keras.eval import PROBE_TEST_IMAGES, PROBE_TRAIN_IMAGES
    from gen_keras.eval.factor_eval import compiled_encoder
    from gen_keras.eval.probes import representation_report
    from gen_keras.tracking import default_tracking_uri
    from gen_keras.training import train

    cfg = load_config(CONFIGS / args.config, [*args.set, "train.progress=false", "train.evaluate_at_end=false",
                                              "train.export_at_end=false", "tracking.experiment=gen-keras-bench",
                                              f"tracking.outputs_dir={args.outputs}",
                                              f"tracking.run_name=bench-repr-{time.strftime('%H%M%S')}"])
    started = time.time()
    result = train(cfg, tracking_uri=default_tracking_uri(Path(args.outputs) / "mlflow"))
    minutes = (time.time() - started) / 60
    x_train, y_train = load_split_arrays(cfg, "train", limit=PROBE_TRAIN_IMAGES)
    x_test, y_test = load_split_arrays(cfg, "test", limit=PROBE_TEST_IMAGES)
    encode = compiled_encoder(result.model)
    codes_train, codes_test = encode(x_train), encode(x_test)
    report = representation_report(codes_train, y_train, codes_test, y_test, x_train, x_test,
                                   seed=cfg.train.seed, draws=args.draws)
    print(json.dumps({"trial": args.trial, "config": args.config, "settings": args.set,
                      "train_minutes_with_setup": round(minutes, 2), "epochs": cfg.train.epochs,
                      "load_average": round(os.getloadavg()[0], 2),
                      **{k: round(v, 4) for k, v in report.items()},
                      "margin_100_vs_best_baseline": round(
                          report["probe_100_labels_codes"] - max(report["probe_100_labels_pixels"],
                                                                 report["probe_100_labels_pca"]), 4)}),
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
