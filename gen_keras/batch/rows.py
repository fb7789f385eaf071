"""A chunk's results as one Parquet table, a row per item: ``id`` (the seed, or the image's file or
row), ``seed`` / ``label`` where known, and what the operation made — ``png`` (the image as PNG
bytes), ``code`` (an embedding), or ``score``."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

# The job name -> the export operation it runs, and the kind of result it writes.
JOBS = {"generate": ("generate", "png"), "reconstruct": ("reconstruct", "png"),
        "translate": ("translate", "png"), "embed": ("encode", "code"), "score": ("score", "score")}


def schema(result: str):
    import pyarrow as pa

    fields = [("id", pa.string()), ("seed", pa.int64()), ("label", pa.int64())]
    fields.append({"png": ("png", pa.binary()), "code": ("code", pa.list_(pa.float32())),
                   "score": ("score", pa.float64())}[result])
    return pa.schema(fields)


def png(image: np.ndarray, value_range) -> bytes:
    """One image in ``value_range`` as PNG bytes (grey or RGB)."""
    from PIL import Image

    lo, hi = value_range
    arr = np.round((np.clip(image, lo, hi) - lo) / (hi - lo) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def to_table(out: dict, chunk, result: str, value_range, png_dir: str | None = None):
    """One chunk's ``infer`` output as a pyarrow Table with the job's schema (one row per item),
    written to Parquet as it is; the PNG files too, when asked."""
    import pyarrow as pa

    ids = out["ids"]
    labels = out["labels"] or [None] * len(ids)
    seeds = [int(i) for i in ids] if chunk.kind == "seeds" else [None] * len(ids)
    cols = {"id": [str(i) for i in ids], "seed": seeds,
            "label": [None if v is None or v < 0 else int(v) for v in labels]}
    if result == "png":
        cols["png"] = [png(np.asarray(image), value_range) for image in out["image"][:len(ids)]]
        if png_dir:
            for name, data, seeded in zip(cols["id"], cols["png"], cols["seed"]):
                _write_png(Path(png_dir), name if seeded is not None else Path(name).stem, data)
    elif result == "code":
        codes = np.asarray(out["mean"] if "mean" in out else out["z"], np.float32)
        cols["code"] = [c.tolist() for c in codes[:len(ids)]]
    else:
        cols["score"] = np.asarray(out["score"], np.float64)[:len(ids)].tolist()
    return pa.table(cols, schema=schema(result))


def _write_png(folder: Path, name: str, data: bytes) -> None:
    from gen_keras.files import atomic_write_bytes

    atomic_write_bytes(folder / f"{name}.png", data)
