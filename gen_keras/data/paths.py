"""Where prepared data sets live (imported by the sources and by the task modules they load, so
it imports nothing of the project)."""
from __future__ import annotations

import os
from pathlib import Path


def default_data_dir(data_dir: str = "") -> Path:
    """``data_dir`` if given, else ``$GEN_KERAS_CACHE/tfds`` (default ``~/.cache/gen_keras/tfds``)."""
    if data_dir:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("GEN_KERAS_CACHE", Path.home() / ".cache" / "gen_keras")) / "tfds"
