"""onnxruntime against TensorFlow on the exports themselves, no HTTP: every operation of each
export folder at several batch sizes, the runtimes called in turn, the median of ``--reps`` calls
each. One JSON line per (export, operation, batch): which backend is faster for that model and
request size.

    python bench/backends.py outputs/exports/dcgan-... outputs/exports/srgan-... --sizes 1,16,64,256

- ``onnx``: onnxruntime as ``gen-keras serve`` runs it (``gen_keras.exported.runtimes.OnnxRuntime``:
  one-thread sessions, a costly batch cut into one part per core).
- ``onnx_operator_threads``: one session with onnxruntime's own operator threads (threads = cores,
  no spinning), as the server ran it before 2026-12-03.
- ``tf``: the SavedModel's signature of the same name.

Run it on an idle machine: the figures are milliseconds per call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
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

    from gen_keras.exported.reader import ExportReader

    sizes = [int(s) for s in args.sizes.split(",")]
    for folder in map(Path, args.exports):
        saved = tf.saved_model.load(str(folder / "saved_model"))
        served = ExportReader(folder).runtime
        for onnx_file in sorted(folder.glob("*.onnx")):
            op = onnx_file.stem
            if op not in saved.signatures or op not in served.sessions:
                continue
            signature = saved.signatures[op]
            specs = signature.structured_input_signature[1]
            options = ort.SessionOptions()
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            threaded = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
            for batch in sizes:
                rng = np.random.default_rng(0)
                feeds = {k: (rng.integers(0, 2, [batch, *s.shape[1:]]) if s.dtype.is_integer
                             else rng.uniform(-1, 1, [batch, *s.shape[1:]])).astype(s.dtype.as_numpy_dtype)
                         for k, s in specs.items()}
                calls = {"onnx": lambda f=feeds, o=op, r=served: r.run(o, f),
                         "onnx_operator_threads": lambda f=feeds, s=threaded: s.run(None, f),
                         "tf": lambda g=signature, f=feeds: g(**{k: tf.constant(v) for k, v in f.items()})}
                times = {k: [] for k in calls}
                for _ in range(2):  # warm-up
                    for call in calls.values():
                        call()
                names = list(calls)
                for rep in range(args.reps):  # interleaved, so drifts in load hit every runtime alike;
                    # the order rotates: the call right after TensorFlow's shares the core with its
                    # pool threads still spinning (+~50 us, which decides a tiny graph's figure)
                    for k in names[rep % len(names):] + names[:rep % len(names)]:
                        call = calls[k]
                        started = time.perf_counter()
                        call()
                        times[k].append(time.perf_counter() - started)
                ms = {k: round(1000 * statistics.median(v), 3) for k, v in times.items()}
                print(json.dumps({"export": folder.name, "operation": op, "batch": batch, "ms": ms,
                                  "faster": min(("onnx", "tf"), key=ms.get),
                                  "load_average": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
