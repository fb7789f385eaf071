"""Work units. A job's items are cut into chunks of ``chunk_size`` consecutive items, fixed by
the inputs alone; a chunk is always computed as one batch, so an item's output never depends on
which worker or which other items it ran with (the same seed range gives byte-identical images
on 1 or 8 workers). Chunks carry references, not pixels: a worker reads its own images."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gen_keras.errors import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int  # 0..total-1
    total: int
    kind: str  # "seeds" | "files" | "array"
    ids: tuple  # seeds, file paths, or row indices of the array source
    source: str = ""  # the image source (npz:<path>, a data set string) for kind "array"
    start: int = 0  # the position of the chunk's first item in the job (the noise rule)


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
    """``folder:<path>`` (every image file, sorted; unreadable ones are skipped and counted by the
    worker), ``npz:<path>`` (array ``x``), or a data set string (its test split)."""
    if source.startswith("folder:"):
        root = Path(source[len("folder:"):]).expanduser()
        if not root.is_dir():
            raise ConfigError(f"--input {source}: no such folder")
        files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"--input {source}: no image files ({sorted(IMAGE_SUFFIXES)})")
        files = files[:limit] if limit else files
        parts = [tuple(files[s:s + chunk_size]) for s in range(0, len(files), chunk_size)]
        return [Chunk(i, len(parts), "files", p, start=i * chunk_size) for i, p in enumerate(parts)]
    n = len(_array_source(source, image_shape)[0])
    n = min(n, limit) if limit else n
    parts = [tuple(range(s, min(s + chunk_size, n))) for s in range(0, n, chunk_size)]
    return [Chunk(i, len(parts), "array", p, source, start=i * chunk_size) for i, p in enumerate(parts)]


_ARRAYS: dict = {}  # per worker process: a source is read once


def _array_source(source: str, image_shape) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 [N, H, W, C], labels or None) of an array source, cached per process."""
    if source not in _ARRAYS:
        if source.startswith("npz:"):
            path = Path(source[len("npz:"):]).expanduser()
            if not path.is_file():
                raise ConfigError(f"--input {source}: no such file")
            with np.load(path, allow_pickle=False) as f:
                if "x" not in f:
                    raise ConfigError(f"--input {source}: the file has no array 'x' "
                                      f"(arrays: {sorted(f.files)})")
                x, y = f["x"], (f["y"] if "y" in f else None)
            if x.ndim == 3:
                x = x[..., None]
            if x.dtype != np.uint8:
                scale = 255.0 if x.max() <= 1.0 else 1.0  # images in [0, 1] or in [0, 255]
                x = np.round(np.clip(x.astype(np.float32) * scale, 0, 255)).astype(np.uint8)
            _ARRAYS[source] = (x, None if y is None else np.asarray(y, np.int64))
        else:  # a data set string: its test split, through the training pipeline's sources
            from gen_keras.config import DataConfig
            from gen_keras.data import load_split

            images, labels = load_split(DataConfig(dataset=source), "test", tuple(image_shape), (0.0, 255.0))
            _ARRAYS[source] = (np.round(images).astype(np.uint8), labels.astype(np.int64))
    return _ARRAYS[source]


def read_chunk(chunk: Chunk, image_shape) -> tuple[list, np.ndarray, np.ndarray, list[str]]:
    """``(ids, images uint8 [n, H, W, C], labels (-1 unknown), skipped ids)`` of an image chunk.
    A file that does not decode, or has another size, is skipped (and named), never fatal."""
    h, w, c = image_shape
    if chunk.kind == "array":
        x, y = _array_source(chunk.source, image_shape)
        idx = np.asarray(chunk.ids)
        images, labels = x[idx], (y[idx] if y is not None else np.full(len(idx), -1))
        if images.shape[1:] != (h, w, c):
            raise ConfigError(f"--input {chunk.source}: images of shape {list(images.shape[1:])}; the "
                              f"model takes {[h, w, c]}")
        return list(chunk.ids), images, labels, []
    from PIL import Image, UnidentifiedImageError

    ids, images, skipped = [], [], []
    for path in chunk.ids:
        try:
            with Image.open(path) as im:
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    raise ValueError(f"size {im.size}")
                arr = np.asarray(im, np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            skipped.append(path)
            continue
        ids.append(path)
        images.append(arr[..., None] if arr.ndim == 2 else arr)
    empty = np.zeros((0, h, w, c), np.uint8)
    return ids, (np.stack(images) if images else empty), np.full(len(ids), -1), skipped
