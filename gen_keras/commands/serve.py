"""``gen-keras serve --models DIR [--model-uri models:/NAME@ALIAS ...] [--host --port --backend]``.

Thin: parse, build the settings, hand them to ``serving`` (which reads only export folders).
Nothing heavy is imported until the command runs, so ``gen-keras --help`` stays fast.
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve exported generators over HTTP (API, web page, metrics)")
    p.add_argument("--models", metavar="DIR",
                   help="a folder of export folders (each sub-folder with a manifest.json is a model "
                        "named after the folder)")
    p.add_argument("--model-uri", action="append", default=[], metavar="models:/NAME@ALIAS",
                   help="a model from the MLflow registry, by alias or version (repeatable)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for --model-uri (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--cache-dir", default=None, help="where registry models are downloaded "
                                                     "(default: a new temporary folder)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--backend", choices=["onnx", "tf"], default="onnx",
                   help="onnx = onnxruntime (default, faster here, no TensorFlow needed); "
                        "tf = the SavedModel's signatures in TensorFlow")
    p.add_argument("--max-n", type=int, default=64, help="images per request (default 64)")
    p.add_argument("--max-steps", type=int, default=64, help="interpolation frames per request")
    p.add_argument("--max-body-bytes", type=int, default=4 * 2**20,
                   help="largest accepted request body (default 4 MiB)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a request may take before it is answered 503 (default 30)")
    p.add_argument("--threads", type=int, default=2,
                   help="requests computed at the same time (default 2)")
    p.add_argument("--onnx-threads", type=int, default=0,
                   help="onnxruntime threads per inference (default 0 = its own choice)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args) -> int:
    import logging
    import os
    import sys

    from gen_keras.errors import ConfigError

    if not args.models and not args.model_uri:
        raise ConfigError("serve needs --models DIR and/or --model-uri models:/NAME@ALIAS")
    if args.models and not os.path.isdir(args.models):
        raise ConfigError(f"--models {args.models}: no such folder")
    for name, value, low in (("--max-n", args.max_n, 1), ("--max-steps", args.max_steps, 2),
                             ("--max-body-bytes", args.max_body_bytes, 1024), ("--threads", args.threads, 1),
                             ("--timeout", args.timeout, 0.0001), ("--onnx-threads", args.onnx_threads, 0)):
        if value < low:
            raise ConfigError(f"{name}={value} must be at least {low}")

    if args.backend == "tf":
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:
            raise ConfigError("--backend tf needs TensorFlow, which is not installed here (the serving "
                              "image has none): pip install 'gen-keras[cpu]', or use --backend onnx")

    import uvicorn

    from serving.app import ServeSettings, create_app
    from serving.registry import load_store
    from serving.validation import Limits

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServeSettings(Limits(args.max_n, args.max_steps, args.max_body_bytes),
                             timeout_s=args.timeout, inference_threads=args.threads)
    options = {"threads": args.onnx_threads}

    def load():
        return load_store(args.models, args.model_uri, args.backend, tracking_uri=args.tracking_uri,
                          cache_dir=args.cache_dir, **options)

    app = create_app(load, settings)
    print(f"gen-keras serve: http://{args.host}:{args.port}/  (API: /v1/models, health: /healthz, "
          f"/readyz, metrics: /metrics; backend {args.backend})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=10)
    return 0
