"""TensorFlow's start-up notices off the terminal.

TensorFlow's C++ runtime writes INFO lines straight to file descriptor 2 when it loads and when
it runs its first op ("oneDNN custom operations are on", "This TensorFlow binary is optimized
...", "All log messages before absl::InitializeLog() ..."), whatever ``TF_CPP_MIN_LOG_LEVEL``
says. :func:`filter_native_stderr` puts a pipe in front of descriptor 2 and forwards every line
except those notices; errors, warnings of the pipeline and Python tracebacks pass unchanged.
The CLI turns it on unless ``--tf-logs`` (or ``GEN_KERAS_TF_LOGS=1``) asks for everything.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

NOISE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s|WARNING: All log messages before absl::InitializeLog|"
                   rb"To enable the following instructions: |Instructions for updating:)")


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
