"""The Beam pipeline of a batch job: chunks → RunInference (the export) → rows → sharded
Parquet files (written under temporary names and renamed when the job commits, so a failed or
running job never shows a half-written shard under its final name)."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import uuid
from pathlib import Path

from gen_keras.batch.rows import JOBS, schema, to_table
from gen_keras.errors import ConfigError
from gen_keras.exported.runtimes import available_cores

log = logging.getLogger("gen_keras.batch")


@dataclasses.dataclass
class BatchJob:
    job: str  # generate | embed | score | reconstruct | translate
    export: str  # an export folder every worker can read, or models:/NAME@ALIAS, runs:/ID
    out: str  # output folder (local, or a URL a Beam file system writes: gs://, s3://, hdfs://)
    count: int = 0  # generate: how many items ...
    seed: int = 0  # ... from seed .. seed + count - 1; score: the noise seed
    input: str = ""  # embed/score/reconstruct/translate: folder:<path> | npz:<path> | a data set
    limit: int = 0
    chunk_size: int = 256
    shards: int = 0  # 0: the runner decides
    png_dir: str = ""
    threads: int = 0  # onnxruntime threads per worker (0: cores / workers)
    tracking_uri: str | None = None  # the registry of a models:/ or runs:/ export
    _fail_at_chunk: int = -1  # fault injection for tests: this chunk's rows raise


# Jobs whose per-item work after the model is Python (a PNG per image) run in worker processes;
# numeric jobs (codes, scores) in threads of one process: onnxruntime releases the GIL, and the
# processes' start-up (~2 s) would be most of a short scoring job (docs/batch.md, measured).
PROCESS_JOBS = ("generate", "reconstruct", "translate")


def default_runner_args(args: list[str], job: str = "generate") -> list[str]:
    """The DirectRunner over every core (processes for image jobs, threads for numeric ones),
    unless the caller names a runner or a mode."""
    args = list(args)
    if not any(a.startswith("--runner") for a in args):
        args += ["--runner=DirectRunner"]
    runner = next(a.split("=", 1)[1] for a in args if a.startswith("--runner=")) if any(
        a.startswith("--runner=") for a in args) else args[args.index("--runner") + 1]
    if runner == "DirectRunner":
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={available_cores()}")
        if not any(a.startswith("--direct_running_mode") for a in args):
            mode = "multi_processing" if job in PROCESS_JOBS else "multi_threading"
            args.append(f"--direct_running_mode={mode}")
        if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
            args.append("--default_sdk_harness_log_level=ERROR")  # workers: errors only
    return args


def workers_of(args: list[str]) -> int:
    for a in args:
        if a.startswith("--direct_num_workers="):
            return max(1, int(a.split("=", 1)[1]))
    return 1


def plan_chunks(job: BatchJob, reader):
    from gen_keras.batch.work import image_chunks, seed_chunks

    if job.job not in JOBS:
        raise ConfigError(f"batch job {job.job!r} is not one of {sorted(JOBS)}")
    task = JOBS[job.job][0]
    if not reader.adapter.has_task(task):
        raise ConfigError(f"the {reader.kind!r} export has no {task} operation, so it cannot "
                          f"{job.job} (it has {', '.join(reader.operations)})")
    if job.job == "generate":
        return seed_chunks(job.count, job.seed, job.chunk_size)
    if not job.input:
        raise ConfigError(f"batch {job.job} needs --input (folder:<path>, npz:<path> or a data set)")
    return image_chunks(job.input, job.chunk_size, reader.image_shape, job.limit)


_DONE: dict = {}  # job token -> what this worker process has done of that job


def _progress(name: str, token: str, chunk, items: int) -> None:
    """A plain progress line from the worker every ~5% of the job's chunks (worker logs are
    relayed twice by the DirectRunner, and chatty)."""
    import time

    done = _DONE.setdefault(token, {"chunks": 0, "items": 0, "start": time.monotonic()})
    done["chunks"] += 1
    done["items"] += items
    if done["chunks"] % max(1, chunk.total // 20) == 0:
        rate = done["items"] / max(time.monotonic() - done["start"], 1e-6)
        print(f"gen-keras batch {name}: worker {os.getpid()} done {done['chunks']} chunks, "
              f"{done['items']:,} items ({rate:,.0f}/s); the job has {chunk.total} chunks",
              file=sys.stderr, flush=True)


def run(job: BatchJob, beam_args: list[str] = ()) -> dict[str, int]:
    """Run the job; returns its counters (items, skipped_unreadable, chunks, rows)."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from gen_keras.batch.handler import NAMESPACE, ExportModelHandler
    from gen_keras.exported.reader import ExportReader
    from gen_keras.exported.sources import resolve

    # Resolved and verified here first: a bad source fails before the pipeline starts (and a
    # registry download lands in the cache the local workers then find verified).
    folder, described = resolve(job.export, tracking_uri=job.tracking_uri)
    reader = ExportReader(folder)
    chunks = plan_chunks(job, reader)
    args = default_runner_args(list(beam_args), job.job)
    threads = job.threads or max(1, available_cores() // workers_of(args))
    task, result = JOBS[job.job]
    remote = "://" in job.out
    if job.png_dir and "://" in job.png_dir:
        raise ConfigError(f"--png-dir {job.png_dir}: PNG files are written to a local folder only "
                          "(the Parquet rows carry every PNG)")
    out = job.out.rstrip("/")
    if FileSystems.match([f"{out}/*.parquet"])[0].metadata_list:
        raise ConfigError(f"--out {out} already holds Parquet files; choose a new folder")
    if not remote:
        Path(out).mkdir(parents=True, exist_ok=True)
    # Workers open the registry source themselves (remote workers have no local copy).
    source = job.export if job.export.startswith(("models:/", "runs:/")) else str(folder)
    handler = ExportModelHandler(source, task, threads, job.seed, job.tracking_uri)
    value_range, png_dir = reader.value_range, job.png_dir or None
    log.info("batch %s: %d chunks of up to %d items through %s (%s)", job.job, len(chunks),
             job.chunk_size, described, " ".join(args))
    try:
        with beam.Pipeline(options=PipelineOptions(args)) as p:
            rows_counter = beam.metrics.Metrics.counter(NAMESPACE, "rows")

            fail_at, token = job._fail_at_chunk, uuid.uuid4().hex

            def table(prediction):
                chunk = prediction.example
                if chunk.index == fail_at:
                    raise RuntimeError(f"planted failure at chunk {fail_at} (test fault injection)")
                rows = to_table(prediction.inference, chunk, result, value_range, png_dir)
                rows_counter.inc(rows.num_rows)
                _progress(job.job, token, chunk, rows.num_rows)
                return rows

            _ = (p | "chunks" >> beam.Create(chunks)
                   | "spread" >> beam.Reshuffle()
                   | "infer" >> RunInference(handler)
                   | "rows" >> beam.Map(table)
                   | "parquet" >> beam.io.WriteToParquetBatched(f"{out}/part", schema(result),
                                                                 file_name_suffix=".parquet",
                                                                 num_shards=job.shards))
    except BaseException:
        # Beam's file sink writes under <out>/beam-temp-* and renames only when every bundle is
        # done: a failed job never shows a final shard; its temporary files go too.
        if not remote:
            for tmp in Path(out).glob("beam-temp-*"):
                shutil.rmtree(tmp, ignore_errors=True)
        raise
    counters = {c.key.metric.name: int(c.committed if c.committed is not None else c.attempted)
                for c in p.result.metrics().query()["counters"] if c.key.metric.namespace == NAMESPACE}
    return counters
