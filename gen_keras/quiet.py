"""The libraries' notices off the terminal (the CLI's default; ``--tf-logs`` or
``GEN_KERAS_TF_LOGS=1`` shows everything).

TensorFlow's C++ runtime writes INFO lines straight to file descriptor 2 when it loads and when
it runs its first op ("oneDNN custom operations are on", "This TensorFlow binary is optimized
...", "All log messages before absl::InitializeLog() ..."), whatever ``TF_CPP_MIN_LOG_LEVEL``
says. :func:`filter_native_stderr` puts a pipe in front of descriptor 2 and forwards every line
except those notices and the few known-harmless lines below; errors, warnings of the pipeline
and Python tracebacks pass unchanged. :func:`quiet_python_warnings` drops the Python warnings
the libraries raise on every run that are not about anything the user did.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s|WARNING: All log messages before absl::InitializeLog|"
                   rb"To enable the following instructions: |Instructions for updating:|"
                   # Grappler's remapper skips fusing ops in a graph it cannot rewrite (the style-based
                   # and progressive GANs' LeakyReluGrad + BiasAdd): logged at ERROR level, harmless.
                   rb"E\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ meta_optimizer\.cc:\d+\] remapper failed: |"
                   # Apache Beam without its GCP extras, at import, in the launcher and in every
                   # DirectRunner worker (workers write to this process's descriptor 2).
                   rb"WARNING:root:apitools not found, and bigquery client libraries are not available|"
                   rb"INFO:__main__:Logging handler created\.$)")

# (message regex, category) of Python warnings that say nothing about what the user did.
PYTHON_WARNINGS = [
    # Keras 3.15 on every ``fit`` of a tf.data pipeline (ours shuffle in tf.data).
    (r"`shuffle=True` was passed, but will be ignored", UserWarning),
    # Keras' tf2onnx patch probes ``hasattr(np, "object")``; numpy 2 warns on the probe itself.
    (r"In the future `np\.object` will be defined", FutureWarning),
]


# A file that receives whatever the quiet mode hid, when this variable names one (the tests prove
# with it that a notice was there and was hidden; a curious user can look too).
HIDDEN_LOG = "GEN_KERAS_HIDDEN_LOG"


def _hide(text: bytes) -> None:
    path = os.environ.get(HIDDEN_LOG)
    if path:
        with open(path, "ab") as out:
            out.write(text)


def quiet_python_warnings() -> None:
    """Hide :data:`PYTHON_WARNINGS` in this process, and MLflow's INFO lines ("Creating initial
    MLflow database tables...", "Validating input example against model signature") in it and
    the processes it starts (MLflow reads ``MLFLOW_LOGGING_LEVEL`` when it is imported)."""
    import warnings

    show = warnings.showwarning
    known = [(re.compile(message), category) for message, category in PYTHON_WARNINGS]

    def show_unless_known(message, category, filename, lineno, file=None, line=None):
        if any(issubclass(category, c) and rx.search(str(message)) for rx, c in known):
            _hide(warnings.formatwarning(message, category, filename, lineno, line).encode())
        else:
            show(message, category, filename, lineno, file, line)

    if not getattr(show, "gen_keras_quiet", False):
        show_unless_known.gen_keras_quiet = True
        warnings.showwarning = show_unless_known
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def filter_native_stderr() -> None:
    """Forward descriptor 2 through a filter until the process exits (idempotent)."""
    if getattr(filter_native_stderr, "active", False):
        return
    filter_native_stderr.active = True
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
                if out:
                    os.write(real, out)
                if len(out) < sum(len(line) + 1 for line in lines):
                    _hide(b"".join(line + b"\n" for line in lines if NOISE.match(line)))
            if pending and not NOISE.match(pending):
                os.write(real, pending)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the last write end: the forwarder reads EOF and ends
        thread.join(2)

    atexit.register(restore)
    for name in ("absl", "tensorflow", "h5py._conv"):
        logging.getLogger(name).setLevel(logging.ERROR)
