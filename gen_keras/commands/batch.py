"""``gen-keras batch generate|embed|score|reconstruct|translate``: a batch job on Apache Beam over
an export folder or ``models:/NAME@ALIAS``; sharded Parquet out. Beam's own options follow
``--`` (default: the DirectRunner on every core). See docs/batch.md.

    gen-keras batch generate --export outputs/exports/dcgan-1 --count 1000000 --out gen/
    gen-keras batch score --export models:/digits@champion --input npz:archive.npz --out scores/
    gen-keras batch embed --export DIR --input folder:photos/ --out emb/ -- --direct_num_workers=4
"""
from __future__ import annotations

JOBS = ("generate", "embed", "score", "reconstruct", "translate")


def register(sub) -> None:
    p = sub.add_parser("batch", help="batch generation / embedding / scoring on Apache Beam (Parquet out)")
    p.add_argument("job", choices=JOBS)
    p.add_argument("--export", required=True, metavar="DIR|models:/NAME@ALIAS",
                   help="an export folder, or a registered model (downloaded and verified first)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ URIs")
    p.add_argument("--out", required=True,
                   help="output folder for part-*.parquet: new, empty, or a finished output of this "
                        "command (replaced whole when the job has finished)")
    p.add_argument("--count", type=int, default=0, help="generate: how many images")
    p.add_argument("--seed", type=int, default=0,
                   help="generate: the first seed (item i uses seed + i); score: the noise seed")
    p.add_argument("--input", default="", help="folder:<path> | npz:<path> | a data set (its test split)")
    p.add_argument("--limit", type=int, default=0, help="use the first N input images (0 = all)")
    p.add_argument("--chunk-size", type=int, default=256, help="items per model call (fixes the output bits)")
    p.add_argument("--shards", type=int, default=0, help="output files (0 = the runner's choice)")
    p.add_argument("--png-dir", default="", help="also write one PNG file per image here")
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads per worker (0 = cores/workers)")
    p.epilog = "Apache Beam pipeline options follow a bare '--' (default: --runner=DirectRunner " \
               "--direct_num_workers=<cores> --direct_running_mode=multi_processing)."
    p.set_defaults(func=run, accepts_passthrough=True)


def run(args) -> int:
    import importlib.util

    from gen_keras.errors import ConfigError

    if importlib.util.find_spec("apache_beam") is None:
        raise ConfigError("gen-keras batch needs Apache Beam, the package's 'batch' extra: "
                          + install_batch_hint())
    if args.chunk_size < 1 or args.shards < 0 or args.limit < 0:
        raise ConfigError("--chunk-size must be >= 1, --shards and --limit >= 0")
    import logging

    from gen_keras.batch.pipeline import BatchJob
    from gen_keras.batch.pipeline import run as run_job

    # Beam's own start-up chatter (optional GCP clients, relayed worker logs) stays out of the
    # way: errors still show, and the job prints its progress and counters itself.
    logging.getLogger().setLevel(logging.ERROR)

    job = BatchJob(args.job, args.export, args.out, args.count, args.seed, args.input, args.limit,
                   args.chunk_size, args.shards, args.png_dir, args.threads, args.tracking_uri)
    counters = run_job(job, args.passthrough)
    print(f"batch {args.job} from {args.export}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    print(f"  output: {args.out.rstrip('/')}/part-*.parquet")
    return 0


def install_batch_hint() -> str:
    """The command that adds the extra where this gen-keras came from: a clone (an editable
    install of the folder holding pyproject.toml) or a package."""
    import shlex
    import sys
    from pathlib import Path

    import gen_keras

    pip = shlex.quote(str(Path(sys.executable).with_name("pip")))
    source = Path(gen_keras.__file__).resolve().parents[1]
    if (source / "pyproject.toml").is_file():
        return f"{pip} install -e {shlex.quote(str(source) + '[batch]')}"
    return f"{pip} install 'gen-keras[batch]'"
