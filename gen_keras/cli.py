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
    parser.add_argument("--tf-logs", action="store_true",
                        help="show the libraries' own notices: TensorFlow's start-up lines, Keras' and "
                             "numpy's internal warnings, Beam's and MLflow's INFO lines (hidden by default; "
                             "also GEN_KERAS_TF_LOGS=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"gen_keras.commands.{info.name}").register(sub)
    return parser


def set_without_value(argv: list[str]) -> str | None:
    """``--set train.epochs 1`` (a space, not ``=``) would end as argparse's bare "unrecognized
    arguments: 1": say how to write it instead."""
    for i, token in enumerate(argv[:-1]):
        item = argv[i + 1]
        if token == "--set" and "=" not in item and not item.startswith("-"):
            after = argv[i + 2] if i + 2 < len(argv) and not argv[i + 2].startswith("-") else None
            fixed = f"--set {item}={after if after is not None else 'VALUE'}"
            given = f"--set {item}" + (f" {after}" if after is not None else "")
            return (f"--set takes KEY=VALUE as one word: write {fixed!r} (not {given!r}); "
                    "repeat --set for each field")
    return None


def main(argv: list[str] | None = None) -> int:
    from gen_keras.errors import GenKerasError

    given = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare "--" is passed through untouched (e.g. Apache Beam's options for
    # ``gen-keras batch``); argparse's sub-parsers cannot take that tail themselves.
    passthrough = given[given.index("--") + 1:] if "--" in given else []
    own = given[:given.index("--")] if "--" in given else given
    problem = set_without_value(own)
    if problem:
        print(f"gen-keras: error: {problem}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(own)
    args.passthrough = passthrough
    if passthrough and not getattr(args, "accepts_passthrough", False):
        print(f"gen-keras: error: {args.command} takes no options after '--' (got "
              f"{' '.join(passthrough)})", file=sys.stderr)
        return 2
    # (nothing has loaded TensorFlow yet: the commands import it when they run)
    if not (args.tf_logs or os.environ.get("GEN_KERAS_TF_LOGS") == "1"):
        from gen_keras.quiet import filter_native_stderr, quiet_python_warnings

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        quiet_python_warnings()
        if argv is None:
            filter_native_stderr()  # only for the real command line, not for callers in Python
    try:
        return int(args.func(args) or 0)
    except GenKerasError as exc:  # the pipeline's own errors: the message says what to do
        print(f"gen-keras: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gen-keras: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
