"""``gen-keras latent {interpolate,arithmetic,gan-arithmetic,traverse,manifold,scatter}``: pictures of a latent
space from an export folder or an MLflow run, written as PNG and logged to the run.

Examples::

    gen-keras latent interpolate --export outputs/exports/vae-1 --out interp.png --method both
    gen-keras latent arithmetic  --run-id 3f2a... --from-class 1 --to-class 7 --out arith.png
    gen-keras latent interpolate --export STYLEGAN_DIR --space w --out interp_w.png
    gen-keras latent gan-arithmetic --export STYLEGAN_DIR --plus 7 --minus 1 --onto 4 --out vec.png
    gen-keras latent traverse    --export DIR --dims 0,1,2,3 --out traverse.png
    gen-keras latent manifold    --export DIR --n 15 --out manifold.png
    gen-keras latent scatter     --export DIR --limit 2000 --out scatter.png
"""
from __future__ import annotations

import sys

TOOLS = ("interpolate", "arithmetic", "gan-arithmetic", "traverse", "manifold", "scatter")


def add_model_args(p) -> None:
    """--export DIR | --run-id ID [--tracking-uri URI] (shared with ``gen-keras score``)."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--export", metavar="DIR", help="an export folder (manifest.json + ONNX)")
    which.add_argument("--run-id", metavar="ID", help="an MLflow run whose 'export' artifact to use")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow/mlflow.db)")
    p.add_argument("--no-log", action="store_true",
                   help="do not attach the output to the MLflow run (with --run-id)")


def add_data_args(p, limit: int = 2000) -> None:
    p.add_argument("--data", default="mnist10k",
                   help="data set whose images are encoded (mnist10k | npz:<path> | folder:<path> | tfds:...)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=limit, help="use the first N images (0 = all)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="for sources without their own test split: the training run's train.seed")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def register(sub) -> None:
    p = sub.add_parser("latent", help="latent-space pictures (interpolation, arithmetic, "
                                      "traversal, manifold, scatter) from an export or a run")
    tools = p.add_subparsers(dest="tool", metavar="TOOL")
    tools.required = True

    def tool(name, help_):
        t = tools.add_parser(name, help=help_)
        add_model_args(t)
        t.add_argument("--out", required=True, metavar="PNG", help="the PNG to write")
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--scale", type=int, default=2, help="pixel scale of image grids")
        t.set_defaults(func=run)
        return t

    for add in (_interpolate_args, _arithmetic_args, _gan_arithmetic_args, _traverse_args, _manifold_args,
                _scatter_args):
        add(tool)


def _interpolate_args(tool) -> None:
    t = tool("interpolate", "strips between pairs of encoded test images (or prior codes)")
    add_data_args(t)
    t.add_argument("--pairs", type=int, default=4)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--method", choices=["linear", "slerp", "both"], default="slerp")
    t.add_argument("--prior", action="store_true",
                   help="interpolate between codes from the N(0, I) prior (automatic for GANs)")
    t.add_argument("--label", type=int, default=None,
                   help="conditional models: the class of every pair (default: a random class each)")
    t.add_argument("--space", choices=["z", "w"], default="z",
                   help="w: between the styles w of prior codes (style-based exports; linear by default)")


def _arithmetic_args(tool) -> None:
    t = tool("arithmetic", "attribute vector mean(z|to) - mean(z|from) added to codes of 'from'")
    add_data_args(t)
    t.add_argument("--from-class", type=int, required=True)
    t.add_argument("--to-class", type=int, required=True)
    t.add_argument("--count", type=int, default=8, help="rows (images of the from-class)")
    t.add_argument("--scales", type=_floats, default=[0.0, 0.5, 1.0, 1.5, 2.0],
                   help="multiples of the vector, comma-separated")


def _gan_arithmetic_args(tool) -> None:
    t = tool("gan-arithmetic", "generated samples labelled by the evaluator: code(onto) + s (mean code|plus - "
                               "mean code|minus), in w (style-based) or z")
    t.add_argument("--plus", type=int, required=True, help="class A of mean(code | A)")
    t.add_argument("--minus", type=int, required=True, help="class B of - mean(code | B)")
    t.add_argument("--onto", type=int, required=True, help="class C whose samples the vector is added to")
    t.add_argument("--space", choices=["w", "z"], default="w", help="w (style-based exports) or z (any generator)")
    t.add_argument("--samples", type=int, default=2000, help="generated samples the class means are taken over")
    t.add_argument("--count", type=int, default=8, help="rows (samples of the onto class)")
    t.add_argument("--scales", type=_floats, default=[0.0, 0.5, 1.0, 1.5, 2.0],
                   help="multiples of the vector, comma-separated")
    t.add_argument("--data", default="mnist10k", help="the data set whose evaluator labels the samples")


def _traverse_args(tool) -> None:
    t = tool("traverse", "vary one latent dimension per row, the others fixed")
    add_data_args(t, limit=0)
    t.add_argument("--dims", default="all", help="comma-separated dimensions, or 'all'")
    t.add_argument("--steps", type=int, default=9)
    t.add_argument("--span", type=float, default=3.0, help="values from -span to +span around the base")
    t.add_argument("--index", type=int, default=None,
                   help="start from the code of this test image (default: the prior mean 0 for "
                        "models with an encoder, a --seed draw from the prior for GANs)")
    t.add_argument("--prior-draw", action="store_true",
                   help="start from a --seed draw from N(0, I) instead of its mean: in a "
                        "high-dimensional latent the mean lies where the prior has almost no "
                        "mass, and a GAN decodes it as a faint blob")
    t.add_argument("--label", type=int, default=None, help="conditional models: the class")
    t.add_argument("--factors", default="auto",
                   help="a factor data set (dsprites, shapes3d): label each row with the factor its "
                        "dimension moves most (by mutual information) and order the rows by factor; "
                        "'auto': the run's data.dataset when --run-id names a run trained on one; "
                        "'none': plain rows")


def _manifold_args(tool) -> None:
    t = tool("manifold", "decode an n x n grid over two latent dimensions (Gaussian quantiles)")
    t.add_argument("--n", type=int, default=15)
    t.add_argument("--dims", type=_ints, default=[0, 1])
    t.add_argument("--label", type=int, default=None, help="conditional models: the class")


def _scatter_args(tool) -> None:
    t = tool("scatter", "encoded test images coloured by label (PCA for latent > 2)")
    add_data_args(t)
    t.add_argument("--size", type=int, default=640)


def open_from_args(args):
    from gen_keras.latent.loading import open_model

    return open_model(args.export, args.run_id, args.tracking_uri)


def log_output(args, path, artifact_path: str) -> None:
    """Attach ``path`` to the MLflow run when the model came from one."""
    from gen_keras.latent.loading import log_to_run

    if args.run_id and not args.no_log:
        log_to_run(args.run_id, path, args.tracking_uri, artifact_path)
        print(f"logged to MLflow run {args.run_id} under {artifact_path}/")


def run(args) -> int:
    return reporting_errors(f"latent {args.tool}", _run, args)


def reporting_errors(command: str, fn, args) -> int:
    """``fn(args)``, with a bad model, argument or input printed as one line and exit code 2."""
    from gen_keras.errors import GenKerasError

    try:
        return fn(args)
    except (ValueError, GenKerasError) as exc:
        print(f"gen-keras {command}: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import numpy as np

    from gen_keras import latent
    from gen_keras.images import image_grid, save_png

    m = open_from_args(args)
    rng = np.random.default_rng(args.seed)

    def images():
        return latent.load_images(args.data, args.split, m.image_shape, m.value_range,
                                  args.limit, seed=args.split_seed)

    if args.tool == "scatter":
        x, y = images()
        save_png(latent.encoded_scatter(m, x, y, size=args.size), args.out, scale=1)
    else:
        if args.tool == "interpolate":
            grid, ncols = _interpolate(args, m, rng, images)
        elif args.tool == "gan-arithmetic":
            grid, ncols = _gan_arithmetic(args, m)
        elif args.tool == "arithmetic":
            x, y = images()
            grid, ncols = latent.arithmetic_grid(m, x, y, args.from_class, args.to_class,
                                                 args.count, args.scales, args.seed)
        elif args.tool == "traverse":
            dims = None if args.dims == "all" else _ints(args.dims)
            base, label = None, args.label
            if args.index is not None:
                x, y = images()
                if not 0 <= args.index < len(x):
                    raise ValueError(f"--index {args.index} is outside the {len(x)} images")
                label = int(y[args.index]) if label is None else label
                base = m.encode(x[args.index:args.index + 1], [label] if m.conditional else None)
            elif args.prior_draw or not m.has_encoder:
                base = np.random.default_rng(args.seed).standard_normal((1, m.latent_dim))
            table = _code_factors(args, m)
            if table is not None:
                dims = table.order(dims)
            grid, ncols = latent.traversal_grid(m, base, dims, args.steps, args.span,
                                                label if m.conditional else None)
            if table is not None:
                from gen_keras.eval.factor_codes import labelled_rows

                grid = labelled_rows(image_grid(grid, ncols, m.value_range), [table.label(j) for j in dims])
                save_png(grid, args.out, scale=args.scale)
                print(f"wrote {args.out} (rows: {', '.join(table.label(j) for j in dims)})")
                log_output(args, args.out, "latent")
                return 0
        else:
            grid, ncols = latent.manifold_grid(m, args.n, args.dims,
                                               args.label if m.conditional else None)
        save_png(image_grid(grid, ncols, m.value_range), args.out, scale=args.scale)
    print(f"wrote {args.out}")
    log_output(args, args.out, "latent")
    return 0


def _code_factors(args, m):
    """The factor of each code dimension (gen_keras.eval.factor_codes) when ``--factors`` names
    a factor data set, or 'auto' finds one as the run's ``data.dataset``; else None."""
    from gen_keras.data.factor_specs import is_factor_dataset

    dataset = args.factors
    if dataset == "auto":
        dataset = None
        if args.run_id:
            from mlflow import MlflowClient

            from gen_keras.tracking import default_tracking_uri, logged_config

            client = MlflowClient(args.tracking_uri or default_tracking_uri())
            dataset = logged_config(client, args.run_id).get("data.dataset")  # its config.yaml
    if not dataset or dataset == "none" or not is_factor_dataset(dataset) or not m.has_encoder or m.conditional:
        if args.factors not in ("auto", "none") and not is_factor_dataset(args.factors):
            raise ValueError(f"--factors {args.factors!r} is not a factor data set (dsprites, shapes3d)")
        return None
    from gen_keras.eval.factor_codes import code_factors

    return code_factors(m.encode, dataset, seed=args.seed, value_range=m.value_range)


