"""``gen-keras embed``: the encoder as a feature extractor — the codes of a data set's images
(the posterior mean for the VAE family, the code for autoencoders), with their labels and, for the
factor data sets, their factors, written as ``.npz`` or ``.parquet``.

    gen-keras embed --export outputs/exports/vae-1 --data mnist10k --split test --out codes.npz
    gen-keras embed --run-id 3f2a... --data dsprites --split test --limit 20000 --out codes.parquet
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from gen_keras.commands.latent import add_data_args, add_model_args, open_from_args, reporting_errors

FORMATS = (".npz", ".parquet")
FACTOR_LIMIT = 10_000  # a factor split is read into memory: its default size


def register(sub) -> None:
    p = sub.add_parser("embed", help="write the encoder's codes of a data set (npz or Parquet) with "
                                     "labels and factors")
    add_model_args(p)
    add_data_args(p, limit=0)
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.npz or FILE.parquet")
    p.add_argument("--batch-size", type=int, default=512, help="images encoded per call")
    p.set_defaults(func=run)


def run(args) -> int:
    return reporting_errors("embed", _run, args)


def _run(args) -> int:
    import numpy as np

    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise ValueError(f"--out {out}: the file must end in {' or '.join(FORMATS)}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} must be >= 1")
    m = open_from_args(args)
    if not m.has_encoder:
        raise ValueError(f"the {m.kind!r} export has no encoder (its operations: {', '.join(m.operations)}); "
                         "embed needs a VAE-family or autoencoder export")
    images, labels, factors = read_data(args, m)
    codes = encode_all(m, images, labels, args.batch_size)
    columns = {"index": np.arange(len(codes), dtype=np.int64), "label": labels.astype(np.int64), "code": codes}
    if factors is not None:
        columns.update(factors=factors.factors, factor_values=factors.factor_values)
    write(out, columns, {"model": m.kind, "source": str(m.source), "data": args.data, "split": args.split,
                         "code": "posterior mean" if "code_mean" in m.adapter.for_task("encode").output_roles else "code",
                         **({"factor_names": ",".join(factors.factor_names)} if factors is not None else {})})
    print(f"wrote {len(codes)} codes of width {codes.shape[1]} to {out}")
    return 0


def read_data(args, m):
    """(images in the model's range, labels, FactorSplit or None)."""
    from gen_keras.config import DataConfig
    from gen_keras.data import load_factor_split
    from gen_keras.data.factor_specs import is_factor_dataset
    from gen_keras.latent import load_images

    if is_factor_dataset(args.data):
        split = load_factor_split(DataConfig(dataset=args.data), args.split, args.limit or FACTOR_LIMIT,
                                  value_range=m.value_range)
        return split.images, split.labels, split
    images, labels = load_images(args.data, args.split, m.image_shape, m.value_range, args.limit,
                                 seed=args.split_seed)
    return images, labels, None


def encode_all(m, images, labels, batch_size: int):
    """Codes of every image in chunks, with a progress line on stderr for long runs."""
    import numpy as np

    chunks, started, last = [], time.time(), 0.0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        y = labels[start:start + batch_size] if m.conditional else None
        chunks.append(np.asarray(m.encode(x, y), np.float32))
        done = start + len(x)
        if time.time() - last > 2 or done == len(images):
            last = time.time()
            print(f"embed: {done}/{len(images)} images ({done / max(last - started, 1e-6):.0f}/s)",
                  file=sys.stderr, flush=True)
    return np.concatenate(chunks) if chunks else np.zeros((0, m.latent_dim), np.float32)


def write(out: Path, columns: dict, meta: dict) -> None:
    """npz (one array per column, the metadata as strings) or Parquet (one row per image, list
    columns for the vectors, the metadata in the schema), published atomically."""
    import numpy as np

    from gen_keras.files import atomic_write

    if out.suffix == ".npz":
        atomic_write(out, lambda tmp: np.savez(tmp, **columns, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()}))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.ndim == 2:  # a vector per row
            arrays[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        else:
            arrays[name] = pa.array(values)
    table = pa.table(arrays).replace_schema_metadata({k: str(v) for k, v in meta.items()})
    atomic_write(out, lambda tmp: pq.write_table(table, tmp))
