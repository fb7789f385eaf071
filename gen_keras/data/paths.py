"""Where prepared data sets live (imported by the sources and by the task modules they load, so
it imports only the project's one cache location, :func:`gen_keras.files.cache_dir`)."""
from __future__ import annotations

from pathlib import Path

from gen_keras.files import cache_dir


def default_data_dir(data_dir: str = "") -> Path:
    """``data_dir`` if given, else ``$GEN_KERAS_CACHE/tfds`` (default ``~/.cache/gen_keras/tfds``)."""
    if data_dir:
        return Path(data_dir).expanduser()
    return cache_dir("tfds")