def _interpolate(args, m, rng, images):
    import numpy as np

    from gen_keras import latent

    methods = ["linear", "slerp"] if args.method == "both" else [args.method]
    n = args.pairs
    if n < 1:
        raise ValueError(f"--pairs {n} must be >= 1")
    if args.space == "w":  # between the styles of prior codes
        codes = m.sample_latent(2 * n, args.seed)
        rows = [latent.w_interpolation_strips(m, codes[i:i + 1], codes[n + i:n + i + 1], args.steps, meth)
                for i in range(n) for meth in methods]
        return np.concatenate(rows), args.steps
    if args.prior or not m.has_encoder:
        labels = _pair_labels(args, m, rng, n)
        codes = m.sample_latent(2 * n, args.seed)
        starts, ends = codes[:n], codes[n:]
        rows = [latent.interpolation_strips(m, starts[i:i + 1], ends[i:i + 1], args.steps, meth,
                                            None if labels is None else labels[i:i + 1])
                for i in range(n) for meth in methods]
        return np.concatenate(rows), args.steps
    x, y = images()
    labels = _pair_labels(args, m, rng, n, y)
    pairs = []
    for i in range(n):  # conditional: both images of a pair come from the pair's class
        pool = np.arange(len(x)) if labels is None else np.flatnonzero(y == labels[i])
        if len(pool) < 2:
            raise ValueError(f"fewer than 2 images of class {labels[i]} in --data {args.data}")
        pairs.append(rng.choice(pool, 2, replace=False))
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    rows = [latent.image_interpolation_strips(m, x[a[i:i + 1]], x[b[i:i + 1]], args.steps, meth,
                                              None if labels is None else labels[i:i + 1])
            for i in range(n) for meth in methods]
    return np.concatenate(rows), args.steps + 2


