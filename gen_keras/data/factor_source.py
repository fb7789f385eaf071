"""Reading a prepared factor data set (``dsprites``, ``shapes3d``, ``dsprites:20000``, ...):
the element streams the training pipeline consumes, and bounded numpy reads of images with their
factors for evaluation.

Elements (one per example)::

    {"image": uint8 [H, W, C], "label": int64,              what every source yields
     "factors": int64 [K], "factor_values": float32 [K]}    the factor indices and real values

``label`` is the index of the set's ``label_factor`` (``shape`` for both sets). The label map of
``shapes3d`` is decoded only when asked for (``label_maps=True``): training never pays for it.

The folder is a TFDS data set (:attr:`PreparedFactorSet.builder`, ``tfds.builder(...)``), but the
element stream reads its shards directly: 16 files interleaved in blocks of 16 (TFDS's own read
order), the serialized examples parsed 256 at a time, then the PNGs decoded in parallel. Measured
on the full dsprites set (docs/disentanglement.md): about 2x the images per CPU second of
``builder.as_dataset``, whose per-example parse and decode maps cost more than the data. The
examples were written in a seeded random order, so this fixed-order stream is already shuffled
(see :mod:`gen_keras.data.factor_prepare`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from gen_keras.data.factor_prepare import MANIFEST, ensure_prepared
from gen_keras.data.factor_specs import FactorSpec, parse_factor_spec
from gen_keras.errors import ConfigError

SPLITS = ("train", "test")


@dataclasses.dataclass
class FactorSplit:
    """One split read into memory (at most ``limit`` examples)."""

    images: np.ndarray  # uint8 [N, H, W, C], or float32 in a model's value range
    labels: np.ndarray  # int32 [N]: the label factor's index
    factors: np.ndarray  # int64 [N, K]: factor indices
    factor_values: np.ndarray  # float32 [N, K]: their real values
    factor_names: tuple[str, ...]
    label_maps: np.ndarray | None = None  # uint8 [N, H, W, 1] (shapes3d, when asked for)


class PreparedFactorSet:
    """A prepared, verified factor data set folder (:func:`open_prepared`)."""

    PARSE_BATCH = 256
    CYCLE, BLOCK = 16, 16  # TFDS's default interleave: the same order as builder.as_dataset

    def __init__(self, spec: FactorSpec, folder: Path):
        self.spec, self.folder = spec, Path(folder)
        self.factor_set = spec.factor_set
        self.manifest = json.loads((self.folder / MANIFEST).read_text())

    @property
    def builder(self):
        """The folder as a TFDS data set (``tfds.builder_from_directory``)."""
        import tensorflow_datasets as tfds

        return tfds.builder_from_directory(str(self.folder))

    def num_examples(self, split: str) -> int:
        return int(self.manifest["splits"][_check_split(split)])

    def shard_files(self, split: str) -> list[str]:
        _check_split(split)
        return sorted(str(self.folder / r["file"]) for r in self.manifest["shards"] if r["split"] == split)

    def elements(self, split: str, *, label_maps: bool = False):
        """The split as a ``tf.data.Dataset`` of element dicts (module docstring)."""
        import tensorflow as tf

        k = len(self.factor_set.factors)
        channels = self.factor_set.image_shape[-1]
        with_map = label_maps and bool(self.factor_set.label_map_classes)
        spec = {"image": tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.FixedLenFeature([], tf.int64),
                "factors": tf.io.FixedLenFeature([k], tf.int64),
                "factor_values": tf.io.FixedLenFeature([k], tf.float32)}
        if with_map:
            spec["label_map"] = tf.io.FixedLenFeature([], tf.string)
        shape = tuple(self.factor_set.image_shape)

        def decode(ex):
            ex = dict(ex)
            ex["image"] = tf.ensure_shape(tf.io.decode_png(ex["image"], channels=channels), shape)
            if with_map:
                ex["label_map"] = tf.ensure_shape(tf.io.decode_png(ex["label_map"], channels=1),
                                                  shape[:2] + (1,))
            return ex

        files = self.shard_files(split)
        auto = tf.data.AUTOTUNE
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(self.CYCLE, len(files)),
            block_length=self.BLOCK, num_parallel_calls=auto, deterministic=True)
        ds = ds.batch(self.PARSE_BATCH).map(lambda x: tf.io.parse_example(x, spec),
                                            num_parallel_calls=auto, deterministic=True)
        ds = ds.unbatch().map(decode, num_parallel_calls=auto, deterministic=True)
        return ds.apply(tf.data.experimental.assert_cardinality(self.num_examples(split)))

    def read(self, split: str, limit: int, *, label_maps: bool = False) -> FactorSplit:
        """The first ``limit`` examples of ``split`` as numpy (a uniform random subset of the
        split: the shards hold it in a seeded random order)."""
        n = min(int(limit), self.num_examples(split))
        parts: dict[str, list] = {}
        for batch in self.elements(split, label_maps=label_maps).take(n).batch(2048):
            for key, value in batch.items():
                parts.setdefault(key, []).append(value.numpy())
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        return FactorSplit(images=cat["image"], labels=cat["label"].astype(np.int32),
                           factors=cat["factors"].astype(np.int64),
                           factor_values=cat["factor_values"].astype(np.float32),
                           factor_names=self.factor_set.factor_names,
                           label_maps=cat.get("label_map"))


def open_prepared(dataset: str, data_dir: Path, *, field: str = "data.dataset",
                  workers: int | None = None, progress=None) -> PreparedFactorSet:
    """The prepared set named by ``dataset`` under ``data_dir``, prepared on first use."""
    spec = parse_factor_spec(dataset, field)
    return PreparedFactorSet(spec, ensure_prepared(spec, data_dir, workers=workers, progress=progress))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {list(SPLITS)}")
    return split
