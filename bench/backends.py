"""onnxruntime against TensorFlow on the exports themselves, no HTTP: every operation of each
export folder at several batch sizes, the two runtimes (and onnxruntime with its idle threads
spinning, and ``onnx_split``: the batch cut into one part per core, each part on a one-thread
session in its own thread) called in turn, the median of ``--reps`` calls each. One JSON line per (export,
operation, batch): which backend the server should use for that model and request size.

    python bench/backends.py outputs/exports/dcgan-... outputs/exports/srgan-... --sizes 1,16,64,256

onnxruntime runs as ``gen-keras serve`` runs it (default graph optimizations, threads = cores,
no spinning); TensorFlow is the SavedModel's signature of the same name. Run it on an idle
machine: the figures are milliseconds per call.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exports", nargs="+", help="export folders (manifest.json, *.onnx, saved_model/)")
    p.add_argument("--sizes", default="1,16,64,256", help="batch sizes")
    p.add_argument("--reps", type=int, default=15, help="timed calls per runtime and size")
    return p.parse_args(argv)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    sizes = [int(s) for s in args.sizes.split(",")]
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    for folder in map(Path, args.exports):
        saved = tf.saved_model.load(str(folder / "saved_model"))
        for onnx_file in sorted(folder.glob("*.onnx")):
            op = onnx_file.stem
            if op not in saved.signatures:
                continue
            signature = saved.signatures[op]
            specs = signature.structured_input_signature[1]
            sessions = {}
            for name, spin in (("onnx", "0"), ("onnx_spinning", "1")):
                options = ort.SessionOptions()
                options.add_session_config_entry("session.intra_op.allow_spinning", spin)
                sessions[name] = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
            one = ort.SessionOptions()
            one.intra_op_num_threads = 1
            single = ort.InferenceSession(str(onnx_file), one, providers=["CPUExecutionProvider"])
            for batch in sizes:
                rng = np.random.default_rng(0)
                feeds = {k: (rng.integers(0, 2, [batch, *s.shape[1:]]) if s.dtype.is_integer
                             else rng.uniform(-1, 1, [batch, *s.shape[1:]])).astype(s.dtype.as_numpy_dtype)
                         for k, s in specs.items()}
                calls = {**{k: (lambda s=s, f=feeds: s.run(None, f)) for k, s in sessions.items()},
                         "onnx_split": lambda f=feeds, s=single: split_run(s, f, pool),
                         "tf": lambda g=signature, f=feeds: g(**{k: tf.constant(v) for k, v in f.items()})}
                times = {k: [] for k in calls}
                for _ in range(2):  # warm-up
                    for call in calls.values():
                        call()
                for _ in range(args.reps):  # interleaved, so drifts in load hit every runtime alike
                    for k, call in calls.items():
                        started = time.perf_counter()
                        call()
                        times[k].append(time.perf_counter() - started)
                ms = {k: round(1000 * statistics.median(v), 3) for k, v in times.items()}
                print(json.dumps({"export": folder.name, "operation": op, "batch": batch, "ms": ms,
                                  "faster": min(("onnx", "tf"), key=ms.get),
                                  "load_average": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


def split_run(session, feeds: dict, pool) -> list:
    """The batch cut into one part per core, each run on a one-thread session in its own thread,
    the outputs concatenated (data parallel instead of onnxruntime's per-operator threads)."""
    import numpy as np

    batch = len(next(iter(feeds.values())))
    parts = min(batch, pool._max_workers)
    if parts < 2:
        return session.run(None, feeds)
    bounds = np.linspace(0, batch, parts + 1).astype(int)
    outs = list(pool.map(lambda ab: session.run(None, {k: v[ab[0]:ab[1]] for k, v in feeds.items()}),
                         itertools.pairwise(bounds)))
    return [np.concatenate(chunks) for chunks in zip(*outs)]


if __name__ == "__main__":
    raise SystemExit(main())
