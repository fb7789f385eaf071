"""The factor data sets by name, and the data set strings that select them
(``dsprites``, ``dsprites:20000``, ``shapes3d``, ``shapes3d:<count>``): see
:mod:`gen_keras.data.factor_sets` for what a subset and the split are.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gen_keras.data.factor_sets import FactorSet, is_test, subset_flat_indices, unflatten_index
from gen_keras.errors import ConfigError


def factor_sets() -> dict[str, FactorSet]:
    """Every factor data set by name (the renderers are imported on first use)."""
    from gen_keras.data.render_dsprites import DSPRITES
    from gen_keras.data.render_shapes3d import SHAPES3D

    return {s.name: s for s in (DSPRITES, SHAPES3D)}


FACTOR_SET_NAMES = ("dsprites", "shapes3d")


def is_factor_dataset(name: str) -> bool:
    return name.partition(":")[0] in FACTOR_SET_NAMES


@dataclasses.dataclass(frozen=True)
class FactorSpec:
    """A parsed data set string: the set and, for a subset, its size (0 = the full set)."""

    spec: str
    factor_set: FactorSet
    count: int = 0

    @property
    def num_examples(self) -> int:
        return self.count or self.factor_set.num_combinations

    @property
    def folder_name(self) -> str:
        """The TFDS data set name on disk (``gen_keras_dsprites``, ``gen_keras_dsprites_n20000``)."""
        base = f"gen_keras_{self.factor_set.name}"
        return f"{base}_n{self.count}" if self.count else base


def parse_factor_spec(spec: str, field: str = "data.dataset") -> FactorSpec:
    """``dsprites`` | ``dsprites:<count>`` (and the same for ``shapes3d``) → :class:`FactorSpec`."""
    name, sep, rest = spec.partition(":")
    if name not in FACTOR_SET_NAMES:
        raise ConfigError(f"{field}={spec!r} is not a factor data set; those are "
                          f"{list(FACTOR_SET_NAMES)}")
    factor_set = factor_sets()[name]
    if not sep:
        return FactorSpec(spec, factor_set)
    total = factor_set.num_combinations
    if not rest.isdigit():
        raise ConfigError(f"{field}={spec!r}: after '{name}:' comes the subset size, a whole "
                          f"number from 100 to {total:,} (e.g. '{name}:20000')")
    count = int(rest)
    if not 100 <= count <= total:
        raise ConfigError(f"{field}={spec!r}: the subset size must be from 100 to {total:,} "
                          f"(the number of factor combinations of {name})")
    return FactorSpec(spec, factor_set, 0 if count == total else count)


def split_indices(spec: FactorSpec) -> dict[str, np.ndarray]:
    """The flat indices of each split (``train``, ``test``), sorted, without rendering."""
    total = spec.factor_set.num_combinations
    flat = subset_flat_indices(total, spec.count) if spec.count else np.arange(total, dtype=np.int64)
    test = is_test(unflatten_index(flat, spec.factor_set.factor_sizes))
    return {"train": flat[~test], "test": flat[test]}
