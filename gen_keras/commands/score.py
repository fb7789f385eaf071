"""``gen-keras score --export DIR | --run-id ID --data DATASET --out scores.csv``: per-example
anomaly scores (AE reconstruction error, VAE negative ELBO) of a data split, as CSV, with the
mean per class printed; logged to the run when the model came from one."""
from __future__ import annotations


from gen_keras.commands.latent import add_model_args, log_output, open_from_args, reporting_errors


def register(sub) -> None:
    p = sub.add_parser("score", help="per-example anomaly scores of a data set, written as CSV")
    add_model_args(p)
    p.add_argument("--data", required=True,
                   help="data set to score (mnist10k | npz:<path> | folder:<path> | tfds:...)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--split-seed", type=int, default=0,
                   help="for sources without their own test split: the training run's train.seed")
    p.add_argument("--limit", type=int, default=0, help="score the first N images (0 = all)")
    p.add_argument("--samples", type=int, default=8,
                   help="VAEs: draws of z per image for the negative ELBO")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="CSV")
    p.set_defaults(func=run)


def run(args) -> int:
    return reporting_errors("score", _run, args)


def _run(args) -> int:
    from gen_keras.anomaly import per_class_means, score_export, write_scores_csv
    from gen_keras.latent import load_images

    if args.samples < 1:
        raise ValueError(f"--samples {args.samples} must be >= 1")
    m = open_from_args(args)
    x, y = load_images(args.data, args.split, m.image_shape, m.value_range, args.limit,
                       seed=args.split_seed)
    scores = score_export(m, x, y if m.conditional else None, samples=args.samples, seed=args.seed)
    write_scores_csv(args.out, scores, y)
    what = ("negative ELBO (nats)" if m.adapter.for_task("score").input_for("noise") is not None
            else "reconstruction error")
    print(f"wrote {args.out}: {len(scores)} scores, {what}; mean {scores.mean():.3f}")
    if (y >= 0).any():
        for c, v in per_class_means(scores, y).items():
            print(f"  class {c}: mean {v:.3f}")
    log_output(args, args.out, "scores")
    return 0
