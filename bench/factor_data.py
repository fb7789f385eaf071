"""The factor data benchmark: render speed, full preparation time, disk size and the streaming
input pipeline's rate for each factor data set, as JSON lines.

    python bench/factor_data.py                         # dsprites and shapes3d, full sets
    python bench/factor_data.py --sets dsprites         # one set
    python bench/factor_data.py --smoke                 # subsets of 20,000: a check that it runs
    python bench/factor_data.py --tfds-probe 20000      # also: TFDS's own writer on 20,000 examples

One JSON line per set on stdout:

- ``render_images_per_s``: the renderer alone (numpy, one process), best of ``--rounds`` batches
  of ``--render-batch`` random combinations; ``render_images_per_cpu_s``: per CPU second;
- ``prepare_seconds``, ``prepare_images_per_s``, ``prepare_workers``: the full preparation
  (render, PNG-encode, write TFRecord shards, sha256 manifest, rename) into ``--data-dir``
  (default: a fresh temporary folder, deleted afterwards unless ``--keep``); with
  ``--data-dir`` pointing at an already prepared cache the figures recorded in its manifest are
  reported (``prepared_now: false``); ``prepare_cpu_seconds``: CPU time of the bench and its
  writer processes — on a shared machine, CPU seconds / workers is what the preparation would
  take on idle cores;
- ``disk_bytes``, ``bytes_per_image``, ``shards``: the prepared folder;
- ``stream_images_per_s``: the training pipeline of a 64x64 VAE config over the set
  (``make_datasets``: shards interleaved, shuffle buffer, batch 128, prefetch; ``data.cache``
  off, as a full set's split is anyway), ``--stream-batches`` batches after
  ``--warmup`` batches (``stream_images_per_cpu_s``: per CPU second of that process, all its
  threads); ``stream_peak_rss_mb``: that process's peak resident memory;
- with ``--tfds-probe N``: ``tfds_writer_images_per_s`` (and ``_per_cpu_s``), TFDS's own
  ``GeneratorBasedBuilder`` writing N examples of the set (one process, its PNG encoder and
  shuffler), the figure behind the choice of our own writer (gen_keras/data/factor_prepare.py).

The machine is shared and CPU time swings; ``load_average`` (1 minute, at the start of each
set) is printed with each line so a busy machine shows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="dsprites,shapes3d", help="comma-separated factor sets")
    p.add_argument("--count", type=int, default=0, help="a subset size instead of the full set")
    p.add_argument("--data-dir", default="", help="where to prepare (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--workers", type=int, default=2, help="preparation processes")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--render-batch", type=int, default=4096)
    p.add_argument("--stream-batches", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--tfds-probe", type=int, default=0, metavar="N")
    p.add_argument("--smoke", action="store_true", help="subsets of 20,000, fewer batches")
    p.add_argument("--child", choices=["stream"], help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.count = args.count or 20_000
        args.stream_batches, args.warmup, args.rounds = 40, 5, 2
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child == "stream":
        print(json.dumps(stream_rate(args.dataset, args.data_dir, args.stream_batches, args.warmup)))
        return 0
    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="gk_factor_bench_"))
    try:
        for name in args.sets.split(","):
            dataset = f"{name}:{args.count}" if args.count else name
            print(json.dumps(measure(dataset, root, args)), flush=True)
    finally:
        if not args.data_dir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def measure(dataset: str, root: Path, args) -> dict:
    from gen_keras.data.factor_prepare import ensure_prepared, prepared_dir, verify
    from gen_keras.data.factor_specs import parse_factor_spec

    spec = parse_factor_spec(dataset)
    out = {"dataset": dataset, "images": spec.num_examples, "load_average": os.getloadavg()[0],
           **render_rate(spec.factor_set, args.render_batch, args.rounds)}
    folder = prepared_dir(spec, root)
    prepared_now = not folder.exists()
    t0, cpu0 = time.time(), cpu_seconds()
    ensure_prepared(spec, root, workers=args.workers)
    seconds, cpu = time.time() - t0, cpu_seconds() - cpu0
    manifest = verify(folder, spec)
    if not prepared_now:
        seconds, cpu = manifest["seconds"], manifest.get("cpu_seconds")
    files = [p for p in folder.iterdir() if p.is_file()]
    disk = sum(p.stat().st_size for p in files)
    out.update({"prepared_now": prepared_now, "prepare_seconds": round(seconds, 1),
                "prepare_images_per_s": round(spec.num_examples / seconds),
                "prepare_cpu_seconds": None if cpu is None else round(cpu, 1),
                "prepare_workers": manifest["workers"], "disk_bytes": disk,
                "bytes_per_image": round(disk / spec.num_examples, 1),
                "shards": len(manifest["shards"]), "folder": str(folder)})
    out.update(run_stream_child(dataset, root, args))
    if args.tfds_probe:
        out.update(tfds_writer_rate(spec.factor_set, args.tfds_probe))
    return out


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the spawned writers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def render_rate(factor_set, batch: int, rounds: int) -> dict:
    """Best wall-clock rate over ``rounds`` batches, and the rate per CPU second (the work,
    unaffected by other processes on a shared machine)."""
    import numpy as np

    from gen_keras.data.factor_sets import unflatten_index

    rng = np.random.default_rng(0)
    best, best_cpu = 0.0, 0.0
    for _ in range(rounds):
        idx = unflatten_index(rng.integers(0, factor_set.num_combinations, batch), factor_set.factor_sizes)
        t0, c0 = time.perf_counter(), time.process_time()
        factor_set.render(idx)
        best = max(best, batch / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, batch / max(time.process_time() - c0, 1e-9))
    return {"render_images_per_s": round(best), "render_images_per_cpu_s": round(best_cpu)}


# -- the streaming pipeline, in its own process (its memory is its own) ---------------------------
def run_stream_child(dataset: str, root: Path, args) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, __file__, "--child", "stream", "--dataset", dataset,
                           "--data-dir", str(root), "--stream-batches", str(args.stream_batches),
                           "--warmup", str(args.warmup)],
                          capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"stream_error": proc.stderr[-2000:]}
    return json.loads(lines[-1])


def stream_rate(dataset: str, data_dir: str, batches: int, warmup: int) -> dict:
    import resource

    from gen_keras.config_loader import load_config
    from gen_keras.data import make_datasets

    channels = 1 if dataset.startswith("dsprites") else 3
    cfg = load_config(ROOT / "pipelines" / "configs" / "vae_mnist10k.yaml", [
        f"data.dataset={dataset}", f"data.data_dir={data_dir}",
        f"model.image_shape=[64,64,{channels}]", "train.batch_size=128", "data.cache=false"])
    data = make_datasets(cfg)
    it = iter(data.train.repeat())
    for _ in range(warmup):
        next(it)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"stream_images_per_s": round(batches * 128 / seconds),
            "stream_images_per_cpu_s": round(batches * 128 / max(cpu, 1e-9)),
            "stream_batches": batches,
            "stream_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


# -- TFDS's own writer, for comparison ------------------------------------------------------------
def tfds_writer_rate(factor_set, n: int) -> dict:
    import numpy as np
    import tensorflow_datasets as tfds

    from gen_keras.data.factor_prepare import tfds_features
    from gen_keras.data.factor_sets import unflatten_index

    features = tfds_features(factor_set)
    flat = np.random.default_rng(0).choice(factor_set.num_combinations, n, replace=False)

    from tensorflow_datasets.core.registered import skip_registration

    with skip_registration():  # a throw-away builder class per call

        class GenKerasTfdsProbe(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=features)

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples()}

            def _generate_examples(self):
                for start in range(0, n, 1000):
                    chunk = flat[start:start + 1000]
                    idx = unflatten_index(chunk, factor_set.factor_sizes)
                    out, values = factor_set.render(idx), factor_set.factor_values(idx)
                    for i, key in enumerate(chunk):
                        ex = {"image": out["image"][i], "label": int(idx[i, factor_set.label_index]),
                              "factors": idx[i], "factor_values": values[i], "index": int(key)}
                        if "label_map" in out:
                            ex["label_map"] = out["label_map"][i]
                        yield int(key), ex

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.time(), time.process_time()
        GenKerasTfdsProbe(data_dir=tmp).download_and_prepare()
        return {"tfds_writer_images_per_s": round(n / (time.time() - t0)),
                "tfds_writer_images_per_cpu_s": round(n / (time.process_time() - c0))}


if __name__ == "__main__":
    sys.exit(main())
