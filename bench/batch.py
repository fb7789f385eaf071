"""Batch jobs on Apache Beam against a plain loop doing the same work, in the same run.

For a DCGAN and a VAE export: generate ``--count`` digits (default 1,000,000: prior draw per seed,
the generator in chunks of 256, every image PNG-encoded into Parquet shards), once through
``gen-keras batch`` on the DirectRunner (2 worker processes, 1 onnxruntime thread each) and once
in a single-process onnxruntime loop (both cores: the runtime cuts each chunk in two) writing the same rows with pyarrow. Then score
``--score-count`` images (default 100,000: the 10,000 bundled digits repeated) with the VAE's
``score`` operation, both ways. Peak RSS of every process is sampled once a second; its value at
a quarter and at nine tenths of each job shows whether memory stays flat.

    python bench/batch.py                      # the full run (~15-25 minutes on 2 cores)
    python bench/batch.py --count 20000 --score-count 10000   # a quick check

The networks are the configs' (pipelines/configs/{dcgan,vae}_mnist10k.yaml) with untrained
weights unless ``--dcgan`` / ``--vae`` name export folders: the work per image does not depend on
the weights. Prints one JSON object; ``--out`` also writes it to a file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 256


class RssMonitor:
    """Samples the RSS of this process and all its descendants once a second."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        import psutil

        t0 = time.perf_counter()
        while not self.stop.is_set():
            rss = {}
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    rss[proc.pid] = proc.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.perf_counter() - t0, rss))
            self.stop.wait(1.0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict:
        """Peak RSS of this process and of the largest child (a Beam worker), and that worker's
        RSS at 25% and 90% of the job (flat memory: the two are close)."""
        if not self.samples:
            return {}
        me = self.me.pid
        main = [s.get(me, 0) / 2**20 for _, s in self.samples]
        kids = [max([v for p, v in s.items() if p != me] or [0]) / 2**20 for _, s in self.samples]
        if not any(kids):  # threads of this process are the workers (numeric jobs)
            kids = main
        at = lambda f: round(kids[min(len(kids) - 1, int(f * len(kids)))], 1)  # noqa: E731
        return {"peak_rss_mb_main": round(max(main), 1), "peak_rss_mb_worker": round(max(kids), 1),
                "worker_rss_mb_at_25pct": at(0.25), "worker_rss_mb_at_90pct": at(0.9),
                "processes_seen": len({p for _, s in self.samples for p in s})}


def build_export(kind: str, root: Path) -> Path:
    from gen_keras.config_loader import load_config
    from gen_keras.export import export_model
    from gen_keras.models import build_model

    cfg = load_config(ROOT / f"pipelines/configs/{kind}_mnist10k.yaml")
    return export_model(build_model(cfg.model), root / kind, name=kind)


def plain_loop(export: Path, job: str, out: Path, count: int = 0, npz: Path | None = None) -> int:
    """The same work as the Beam job in one process: the same chunks, the same per-chunk code
    (the handler's ``infer``, the rows' ``to_table``), pyarrow's Parquet writer, a file per
    ~100,000 rows. What differs is only the engine."""
    import pyarrow.parquet as pq

    from gen_keras.batch.handler import ExportModelHandler
    from gen_keras.batch.pipeline import BatchJob, plan_chunks
    from gen_keras.batch.rows import JOBS, schema, to_table
    from gen_keras.exported.reader import ExportReader

    task, result = JOBS[job]
    reader = ExportReader(export, threads=0)
    handler = ExportModelHandler(str(export), task)
    chunks = plan_chunks(BatchJob(job, str(export), str(out), count=count,
                                  input=f"npz:{npz}" if npz else "", chunk_size=CHUNK), reader)
    out.mkdir(parents=True)
    writer, in_file, shard, done = None, 0, 0, 0
    for chunk in chunks:
        table = to_table(handler.infer(chunk, reader), chunk, result, reader.value_range)
        if writer is None:
            writer = pq.ParquetWriter(out / f"part-{shard:05d}.parquet", schema(result))
        writer.write_table(table)
        in_file += table.num_rows
        done += table.num_rows
        if in_file >= 100_000:
            writer.close()
            writer, in_file, shard = None, 0, shard + 1
    if writer is not None:
        writer.close()
    return done


def timed(fn) -> tuple[float, dict, object]:
    with RssMonitor() as mon:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, mon.summary(), result


def one_job(name: str, export: Path, job: str, work: Path, count: int = 0, npz: Path | None = None,
            n_images: int = 0) -> dict:
    from gen_keras.batch.pipeline import BatchJob, run

    n = count if job == "generate" else n_images
    print(f"[bench/batch] {name} {job} {n}: plain loop ...", file=sys.stderr, flush=True)
    plain_s, plain_mem, done = timed(lambda: plain_loop(export, job, work / f"{name}-{job}-plain",
                                                        count=count, npz=npz))
    assert done == n
    print(f"[bench/batch] {name} {job} {n}: plain {plain_s:.1f} s; beam ...", file=sys.stderr, flush=True)
    beam_job = BatchJob(job, str(export), str(work / f"{name}-{job}-beam"), count=count,
                        input=f"npz:{npz}" if npz else "", chunk_size=CHUNK, threads=1)
    beam_s, beam_mem, counters = timed(lambda: run(beam_job, ["--direct_num_workers=2"]))
    assert counters.get("rows") == n, counters
    print(f"[bench/batch] {name} {job} {n}: beam {beam_s:.1f} s", file=sys.stderr, flush=True)
    size = lambda d: sum(p.stat().st_size for p in Path(d).glob("*.parquet"))  # noqa: E731
    result = {
        "items": n, "plain_seconds": round(plain_s, 1), "plain_items_per_s": round(n / plain_s),
        "beam_seconds": round(beam_s, 1), "beam_items_per_s": round(n / beam_s),
        "beam_vs_plain": round(plain_s / beam_s, 3),
        "beam_shards": len(list(Path(beam_job.out).glob("*.parquet"))),
        "output_mb_plain": round(size(work / f"{name}-{job}-plain") / 2**20, 1),
        "output_mb_beam": round(size(beam_job.out) / 2**20, 1),
        "plain_memory": plain_mem, "beam_memory": beam_mem, "beam_counters": counters,
    }
    shutil.rmtree(work / f"{name}-{job}-plain", ignore_errors=True)
    shutil.rmtree(beam_job.out, ignore_errors=True)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1_000_000, help="images to generate per model")
    p.add_argument("--score-count", type=int, default=100_000, help="images to score with the VAE")
    p.add_argument("--dcgan", help="a DCGAN export folder (default: the config's network)")
    p.add_argument("--vae", help="a VAE export folder (default: the config's network)")
    p.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--jobs", default="generate_dcgan,generate_vae,score_vae",
                   help="which of generate_dcgan, generate_vae, score_vae to run")
    args = p.parse_args(argv)
    jobs = args.jobs.split(",")

    from gen_keras.quiet import filter_native_stderr

    filter_native_stderr()
    work = Path(args.work or tempfile.mkdtemp(prefix="gen_keras_bench_batch_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        exports = {"dcgan": Path(args.dcgan) if args.dcgan else build_export("dcgan", work / "exports"),
                   "vae": Path(args.vae) if args.vae else build_export("vae", work / "exports")}
        from gen_keras.config import DataConfig
        from gen_keras.data import load_split

        digits = np.concatenate([np.round(load_split(DataConfig(dataset="mnist10k"), split, (28, 28, 1),
                                                     (0.0, 255.0))[0]).astype(np.uint8)
                                 for split in ("train", "test")])
        reps = -(-args.score_count // len(digits))
        archive = np.tile(digits, (reps, 1, 1, 1))[:args.score_count]
        npz = work / "archive.npz"
        np.savez(npz, x=archive)
        t0 = time.time()
        report = {
            "bench": "batch", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "load_avg_start": os.getloadavg()},
            "chunk_size": CHUNK, "beam": "DirectRunner, 2 workers, 1 onnxruntime thread each: worker "
                                         "processes for generate, threads of one process for score "
                                         "(gen-keras batch's defaults)",
            "plain": "one process, onnxruntime on all cores (the runtime cuts a costly chunk into "
                     "one part per core), the same per-chunk code (handler.infer, rows.to_table) and pyarrow's Parquet writer",
        }
        if "generate_dcgan" in jobs:
            report["generate_dcgan"] = one_job("dcgan", exports["dcgan"], "generate", work, count=args.count)
        if "generate_vae" in jobs:
            report["generate_vae"] = one_job("vae", exports["vae"], "generate", work, count=args.count)
        if "score_vae" in jobs:
            report["score_vae"] = one_job("vae", exports["vae"], "score", work, npz=npz,
                                          n_images=len(archive))
        done = [k for k in ("generate_dcgan", "generate_vae", "score_vae") if k in report]
        report["machine"]["load_avg_end"] = os.getloadavg()
        report["total_minutes"] = round((time.time() - t0) / 60, 1)
        report["targets"] = {
            "beam_at_least_80pct_of_plain": all(report[k]["beam_vs_plain"] >= 0.8 for k in done),
            "million_in_10_minutes": all(report[k]["beam_seconds"] <= 600
                                         for k in done if k.startswith("generate"))
            if args.count >= 1_000_000 else None,
            "worker_rss_below_2gb": all(report[k]["beam_memory"].get("peak_rss_mb_worker", 0) < 2048
                                        for k in done),
        }
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
