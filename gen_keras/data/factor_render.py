"""A factor data set rendered on the fly (``data.factor_stream: render``): the same examples as
the prepared shards of :mod:`gen_keras.data.factor_source` — the split's combinations, the same
train/test split by the factor-tuple hash, pixels from the same renderer — drawn in a fresh
seeded random order every epoch, with no preparation, no disk and no PNG decoding.

Why: the full dSprites set (737,280 combinations) needs a one-off preparation and its shards
stream at ~6,700 images/s through PNG decoding, while the numpy renderer draws ~35,000 images/s
on one core (docs/disentanglement.md); a model that trains at thousands of images per second
should see all combinations, not a 20,000-image subset read over and over.

Elements are the shard reader's (``image`` uint8, ``label``, ``factors``, ``factor_values``),
rendered ``CHUNK`` at a time in a Python generator and unbatched, so the pipeline after them
(:func:`gen_keras.data.pipeline.make_pipeline`) is the one every source goes through.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from gen_keras.data.factor_sets import unflatten_index
from gen_keras.data.factor_specs import FactorSpec, split_indices

CHUNK = 512  # images rendered per numpy call


class RenderedFactorSet:
    """The splits of a factor data set string, rendered on demand (module docstring)."""

    def __init__(self, spec: FactorSpec, seed: int = 0):
        self.spec, self.factor_set, self.seed = spec, spec.factor_set, int(seed)
        self.flat = split_indices(spec)
        self._epochs = {split: itertools.count() for split in self.flat}

    def num_examples(self, split: str) -> int:
        return len(self.flat[split])

    @property
    def source_uri(self) -> str:
        """The renderer's source file: what the examples are made from (for ``mlflow.log_input``)."""
        import inspect

        return str(Path(inspect.getsourcefile(self.factor_set.render)).resolve())

    def order(self, split: str, epoch: int) -> np.ndarray:
        """The flat indices of ``split`` in the order of ``epoch``: the training split in a fresh
        seeded permutation each epoch, the test split always in the same seeded order."""
        flat = self.flat[split]
        key = [self.seed, epoch] if split == "train" else [self.seed, 1 << 30]
        return np.random.default_rng(key).permutation(flat)

    def chunks(self, split: str):
        """One pass over ``split``: dicts of rendered arrays, :data:`CHUNK` examples each."""
        fs = self.factor_set
        order = self.order(split, next(self._epochs[split]) if split == "train" else 0)
        for start in range(0, len(order), CHUNK):
            flat = order[start:start + CHUNK]
            indices = unflatten_index(flat, fs.factor_sizes)
            yield {"image": fs.render(indices)["image"],
                   "label": indices[:, fs.label_index].astype(np.int64),
                   "factors": indices.astype(np.int64),
                   "factor_values": fs.factor_values(indices).astype(np.float32)}

    def elements(self, split: str):
        """The split as a ``tf.data.Dataset`` of element dicts (one per example)."""
        import tensorflow as tf

        k = len(self.factor_set.factors)
        signature = {"image": tf.TensorSpec([None, *self.factor_set.image_shape], tf.uint8),
                     "label": tf.TensorSpec([None], tf.int64),
                     "factors": tf.TensorSpec([None, k], tf.int64),
                     "factor_values": tf.TensorSpec([None, k], tf.float32)}
        ds = tf.data.Dataset.from_generator(lambda: self.chunks(split), output_signature=signature)
        ds = ds.unbatch()
        return ds.apply(tf.data.experimental.assert_cardinality(self.num_examples(split)))
