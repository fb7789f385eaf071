"""Data sets with known generative factors: what each one is, as data (the sets themselves are
defined beside their renderers, ``render_dsprites.py`` and ``render_shapes3d.py``; their names
and the data set strings are in ``factor_specs.py``).

A :class:`FactorSet` is a name, an image shape, an ordered list of :class:`Factor` s (each a name
and the real value of every index), the factor whose index is the example's ``label``, and the
renderer that draws any combination on demand. Every combination of factor indices is one
example, so a set of sizes ``(3, 6, 40, 32, 32)`` holds 737,280 examples; its *flat index* is the
mixed-radix number of the index tuple, last factor fastest (the layout of the original dSprites
archive).

Data set strings (``data.dataset``): ``dsprites`` and ``shapes3d`` are the full sets;
``dsprites:20000`` is a subset of 20,000 combinations drawn without replacement with the fixed
:data:`SUBSET_SEED` (the same 20,000 in every process and on every machine), prepared into its own
folder. The train/test split is a property of the data set, not of a run: an example is in
``test`` when a seeded hash of its factor tuple falls below :data:`TEST_FRACTION`
(:func:`is_test`), so a combination is in the same split in the full set and in every subset.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

TEST_FRACTION = 0.1
SPLIT_SEED = 0
SUBSET_SEED = 0


@dataclasses.dataclass(frozen=True)
class Factor:
    name: str
    values: tuple[float, ...]  # the real value of each index
    discrete: bool = False  # categorical (no order): SAP scores it by classification

    @property
    def size(self) -> int:
        return len(self.values)


@dataclasses.dataclass(frozen=True)
class FactorSet:
    name: str
    image_shape: tuple[int, int, int]
    factors: tuple[Factor, ...]
    label_factor: str  # the factor whose index is the example's "label"
    # factor indices int [N, K] -> {"image": uint8 [N, H, W, C], optional "label_map": uint8 [N, H, W, 1]}
    render: Callable[[np.ndarray], dict[str, np.ndarray]]
    version: str  # bump when the renderer's pixels change: prepared folders are keyed by it
    description: str
    label_map_classes: tuple[str, ...] = ()  # class names of the per-pixel label map, if any

    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(f.size for f in self.factors)

    @property
    def num_combinations(self) -> int:
        return math.prod(self.factor_sizes)

    @property
    def label_index(self) -> int:
        return self.factor_names.index(self.label_factor)

    @property
    def num_classes(self) -> int:
        return self.factors[self.label_index].size

    def factor_values(self, indices) -> np.ndarray:
        """Real values ``float32 [N, K]`` of factor indices ``[N, K]``."""
        indices = self.check_indices(indices)
        return np.stack([np.asarray(f.values, np.float32)[indices[:, k]]
                         for k, f in enumerate(self.factors)], axis=1)

    def check_indices(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 2 or indices.shape[1] != len(self.factors):
            raise ValueError(f"{self.name}: factor indices must be [N, {len(self.factors)}] "
                             f"({', '.join(self.factor_names)}), got shape {indices.shape}")
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"{self.name}: factor indices must be integers, got {indices.dtype}")
        sizes = np.asarray(self.factor_sizes)
        bad = (indices < 0) | (indices >= sizes)
        if bad.any():
            k = int(np.argwhere(bad)[0][1])
            raise ValueError(f"{self.name}: factor {self.factor_names[k]!r} index out of range "
                             f"0..{sizes[k] - 1}")
        return indices.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Index arithmetic and the split
# ----------------------------------------------------------------------------------------------
def flat_index(indices, sizes) -> np.ndarray:
    """Mixed-radix number of each index tuple ``[N, K]`` (last factor fastest) → ``int64 [N]``."""
    indices = np.asarray(indices, np.int64)
    out = np.zeros(indices.shape[0], np.int64)
    for k, size in enumerate(sizes):
        out = out * int(size) + indices[:, k]
    return out


def unflatten_index(flat, sizes) -> np.ndarray:
    """Inverse of :func:`flat_index`: ``int64 [N]`` → ``int64 [N, K]``."""
    rest = np.asarray(flat, np.int64).copy()
    out = np.empty((rest.shape[0], len(sizes)), np.int64)
    for k in reversed(range(len(sizes))):
        out[:, k] = rest % int(sizes[k])
        rest //= int(sizes[k])
    return out


def splitmix64(x) -> np.ndarray:
    """The SplitMix64 mixing function (Steele, Lea & Flood 2014) on ``uint64`` arrays: one
    step of the generator whose state is ``x``. Seeded with 0 its first output is
    0xE220A8397B1DCDAF."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tuple_hash_unit(indices, seed: int = SPLIT_SEED) -> np.ndarray:
    """A seeded hash of each factor tuple ``[N, K]``, as a float64 in [0, 1): the tuple's
    entries are folded in one at a time (``h = splitmix64(h ^ index_k)``), so it depends on the
    tuple itself, not on where the example sits in a file or a subset."""
    indices = np.asarray(indices, np.int64)
    h = splitmix64(np.full(indices.shape[0], seed, np.uint64))
    for k in range(indices.shape[1]):
        h = splitmix64(h ^ indices[:, k].astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def is_test(indices, seed: int = SPLIT_SEED, fraction: float = TEST_FRACTION) -> np.ndarray:
    """``bool [N]``: the examples of the test split (hash of the factor tuple < ``fraction``)."""
    return tuple_hash_unit(indices, seed) < fraction


def subset_flat_indices(num_combinations: int, count: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """The ``count`` flat indices of a subset, sorted: a seeded draw without replacement."""
    if count >= num_combinations:
        return np.arange(num_combinations, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_combinations, size=count, replace=False).astype(np.int64))
