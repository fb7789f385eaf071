"""Preparing a factor data set once: render every example, write sharded TFRecords in TFDS's
own layout, and make the folder appear only when it is complete.

Layout under the cache (``gen_keras.data.sources.default_data_dir``)::

    <data_dir>/gen_keras_dsprites/1.0.0/            (``_n20000`` for the subset dsprites:20000)
        gen_keras_dsprites-train.tfrecord-00000-of-00067 ...   shards, ~10,000 examples each
        gen_keras_dsprites-test.tfrecord-00000-of-00008 ...
        dataset_info.json, features.json                       TFDS metadata
        manifest.json                                          size + sha256 of every file

``tfds.builder_from_directory(<that folder>)`` (or ``tfds.builder('gen_keras_dsprites',
data_dir=<data_dir>)``) reads it like any TFDS data set.

Why our own writer and not a TFDS ``GeneratorBasedBuilder``: TFDS's writer runs in one process
(parallel writing needs Apache Beam), PNG-encodes through a TensorFlow session and shuffles
through temporary bucket files; measured here (``bench/factor_data.py --tfds-probe``) it wrote
1,440 dSprites / 820 colour-scene examples per CPU second: 8.5 / 9.8 minutes of one core for the
full sets, against 128 / 281 CPU seconds over two processes for this writer. This writer renders
and encodes in ``workers`` processes, PNG-encodes with PIL and builds the ``tf.train.Example`` s
itself in the layout TFDS reads (TFDS's metadata is written by
``tfds.folder_dataset.write_metadata``, and a test reads every feature back through TFDS).

Atomicity: everything is written into ``<version>.incomplete-<random>`` beside the final folder,
the manifest (size and sha256 of every file) last, then the folder is renamed into place — a
single ``rename``, so a killed preparation leaves only an ``.incomplete-`` folder that nothing
reads and the next preparation deletes. Preparation runs under a file lock, so concurrent
processes (parallel tests, workers) prepare once and the others wait. On every open the files
are checked against the manifest (:func:`verify`); a mismatch is a
:class:`~gen_keras.errors.DataIntegrityError` naming the folder to delete.

Example order: the examples of a split are written in a seeded random permutation of its
combinations, so reading the shards in order (or interleaved) is already a uniform shuffle and
``data.limit_train=N`` is a uniform random N-subset of the split.
"""
from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from gen_keras.data.factor_sets import SPLIT_SEED, SUBSET_SEED, TEST_FRACTION, unflatten_index
from gen_keras.data.factor_specs import FactorSpec, split_indices
from gen_keras.errors import DataIntegrityError
from gen_keras.files import sha256_file

log = logging.getLogger("gen_keras.data")

SHARD_EXAMPLES = 10_000
RENDER_CHUNK = 1_000  # images rendered per numpy call
ORDER_SEED = 0  # the permutation examples are written in
PNG_COMPRESS_LEVEL = 3  # measured: ~1.5x the speed of level 6 for ~18% more bytes
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def prepared_dir(spec: FactorSpec, data_dir: Path) -> Path:
    return Path(data_dir) / spec.folder_name / spec.factor_set.version


