"""``gen-keras prepare --config CFG [--set ...] [--beam -- BEAM OPTIONS]``: prepare the config's
``folder:`` data set now (training prepares it on first use anyway), in this process and its
decoding workers or as an Apache Beam pipeline; prints the summary. See docs/data.md.

    gen-keras prepare --config pipelines/configs/stylegan_scenes64.yaml
    gen-keras prepare --config my.yaml --beam -- --runner=DirectRunner --direct_num_workers=2
    gen-keras prepare --config my.yaml --beam -- --runner=FlinkRunner --flink_master=host:8081 \\
        --environment_type=LOOPBACK
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("prepare", help="prepare a folder: data set (decode, resize, shard) once, "
                                       "optionally on Apache Beam")
    p.add_argument("--config", required=True, help="the training config (its data.dataset is a folder:)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one field, e.g. --set data.resize=pad (repeatable)")
    p.add_argument("--workers", type=int, default=0,
                   help="decoding processes without --beam (0 = one per usable core, up to 8)")
    p.add_argument("--beam", action="store_true",
                   help="write the shards with an Apache Beam pipeline (options after '--'; "
                        "default: the DirectRunner over every core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.epilog = "Apache Beam pipeline options follow a bare '--' (with --beam)."
    p.set_defaults(func=run, accepts_passthrough=True)


def run(args) -> int:
    import json
    from pathlib import Path

    from gen_keras.config_loader import load_config
    from gen_keras.data.folder_prepare import Settings, ensure_prepared
    from gen_keras.data.paths import default_data_dir
    from gen_keras.errors import ConfigError

    cfg = load_config(args.config, args.overrides)
    scheme, _, folder = cfg.data.dataset.partition(":")
    if scheme != "folder":
        raise ConfigError(f"data.dataset={cfg.data.dataset!r}: gen-keras prepare prepares folder:<path> "
                          "data sets (the others are prepared by their own loaders on first use)")
    if args.passthrough and not args.beam:
        raise ConfigError("options after '--' are Apache Beam's: add --beam")
    if args.workers < 0:
        raise ConfigError(f"--workers {args.workers} must be >= 0")
    writer = None
    if args.beam:
        import importlib.util
        import logging

        if importlib.util.find_spec("apache_beam") is None:
            raise ConfigError("--beam needs Apache Beam: pip install 'gen-keras[batch]'")
        from gen_keras.data.folder_beam import beam_part_writer

        logging.getLogger().setLevel(logging.ERROR)  # Beam's start-up chatter
        writer = beam_part_writer(args.passthrough)
    prepared = ensure_prepared(Path(folder), Settings(tuple(cfg.model.image_shape), cfg.data.resize),
                               default_data_dir(cfg.data.data_dir), workers=args.workers or None,
                               progress=not args.quiet, part_writer=writer)
    summary = prepared.summary()
    _, n_train, n_test = prepared.split(cfg.data.test_fraction)
    print(json.dumps({**summary, "train": n_train, "test": n_test}, indent=1))
    return 0