def _gan_arithmetic(args, m):
    import json

    from gen_keras.config import DataConfig, RunConfig
    from gen_keras.config_loader import model_config_from_dict
    from gen_keras.eval.evaluator import get_evaluator
    from gen_keras.latent.wspace import vector_arithmetic

    evaluator = get_evaluator(RunConfig(model=model_config_from_dict(m.model_config),
                                        data=DataConfig(dataset=args.data)))
    result = vector_arithmetic(m, lambda images: evaluator.predict(images, m.value_range), args.plus,
                               args.minus, args.onto, space=args.space, samples=args.samples,
                               count=args.count, scales=args.scales, seed=args.seed)
    # What the evaluator reads in the moved images, per scale (one JSON line, for scripts).
    print(json.dumps({"space": args.space, "plus": args.plus, "minus": args.minus, "onto": args.onto,
                      "class_counts": result.counts, "shares": result.shares}))
    return result.grid, result.columns


def _pair_labels(args, m, rng, n, y=None):
    import numpy as np

    if not m.conditional:
        return None
    if args.label is not None:
        m.check_labels([args.label], 1)
        return np.full(n, args.label, np.int32)
    classes = np.unique(y) if y is not None else np.arange(m.num_classes)
    return rng.choice(classes, n).astype(np.int32)
