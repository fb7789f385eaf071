"""The preparation of a ``folder:`` data set (:mod:`gen_keras.data.folder_prepare`) as an Apache
Beam pipeline, for folders of millions of images: one work item per shard, spread over the
runner's workers (the DirectRunner's processes here; Dataflow, Flink or Spark workers elsewhere).

The pipeline writes exactly what the in-process preparation writes: the same plan of which file
goes into which shard (:func:`~gen_keras.data.folder_prepare.plan_shards`), the same decoding
(:func:`~gen_keras.data.folder_prepare.encode_chunk`) and the same example bytes
(:class:`~gen_keras.data.folder_prepare.ShardAccount`), so its shards are byte-identical to the
in-process ones (tested on the DirectRunner with two worker processes). Everything around it —
the file list, the fingerprint, appending, the manifest that makes a part visible, the lock — is
the in-process code: only the writing of a part's shards moves to Beam.

    gen-keras prepare --config CFG --beam -- --runner=DirectRunner --direct_num_workers=2 \\
        --direct_running_mode=multi_processing

Each worker writes its shard and a small JSON account of it (kept, skipped and why, conversions,
size, sha256) into the part's temporary folder; the launcher reads the accounts once the pipeline
has finished, writes ``files.json`` and renames the part into place. Workers count ``kept`` and
``skipped_<kind>`` in Beam's metrics (Dataflow shows them while the job runs).

Where the files live: the image folder and the data cache must be paths every worker can read and
write — a local disk for the DirectRunner or a one-machine Flink/Spark, a shared mount (NFS,
Filestore, Cloud Storage FUSE) on a cluster. Plain ``gs://`` URLs are not taken: the file list and
the manifest are read and written with local file operations.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from gen_keras.data.folder_prepare import (
    CHUNK_FILES,
    SHARD_EXAMPLES,
    FileEntry,
    ShardAccount,
    encode_chunk,
    fingerprint,
    plan_shards,
    shard_name,
)

NAMESPACE = "gen_keras.prepare"


def runner_args(args) -> list[str]:
    """Beam options: the DirectRunner over the usable cores in processes, unless named."""
    args = list(args)
    if not any(a.startswith("--runner") for a in args):
        args.append("--runner=DirectRunner")
    if "--runner=DirectRunner" in args:
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={len(os.sched_getaffinity(0))}")
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append("--direct_running_mode=multi_processing")
    return args


def beam_part_writer(beam_args=(), shard_examples: int = SHARD_EXAMPLES):
    """A ``part_writer`` for :func:`gen_keras.data.folder_prepare.ensure_prepared` that writes
    the part's shards with a Beam pipeline run with ``beam_args``."""

    def write(root: Path, entries: list[FileEntry], settings, part_dir: Path, **_) -> list[dict]:
        return run_part(root, entries, settings, part_dir, beam_args, shard_examples)

    return write


def run_part(root: Path, entries: list[FileEntry], settings, part_dir: Path, beam_args=(),
             shard_examples: int = SHARD_EXAMPLES) -> list[dict]:
    """Write one part's shards into ``part_dir`` on Beam; returns the shard accounts in order."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    shards = plan_shards(entries, fingerprint(settings, entries), shard_examples)
    tasks = [{"index": i, "total": len(shards), "root": str(root), "part_dir": str(part_dir),
              "image_shape": list(settings.image_shape), "resize": settings.resize,
              "files": [dataclasses.astuple(e) for e in files]} for i, files in enumerate(shards)]
    with beam.Pipeline(options=PipelineOptions(runner_args(beam_args))) as p:
        _ = (p | "shards" >> beam.Create(tasks)
               | "spread" >> beam.Reshuffle()
               | "write" >> beam.Map(write_shard))
    records = []
    for i in range(len(shards)):
        account = Path(part_dir) / f".{shard_name(i, len(shards))}.json"
        records.append(json.loads(account.read_text()))
        account.unlink()
    return records


def write_shard(task: dict) -> str:
    """One shard: decode its files, write the TFRecord file and its account (a Beam worker)."""
    import tensorflow as tf
    from apache_beam.metrics import Metrics

    from gen_keras.files import atomic_write_text

    files = [FileEntry(*row) for row in task["files"]]
    account = ShardAccount(shard_name(task["index"], task["total"]))
    path = Path(task["part_dir"]) / account.name
    with tf.io.TFRecordWriter(str(path)) as writer:
        for s in range(0, len(files), CHUNK_FILES):
            chunk = files[s:s + CHUNK_FILES]
            results = encode_chunk((task["root"], [e.path for e in chunk],
                                    tuple(task["image_shape"]), task["resize"]))
            for entry, result in zip(chunk, results):
                example = account.add(entry, result)
                if example is not None:
                    writer.write(example)
    record = account.record(path)
    Metrics.counter(NAMESPACE, "kept").inc(record["num_examples"])
    for skip in record["skips"]:
        Metrics.counter(NAMESPACE, f"skipped_{skip['kind']}").inc()
    atomic_write_text(Path(task["part_dir"]) / f".{account.name}.json", json.dumps(record))
    return account.name
