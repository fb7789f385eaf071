"""The Beam pipeline of a batch job: chunks → RunInference (the export) → rows → sharded
Parquet files, written into a temporary folder and published whole when the job has finished
(:mod:`.output`), so a failed, killed or running job never shows a half-written shard under
``--out``. :func:`run` is the list of steps."""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import uuid

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
        raise ConfigError(f"the {reader.kind!r} export has no {task!r} operation, so it cannot "
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

    # The clock starts when this worker finishes its first chunk (its start-up and the first
    # chunk's time are unknown here): the rate counts the items since, over at least a second.
    now = time.monotonic()
    done = _DONE.setdefault(token, {"chunks": 0, "items": 0, "start": now, "first": items})
    done["chunks"] += 1
    done["items"] += items
    if done["chunks"] % max(1, chunk.total // 20) == 0:
        elapsed = now - done["start"]
        rate = f" ({(done['items'] - done['first']) / elapsed:,.0f}/s)" if elapsed >= 1.0 else ""
        print(f"gen-keras batch {name}: worker {os.getpid()} done {done['chunks']} chunks, "
              f"{done['items']:,} items{rate}; the job has {chunk.total} chunks",
              file=sys.stderr, flush=True)


def run(job: BatchJob, beam_args: list[str] = ()) -> dict[str, int]:
    """Run the job; returns its counters (items, rows, chunks, skipped_unreadable and one
    skipped_<reason> per reason a file was skipped for)."""
    from gen_keras.batch.output import prepare_output

    source, described, reader = open_export(job)  # every check before anything is written
    chunks = plan_chunks(job, reader)
    args = default_runner_args(list(beam_args), job.job)
    check_png_dir(job)
    output = prepare_output(job.out)
    handler = make_handler(job, source, reader, args)
    log.info("batch %s: %d chunks of up to %d items through %s (%s)", job.job, len(chunks),
             job.chunk_size, described, " ".join(args))
    try:
        counters = run_pipeline(job, chunks, handler, reader, output.prefix, args)
        output.publish({"job": job.job, "export": described, "counters": counters})
    except BaseException:
        output.abandon()
        raise
    return counters


def open_export(job: BatchJob):
    """``(source for the workers, description, reader)``: the export resolved and verified here
    first, so a bad source fails before the pipeline starts (and a registry download lands in the
    cache the local workers then find verified)."""
    from gen_keras.exported.reader import ExportReader
    from gen_keras.exported.sources import resolve

    folder, described = resolve(job.export, tracking_uri=job.tracking_uri)
    # Workers open a registry source themselves (remote workers have no local copy).
    source = job.export if job.export.startswith(("models:/", "runs:/")) else str(folder)
    return source, described, ExportReader(folder)


def check_png_dir(job: BatchJob) -> None:
    if job.png_dir and "://" in job.png_dir:
        raise ConfigError(f"--png-dir {job.png_dir}: PNG files are written to a local folder only "
                          "(the Parquet rows carry every PNG)")


def make_handler(job: BatchJob, source: str, reader, args: list[str]):
    """The RunInference handler: ``job.threads`` onnxruntime threads per worker, or the cores
    shared out between the workers."""
    from gen_keras.batch.handler import ExportModelHandler

    threads = job.threads or max(1, available_cores() // workers_of(args))
    return ExportModelHandler(source, JOBS[job.job][0], threads, job.seed, job.tracking_uri)


def run_pipeline(job: BatchJob, chunks, handler, reader, prefix: str, args: list[str]) -> dict[str, int]:
    """Chunks → RunInference → rows → Parquet files ``<prefix>-SSSSS-of-NNNNN.parquet``; returns
    the job's counters."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    with beam.Pipeline(options=PipelineOptions(args)) as p:
        _ = (p | "chunks" >> beam.Create(chunks)
               | "spread" >> beam.Reshuffle()
               | "infer" >> RunInference(handler)
               | "rows" >> beam.Map(_Table(job, reader.value_range))
               | "parquet" >> beam.io.WriteToParquetBatched(prefix, schema(JOBS[job.job][1]),
                                                            file_name_suffix=".parquet",
                                                            num_shards=job.shards))
    return job_counters(p.result)


class _Table:
    """One chunk's predictions → its rows (a pyarrow table), counted; the test fault injection
    (``BatchJob._fail_at_chunk``) raises here."""

    def __init__(self, job: BatchJob, value_range):
        import apache_beam as beam

        from gen_keras.batch.handler import NAMESPACE

        self.name, self.result = job.job, JOBS[job.job][1]
        self.value_range, self.png_dir = value_range, job.png_dir or None
        self.fail_at, self.token = job._fail_at_chunk, uuid.uuid4().hex
        self.rows = beam.metrics.Metrics.counter(NAMESPACE, "rows")

    def __call__(self, prediction):
        chunk = prediction.example
        if chunk.index == self.fail_at:
            raise RuntimeError(f"planted failure at chunk {self.fail_at} (test fault injection)")
        table = to_table(prediction.inference, chunk, self.result, self.value_range, self.png_dir)
        self.rows.inc(table.num_rows)
        _progress(self.name, self.token, chunk, table.num_rows)
        return table


def job_counters(result) -> dict[str, int]:
    from gen_keras.batch.handler import NAMESPACE

    return {c.key.metric.name: int(c.committed if c.committed is not None else c.attempted)
            for c in result.metrics().query()["counters"] if c.key.metric.namespace == NAMESPACE}
