"""Work units. A job's items are cut into chunks of ``chunk_size`` consecutive items, fixed by
the inputs alone; a chunk is always computed as one batch, so an item's output never depends on
which worker or which other items it ran with (the same seed range gives byte-identical images
on 1 or 8 workers). Chunks carry references, not pixels: a worker reads its own images."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from gen_keras.data.image_files import IMAGE_SUFFIXES, Skip, is_image_name, read_image, read_npz
from gen_keras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int  # 0..total-1
    total: int
    kind: str  # "seeds" | "files" | "array"
    ids: tuple  # seeds, file paths, or row indices of the array source
    source: str = ""  # the image source (npz:<path>, a data set string) for kind "array"
    start: int = 0  # the position of the chunk's first item in the job (the noise rule keys on it)


def seed_chunks(count: int, first_seed: int, chunk_size: int) -> list[Chunk]:
    """Items ``first_seed .. first_seed + count - 1``, one prior draw per seed."""
    if count < 1:
        raise ConfigError(f"--count {count} must be >= 1")
    if first_seed < 0:
        raise ConfigError(f"--seed {first_seed} must be >= 0")
    starts = range(first_seed, first_seed + count, chunk_size)
    return [Chunk(i, len(starts), "seeds", tuple(range(s, min(s + chunk_size, first_seed + count))),
                  start=s - first_seed) for i, s in enumerate(starts)]


def image_chunks(source: str, chunk_size: int, image_shape, limit: int = 0) -> list[Chunk]:
    """``folder:<path>`` (every file named like an image, any case, sorted; the worker skips and
    counts what does not decode), ``npz:<path>`` (array ``x``), or a data set string (its test
    split). An array source is read and checked against ``image_shape`` here, before any worker
    starts."""
    if source.startswith("folder:"):
        root = Path(source[len("folder:"):]).expanduser()
        if not root.is_dir():
            raise ConfigError(f"--input {source}: no such folder")
        files = sorted(str(p) for p in root.rglob("*") if is_image_name(p) and not p.is_dir())
        if not files:
            raise ConfigError(f"--input {source}: no image files ({sorted(IMAGE_SUFFIXES)})")
        files = files[:limit] if limit else files
        parts = [tuple(files[s:s + chunk_size]) for s in range(0, len(files), chunk_size)]
        return [Chunk(i, len(parts), "files", p, start=i * chunk_size) for i, p in enumerate(parts)]
    x, _ = _array_source(source, image_shape)
    h, w, c = image_shape
    if x.shape[1:] != (h, w, c):
        raise ConfigError(f"--input {source}: images of shape {list(x.shape[1:])}; the model takes "
                          f"{[h, w, c]}")
    n = min(len(x), limit) if limit else len(x)
    parts = [tuple(range(s, min(s + chunk_size, n))) for s in range(0, n, chunk_size)]
    return [Chunk(i, len(parts), "array", p, source, start=i * chunk_size) for i, p in enumerate(parts)]


_ARRAYS: dict = {}  # per worker process: a source is read once


def _array_source(source: str, image_shape) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 [N, H, W, C], labels or None) of an array source, cached per process:
    ``npz:<path>`` through the one npz reader, a data set string through the data layer."""
    if source not in _ARRAYS:
        if source.startswith("npz:"):
            _ARRAYS[source] = read_npz(Path(source[len("npz:"):]).expanduser(), f"--input {source}")
        else:  # a data set string: its test split, through the training pipeline's sources
            from gen_keras.data.named import named_split

            _ARRAYS[source] = named_split(source, "test", tuple(image_shape), field="--input")
    return _ARRAYS[source]


def read_chunk(chunk: Chunk, image_shape) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """``(ids, images uint8 [n, H, W, C], labels (-1 unknown), skipped ids)`` of an image chunk.
    A file that is not used (:func:`gen_keras.data.image_files.read_image`'s rules: not a regular
    file, not an image, too large, 16-bit, corrupt, another size) is skipped, named on the
    worker's log and counted by reason (``skipped_<reason>``), never fatal."""
    h, w, c = image_shape
    if chunk.kind == "array":
        x, y = _array_source(chunk.source, image_shape)
        idx = np.asarray(chunk.ids)
        return list(chunk.ids), x[idx], (y[idx] if y is not None else np.full(len(idx), -1)), []
    ids, images, skipped = [], [], []
    for path in chunk.ids:
        pixels = read_image(path, channels=c, size=(w, h))
        if isinstance(pixels, Skip):
            skipped.append(path)
            _report(pixels)
            continue
        ids.append(path)
        images.append(pixels)
    empty = np.zeros((0, h, w, c), np.uint8)
    return ids, (np.stack(images) if images else empty), np.full(len(ids), -1), skipped


def _report(skip: Skip) -> None:
    """A skipped file, named on the worker's log and counted by its reason."""
    from apache_beam.metrics import Metrics

    Metrics.counter("gen_keras", f"skipped_{skip.kind}").inc()
    print(f"gen-keras batch: skipped {skip.path}: {skip.reason}", file=sys.stderr, flush=True)
