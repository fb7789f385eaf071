"""``gen-keras serve --models DIR [--model-uri models:/NAME@ALIAS ...] [--host --port --backend]``.

Thin: parse, check, build the settings, hand them to ``serving`` (which reads exports through
the one export reader). Every argument is checked — the folder, the port (free, in range), the
limits — before anything is loaded or a banner is printed; nothing imports TensorFlow.
"""
from __future__ import annotations


def _port(text: str) -> int:
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1..65535)")
    return port


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve exported generators over HTTP (API, web page, metrics)")
    p.add_argument("--models", metavar="DIR",
                   help="a folder of export folders (each sub-folder with a manifest.json is a model "
                        "named after the folder), or one export folder")
    p.add_argument("--model-uri", action="append", default=[], metavar="models:/NAME@ALIAS",
                   help="a model from the MLflow registry, by alias or version (repeatable)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for --model-uri (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--cache-dir", default=None, help="where registry models are downloaded "
                                                     "(default: $GEN_KERAS_CACHE/models)")
    p.add_argument("--wait-for-models", action="store_true",
                   help="start even when --models holds no export yet (publish one, then SIGHUP)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--backend", choices=["onnx", "tf"], default="onnx",
                   help="onnx = onnxruntime (default, no TensorFlow needed); "
                        "tf = the SavedModel's signatures in TensorFlow")
    p.add_argument("--max-n", type=int, default=64, help="images per request (default 64)")
    p.add_argument("--max-steps", type=int, default=64, help="interpolation frames per request")
    p.add_argument("--max-body-bytes", type=int, default=4 * 2**20,
                   help="largest accepted request body (default 4 MiB)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a request may take before it is answered 503 (default 30)")
    p.add_argument("--body-timeout", type=float, default=10.0,
                   help="seconds a request body may take to arrive before 408 (default 10)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection has to send a request's headers (default 10); then 408 and closed")
    p.add_argument("--max-connections-per-client", type=int, default=256,
                   help="connections one client address may hold open at once (default 256); more are refused")
    p.add_argument("--max-in-flight", type=int, default=64,
                   help="operation requests handled at once; more get 503 + Retry-After (default 64)")
    p.add_argument("--threads", type=int, default=2,
                   help="requests computed at the same time (default 2)")
    p.add_argument("--onnx-threads", type=int, default=0,
                   help="cores one inference may use (default 0 = all this process may run on): a "
                        "costly batch is cut into that many parts, run at once (docs/serving.md)")
    p.add_argument("--pid-file", default=None,
                   help="write the server's pid here (gen-keras retrain --notify-pid-file sends it "
                        "SIGHUP after publishing a new champion)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def check_args(args) -> None:
    """Every argument, before anything loads: a clear ConfigError naming what to change."""
    import importlib.util
    from pathlib import Path

    from gen_keras.errors import ConfigError

    if not args.models and not args.model_uri:
        raise ConfigError("serve needs --models DIR (a folder of exports, e.g. outputs/exports) and/or "
                          "--model-uri models:/NAME@ALIAS")
    if args.models:
        folder = Path(args.models)
        if not folder.is_dir():
            raise ConfigError(f"--models {args.models}: no such folder (train a model first: "
                              "bash scripts/quickstart.sh writes outputs/exports/<run>)")
        has_exports = (folder / "manifest.json").is_file() or any(
            (p / "manifest.json").is_file() for p in folder.iterdir() if not p.name.startswith("."))
        if not has_exports and not args.model_uri and not args.wait_for_models:
            raise ConfigError(f"--models {args.models} holds no export (no sub-folder with a "
                              "manifest.json): point it at a folder of exports such as "
                              "outputs/exports, or pass --wait-for-models to start empty and load "
                              "models on SIGHUP")
    for name, value, low in (("--max-n", args.max_n, 1), ("--max-steps", args.max_steps, 2),
                             ("--max-body-bytes", args.max_body_bytes, 1024), ("--threads", args.threads, 1),
                             ("--timeout", args.timeout, 0.0001), ("--onnx-threads", args.onnx_threads, 0),
                             ("--body-timeout", args.body_timeout, 0.001), ("--max-in-flight", args.max_in_flight, 1),
                             ("--header-timeout", args.header_timeout, 0.001),
                             ("--max-connections-per-client", args.max_connections_per_client, 1)):
        if value < low:
            raise ConfigError(f"{name}={value} must be at least {low}")
    if args.backend == "tf" and importlib.util.find_spec("tensorflow") is None:
        raise ConfigError("--backend tf needs TensorFlow, which is not installed here (the serving "
                          "image has none): pip install 'gen-keras[cpu]', or use --backend onnx")
    check_port_free(args.host, args.port)


def check_port_free(host: str, port: int) -> None:
    import socket

    from gen_keras.errors import ConfigError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            # As uvicorn binds: connections of a server that just closed (TIME_WAIT) do not count.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program "
                          "uses the port, or the address is not this machine's; choose another with "
                          "--port / --host") from None


def run(args) -> int:
    import logging
    import os
    import sys
    from pathlib import Path

    check_args(args)
    import uvicorn

    from gen_keras.files import atomic_write_text
    from serving.app import ServeSettings, create_app
    from serving.protocol import guarded_protocol
    from serving.registry import load_store
    from serving.validation import Limits

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServeSettings(Limits(args.max_n, args.max_steps, args.max_body_bytes),
                             timeout_s=args.timeout, inference_threads=args.threads,
                             max_in_flight=args.max_in_flight, body_timeout_s=args.body_timeout)

    def load():
        return load_store(args.models, args.model_uri, args.backend, tracking_uri=args.tracking_uri,
                          cache_dir=args.cache_dir, threads=args.onnx_threads)

    app = create_app(load, settings)
    if args.pid_file:
        atomic_write_text(args.pid_file, f"{os.getpid()}\n")
    print(f"gen-keras serve: http://{args.host}:{args.port}/  (API: /v1/models, docs: /docs, health: "
          f"/healthz, /readyz, metrics: /metrics; backend {args.backend})", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    timeout_graceful_shutdown=10,
                    http=guarded_protocol(args.header_timeout, args.max_connections_per_client))
    finally:
        if args.pid_file:
            Path(args.pid_file).unlink(missing_ok=True)
    return 0
