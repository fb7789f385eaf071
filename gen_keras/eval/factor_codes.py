"""Which factor each code dimension carries: per dimension, the factor it has the most mutual
information with (normalized by the factor's entropy, the quantity MIG is built from; the binned
estimator's upward bias removed), so a traversal can label its rows and order them by factor,
and an export can say what each slider moves.

:func:`code_factors` encodes freshly rendered images of a factor data set and returns a
:class:`CodeFactors`: the ``[L, K]`` normalized MI matrix, each dimension's factor and MI, and a
row order — dimensions grouped by factor in the set's factor order (shape, scale, orientation,
x, y for dsprites), the most informative first within a factor, the dimensions that carry
(almost) nothing last, labelled "-". A dimension whose codes hardly move over the data (a VAE's
unused dimension: its posterior is the prior whatever the image, its mean ~0) carries nothing
whatever its MI: the binned MI is scale-free, so the faint trace a factor leaves in such a mean
would otherwise label it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

# Below this normalized MI with every factor (after subtracting the estimator's bias, see
# :func:`code_factors`) a dimension is reported as carrying no factor.
INACTIVE_MI = 0.05
# A dimension whose codes' variance over the data is below this fraction of the largest
# dimension's is reported as carrying no factor (Burda et al. 2016 call a VAE unit active when
# Cov_x(E[z|x]) > 0.01; relative here, as an autoencoder's codes have no fixed scale).
INACTIVE_SPREAD = 0.01
SAMPLES = 3000


@dataclasses.dataclass
class CodeFactors:
    factor_names: tuple[str, ...]
    mi: np.ndarray  # [L, K] normalized mutual information, code dimension x factor, bias removed
    # [L] the variance of each dimension's codes over the data; None: every dimension moves
    spread: np.ndarray | None = None

    @property
    def active(self) -> np.ndarray:
        """Per dimension: whether its codes move over the data (:data:`INACTIVE_SPREAD`)."""
        if self.spread is None:
            return np.ones(self.mi.shape[0], bool)
        spread = np.asarray(self.spread, np.float64)
        return spread >= INACTIVE_SPREAD * max(float(spread.max()), 1e-12)

    @property
    def factor_of(self) -> list[str | None]:
        """Per dimension: the factor it moves most, or None below :data:`INACTIVE_MI` or when the
        dimension does not move (:attr:`active`)."""
        best = self.mi.argmax(axis=1)
        return [self.factor_names[k] if self.mi[j, k] >= INACTIVE_MI and moves else None
                for j, (k, moves) in enumerate(zip(best, self.active))]

    @property
    def best_mi(self) -> np.ndarray:
        """Per dimension: its largest normalized MI with any factor."""
        return self.mi.max(axis=1)

    def order(self, dims: Sequence[int] | None = None) -> list[int]:
        """``dims`` (default: all) sorted by their factor in the set's order, the strongest
        dimension first within a factor; dimensions that carry no factor last, those whose codes
        do not move at the very end."""
        dims = range(self.mi.shape[0]) if dims is None else dims
        factors = self.factor_of
        best = self.mi.argmax(axis=1)
        moves = self.active

        def key(j):  # carries a factor; its factor; codes that move before those that do not
            carries = factors[j] is not None
            return (not carries, int(best[j]) if carries else 0, not moves[j], -float(self.best_mi[j]), j)

        return sorted((int(d) for d in dims), key=key)

    def label(self, j: int) -> str:
        name = self.factor_of[j]
        return f"z{j}: {name} ({self.best_mi[j]:.2f})" if name else f"z{j}: -"

    def as_dict(self) -> dict:
        """Plain values (for JSON, a manifest): per dimension its factor, whether its codes move
        (:attr:`active`), its MI, and the MI row."""
        active = self.active
        return {"factors": list(self.factor_names),
                "dimensions": [{"dim": j, "factor": self.factor_of[j], "active": bool(active[j]),
                                "mi": round(float(self.best_mi[j]), 4),
                                "mi_per_factor": [round(float(v), 4) for v in self.mi[j]]}
                               for j in range(self.mi.shape[0])]}


def code_factors(encode: Callable[[np.ndarray], np.ndarray], dataset: str, *,
                 num_samples: int = SAMPLES, seed: int = 0, value_range=(0.0, 1.0)) -> CodeFactors:
    """The :class:`CodeFactors` of an encoder (``images -> codes [N, L]``) on ``num_samples``
    rendered images of the factor data set ``dataset`` (factors drawn with ``seed``)."""
    from gen_keras.data import factor_sampler
    from gen_keras.eval.disentanglement import normalized_mi

    sampler = factor_sampler(dataset, value_range)
    rng = np.random.default_rng(seed)
    factors = sampler.sample_factors(num_samples, rng)
    codes = np.concatenate([np.asarray(encode(sampler.observations(factors[i:i + 500])))
                            for i in range(0, num_samples, 500)])
    # The binned plug-in MI is biased upwards (a code unrelated to a 32-valued factor scores
    # ~0.06-0.1 at 3,000 codes and 40 bins): subtract what each code scores against the factors
    # of a shuffled order, which have the same marginals and no relation to the codes.
    floor = normalized_mi(codes, factors[rng.permutation(num_samples)])
    mi = np.clip(normalized_mi(codes, factors) - floor, 0.0, None)
    return CodeFactors(tuple(sampler.factor_set.factor_names), mi, codes.astype(np.float64).var(axis=0))


def labelled_rows(grid: np.ndarray, labels: Sequence[str], width: int = 150) -> np.ndarray:
    """A traversal grid (uint8 ``[H, W, C]``, one row of images per label) with each row's label
    written in a white strip on its left."""
    from PIL import Image, ImageDraw

    h, w = grid.shape[:2]
    rows = len(labels)
    canvas = Image.new("RGB", (width + w, h), "white")
    canvas.paste(Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).convert("RGB"), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        draw.text((4, (i + 0.5) * h / rows - 6), text, fill="black")
    out = np.asarray(canvas)
    return out[..., :1] if grid.shape[-1] == 1 else out
