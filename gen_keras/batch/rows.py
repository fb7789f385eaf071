"""A chunk's results as one Parquet table, a row per item: ``id`` (the seed, or the image's file or
row), ``seed`` / ``label`` where known, and what the operation made — ``png`` (the image as PNG
bytes), ``code`` (an embedding), or ``score``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_keras.images import image_png

# The job name -> the task of the export operation it runs (the manifest declares each
# operation's task), and the kind of result it writes.
JOBS = {"generate": ("generate", "png"), "reconstruct": ("reconstruct", "png"),
        "translate": ("translate", "png"), "embed": ("encode", "code"), "score": ("score", "score")}


def schema(result: str):
    import pyarrow as pa

    fields = [("id", pa.string()), ("seed", pa.int64()), ("label", pa.int64())]
    fields.append({"png": ("png", pa.binary()), "code": ("code", pa.list_(pa.float32())),
                   "score": ("score", pa.float64())}[result])
    return pa.schema(fields)


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
        cols["png"] = [image_png(np.asarray(image), value_range) for image in out["image"][:len(ids)]]
        if png_dir:
            for name, data, seeded in zip(cols["id"], cols["png"], cols["seed"]):
                _write_png(Path(png_dir), name if seeded is not None else Path(name).stem, data)
    elif result == "code":
        codes = np.asarray(out["code"], np.float32)  # the handler's outputs are keyed by role
        cols["code"] = [c.tolist() for c in codes[:len(ids)]]
    else:
        cols["score"] = np.asarray(out["score"], np.float64)[:len(ids)].tolist()
    return pa.table(cols, schema=schema(result))


def _write_png(folder: Path, name: str, data: bytes) -> None:
    from gen_keras.files import atomic_write_bytes

    atomic_write_bytes(folder / f"{name}.png", data)