def ensure_prepared(spec: FactorSpec, data_dir: Path, *, workers: int | None = None,
                    progress=None) -> Path:
    """The verified prepared folder of ``spec`` under ``data_dir``, preparing it first if it
    does not exist (under a lock: concurrent callers prepare once)."""
    final = prepared_dir(spec, data_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not final.exists():
            prepare(spec, data_dir, workers=workers, progress=progress)
    verify(final, spec)
    return final


def prepare(spec: FactorSpec, data_dir: Path, *, workers: int | None = None,
            shard_examples: int = SHARD_EXAMPLES, progress=None) -> Path:
    """Render and write ``spec`` into its folder under ``data_dir`` (see the module docstring).
    The caller holds the lock (:func:`ensure_prepared`). Returns the final folder."""
    final = prepared_dir(spec, data_dir)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    for stale in final.parent.glob(f"{final.name}.incomplete-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed preparation's leftovers
    tmp = final.parent / f"{final.name}.incomplete-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    started, cpu_started = time.time(), _cpu_seconds()
    workers = workers or (min(2, os.cpu_count() or 1) if spec.num_examples > 50_000 else 1)
    log.info("preparing %s: %d images into %s (%d writer process(es), once)", spec.spec,
             spec.num_examples, final, workers)
    try:
        shards = _run(shard_tasks(spec, tmp, shard_examples), workers, progress)
        _write_tfds_metadata(spec, tmp, shards)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a kill -9 cannot get here: the next run cleans
        raise
    manifest = {
        "format": MANIFEST_FORMAT, "spec": spec.spec, "name": spec.folder_name,
        "factor_set": spec.factor_set.name, "version": spec.factor_set.version,
        "count": spec.num_examples, "subset_seed": SUBSET_SEED if spec.count else None,
        "split_seed": SPLIT_SEED, "test_fraction": TEST_FRACTION, "order_seed": ORDER_SEED,
        "factors": [{"name": f.name, "values": list(f.values)} for f in spec.factor_set.factors],
        "splits": {s: sum(r["num_examples"] for r in shards if r["split"] == s) for s in ("train", "test")},
        "shards": shards,
        "metadata": [_file_record(tmp / name) for name in ("dataset_info.json", "features.json")],
        "seconds": round(time.time() - started, 1), "workers": workers,
        "cpu_seconds": round(_cpu_seconds() - cpu_started, 1),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, final)  # the one step that makes the set visible
    log.info("prepared %s in %.0f s: %s", spec.spec, manifest["seconds"], final)
    return final


def verify(folder: Path, spec: FactorSpec | None = None) -> dict:
    """Check every file of a prepared folder against its manifest (size and sha256) and that
    no shard is missing or extra; returns the manifest."""
    folder = Path(folder)
    fix = f"delete the folder {folder} and it is prepared again on next use"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DataIntegrityError(f"{folder}: no readable {MANIFEST} ({exc}); {fix}") from None
    if spec is not None and (manifest.get("name") != spec.folder_name
                             or manifest.get("version") != spec.factor_set.version):
        raise DataIntegrityError(f"{folder}: the manifest describes {manifest.get('name')} "
                                 f"{manifest.get('version')}, not {spec.folder_name}; {fix}")
    records = [*manifest["shards"], *manifest["metadata"]]
    listed = {r["file"] for r in records}
    extra = sorted(p.name for p in folder.iterdir() if ".tfrecord-" in p.name and p.name not in listed)
    if extra:
        raise DataIntegrityError(f"{folder}: shard(s) not in the manifest: {extra[:3]}; {fix}")
    for r in records:
        path = folder / r["file"]
        if not path.is_file():
            raise DataIntegrityError(f"{path} is missing; {fix}")
        if path.stat().st_size != r["bytes"] or sha256_file(path) != r["sha256"]:
            raise DataIntegrityError(f"{path}: size or sha256 differs from the manifest; {fix}")
    return manifest


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the writer processes)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _file_record(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


# ----------------------------------------------------------------------------------------------
# Shards
# ----------------------------------------------------------------------------------------------
def shard_tasks(spec: FactorSpec, folder: Path, shard_examples: int = SHARD_EXAMPLES) -> list[dict]:
    """One task per shard file: its path and the flat indices it holds, in write order."""
    tasks = []
    for split, flat in split_indices(spec).items():
        order = np.random.default_rng([ORDER_SEED, 0 if split == "train" else 1]).permutation(flat)
        n_shards = max(1, math.ceil(len(order) / shard_examples))
        for i, part in enumerate(np.array_split(order, n_shards)):
            name = f"{spec.folder_name}-{split}.tfrecord-{i:05d}-of-{n_shards:05d}"
            tasks.append({"spec": spec.spec, "split": split, "path": str(folder / name),
                          "flat": part})
    return tasks


def _run(tasks: list[dict], workers: int, progress) -> list[dict]:
    if workers <= 1:
        results = []
        for t in tasks:
            results.append(write_shard(t))
            if progress:
                progress(len(results), len(tasks))
        return results
    import multiprocessing

    # spawn, not fork: the parent may already run TensorFlow's threads.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = []
        for r in pool.imap(write_shard, tasks):
            results.append(r)
            if progress:
                progress(len(results), len(tasks))
    return results


def write_shard(task: dict) -> dict:
    """Render, encode and write one shard; returns its manifest record."""
    import tensorflow as tf

    from gen_keras.data.factor_specs import parse_factor_spec

    factor_set = parse_factor_spec(task["spec"]).factor_set
    path = Path(task["path"])
    flat = np.asarray(task["flat"], np.int64)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for start in range(0, len(flat), RENDER_CHUNK):
            chunk = flat[start:start + RENDER_CHUNK]
            indices = unflatten_index(chunk, factor_set.factor_sizes)
            for record in serialize_examples(factor_set, indices, chunk):
                writer.write(record)
    return {"split": task["split"], "num_examples": len(flat), **_file_record(path)}


def serialize_examples(factor_set, indices: np.ndarray, flat: np.ndarray) -> list[bytes]:
    """``tf.train.Example`` bytes in the layout of :func:`tfds_features` (PNG images)."""
    import tensorflow as tf

    rendered = factor_set.render(indices)
    values = factor_set.factor_values(indices)
    label_index = factor_set.label_index
    feature = tf.train.Feature
    out = []
    for i in range(len(indices)):
        f = {
            "image": feature(bytes_list=tf.train.BytesList(value=[png(rendered["image"][i])])),
            "label": feature(int64_list=tf.train.Int64List(value=[int(indices[i, label_index])])),
            "factors": feature(int64_list=tf.train.Int64List(value=indices[i].tolist())),
            "factor_values": feature(float_list=tf.train.FloatList(value=values[i].tolist())),
            "index": feature(int64_list=tf.train.Int64List(value=[int(flat[i])])),
        }
        if "label_map" in rendered:
            f["label_map"] = feature(bytes_list=tf.train.BytesList(value=[png(rendered["label_map"][i])]))
        out.append(tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString())
    return out


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# TFDS metadata
# ----------------------------------------------------------------------------------------------
def tfds_features(factor_set):
    import tensorflow_datasets as tfds

    k = len(factor_set.factors)
    features = {
        "image": tfds.features.Image(shape=factor_set.image_shape),
        "label": tfds.features.ClassLabel(num_classes=factor_set.num_classes),
        "factors": tfds.features.Tensor(shape=(k,), dtype=np.int64),
        "factor_values": tfds.features.Tensor(shape=(k,), dtype=np.float32),
        "index": tfds.features.Scalar(dtype=np.int64),
    }
    if factor_set.label_map_classes:
        features["label_map"] = tfds.features.Image(shape=factor_set.image_shape[:2] + (1,))
    return tfds.features.FeaturesDict(features)


def _write_tfds_metadata(spec: FactorSpec, folder: Path, shards: list[dict]) -> None:
    import tensorflow_datasets as tfds

    factor_set = spec.factor_set
    split_infos = []
    for split in ("train", "test"):
        mine = sorted((r for r in shards if r["split"] == split), key=lambda r: r["file"])
        split_infos.append(tfds.core.SplitInfo(
            name=split, shard_lengths=[r["num_examples"] for r in mine],
            num_bytes=sum(r["bytes"] for r in mine), filename_template=None))
    names = ", ".join(f"{f.name} ({f.size})" for f in factor_set.factors)
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=tfds_features(factor_set), split_infos=split_infos,
        version=factor_set.version, check_data=False,
        description=(f"{factor_set.description} Factors: {names}. label = {factor_set.label_factor}. "
                     f"Test split: hash of the factor tuple < {TEST_FRACTION} (seed {SPLIT_SEED})."))
