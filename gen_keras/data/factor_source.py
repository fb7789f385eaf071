"""Reading a prepared factor data set (``dsprites``, ``shapes3d``, ``dsprites:20000``, ...)
through TFDS: the element streams the training pipeline consumes, and bounded numpy reads of
images with their factors for evaluation.

Elements (one per example)::

    {"image": uint8 [H, W, C], "label": int64,              what every source yields
     "factors": int64 [K], "factor_values": float32 [K]}    the factor indices and real values

``label`` is the index of the set's ``label_factor`` (``shape`` for both sets). The label map of
``shapes3d`` is decoded only when asked for (``label_maps=True``): training never pays for it.
The shards are read interleaved (TFDS: 16 files at a time, blocks of 16, parallel reads) in a
fixed order; the examples were written in a seeded random order, so this stream is already
shuffled (see :mod:`gen_keras.data.factor_prepare`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gen_keras.data.factor_prepare import ensure_prepared
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
    """A prepared, verified factor data set folder, read through ``tfds.builder_from_directory``."""

    def __init__(self, spec: FactorSpec, folder: Path):
        import tensorflow_datasets as tfds

        self.spec, self.folder = spec, Path(folder)
        self.factor_set = spec.factor_set
        self.builder = tfds.builder_from_directory(str(self.folder))

    def num_examples(self, split: str) -> int:
        return int(self.builder.info.splits[_check_split(split)].num_examples)

    def elements(self, split: str, *, label_maps: bool = False):
        """The split as a ``tf.data.Dataset`` of element dicts (module docstring)."""
        import tensorflow_datasets as tfds

        has_map = "label_map" in self.builder.info.features
        decoders = {"label_map": tfds.decode.SkipDecoding()} if has_map and not label_maps else None
        # No TFDS auto-cache: it would hold a whole small-enough split in memory behind the
        # pipeline's back; the pipeline decides about caching (data.cache_budget_mb).
        read_config = tfds.ReadConfig(try_autocache=False, interleave_cycle_length=16)
        ds = self.builder.as_dataset(split=_check_split(split), shuffle_files=False,
                                     decoders=decoders, read_config=read_config)
        keep = ("image", "label", "factors", "factor_values") + (("label_map",) if has_map and label_maps else ())
        return ds.map(lambda ex: {k: ex[k] for k in keep})

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
