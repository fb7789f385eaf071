"""The ``gen-keras`` command line. Each sub-command lives in ``gen_keras/commands/<name>.py`` and
defines ``register(subparsers)``; this file only discovers them, parses and dispatches."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    import gen_keras
    import gen_keras.commands as commands

    parser = argparse.ArgumentParser(prog="gen-keras", description=(
        "Train, evaluate, export and serve generative image models (AE, VAE, GAN) with Keras 3."))
    parser.add_argument("--version", action="version", version=f"gen-keras {gen_keras.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"gen_keras.commands.{info.name}").register(sub)
    return parser


def _pipeline_errors() -> tuple[type, ...]:
    """The pipeline's own error types, taken from modules already loaded: importing them here
    would load TensorFlow for every command (``serve`` runs without it), and an error of one of
    these types can only come from a module that is loaded."""
    names = (("gen_keras.artifacts", "ArtifactIntegrityError"), ("gen_keras.data.mnist10k", "DataIntegrityError"),
             ("gen_keras.export", "ExportError"), ("gen_keras.training.callbacks", "NonFiniteLossError"))
    return tuple(c for c in (getattr(sys.modules.get(m), n, None) for m, n in names) if c is not None)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from gen_keras.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"gen-keras: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _pipeline_errors()):
            raise
        print(f"gen-keras: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gen-keras: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
