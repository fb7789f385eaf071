"""The one adapter between what a user asks for and what an export's operations take.

Request-level :class:`Values` — codes or seeds, images, labels, a truncation, a crossover, a
noise seed — become an operation's feeds by the ROLE each input declares in the manifest
(:mod:`gen_keras.exported.roles`), never by a tensor's name or a model kind; outputs come back by
name and by role. The server, the page's metadata, the MLflow pyfunc model, the Beam batch
handler and the latent tools all go through it, so one rule holds everywhere:

- a seed ``s`` means the code ``sample_prior(1, latent_dim, s)[0]``; ``n`` codes drawn from one
  seed are ``sample_prior(n, latent_dim, s)`` (:mod:`gen_keras.exported.latents`);
- the noise an operation averages over (a VAE score's eps) for the item at position ``i`` of a
  job is ``draw_noise`` of ``(noise seed, draw, i)`` — the same whichever worker, chunk or request
  carries the item.

    adapter = reader.adapter
    op = adapter.for_task("generate")
    images = adapter.run(op, Values(seeds=[3, 4, 5])).role("image")
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from gen_keras.errors import ConfigError
from gen_keras.exported.latents import draw_noise, sample_prior
from gen_keras.exported.manifest import ExportSpec, InputSpec, OperationSpec


class InputError(ConfigError):
    """Values an operation cannot take, or an operation the export lacks; the message names the
    value and what is wrong (a ConfigError, so a ValueError too: exit 2 on the command line)."""


@dataclasses.dataclass
class Values:
    """What a request gives, in its user's words. Every field is optional; an operation takes
    what its inputs' roles ask for (defaults where the manifest declares one)."""
    codes: np.ndarray | None = None  # [n, latent_dim]
    seeds: Sequence[int] | None = None  # or one code per seed
    mixing_codes: np.ndarray | None = None  # mix: the codes whose styles fill the later layers
    mixing_seeds: Sequence[int] | None = None
    images: np.ndarray | None = None  # [n, H, W, C] in the input's value range
    labels: np.ndarray | int | None = None  # one per item, or one for all
    truncation: float | np.ndarray | None = None  # psi, one for all or one per item
    crossover: int | np.ndarray | None = None
    styles: np.ndarray | None = None  # [n, num_ws, w_dim]
    noise_seed: int = 0
    first_index: int = 0  # the position of item 0 in its job (the noise rule)
    draw: int = 0  # which draw of the noise (a score averaged over several)


class Outputs(dict):
    """An operation's outputs by name (the manifest's order), and by role with :meth:`role`."""

    def __init__(self, op: OperationSpec, arrays):
        super().__init__(zip(op.outputs, arrays))
        self.operation = op
        self.by_role = dict(zip(op.output_roles, arrays))

    def role(self, role: str) -> np.ndarray:
        if role not in self.by_role:
            raise InputError(f"operation {self.operation.name!r} has no {role!r} output (its outputs: "
                             f"{dict(zip(self.operation.outputs, self.operation.output_roles))})")
        return self.by_role[role]

    @property
    def first(self) -> np.ndarray:
        """The output the operation's task answers with (an image, a score, a style, ...)."""
        return next(iter(self.values()))


class Adapter:
    """``spec`` (a verified export's manifest) and ``call(operation, feeds, token)`` (its runtime:
    a list of outputs in the manifest's order)."""

    def __init__(self, spec: ExportSpec, call: Callable):
        self.spec, self.call = spec, call

    # -- what the export offers ------------------------------------------------------------------
    def operation(self, name: str) -> OperationSpec:
        op = self.spec.operation(name)
        if op is None:
            raise InputError(f"the {self.spec.kind!r} export has no {name!r} operation (it has "
                             f"{', '.join(sorted(self.spec.operations))}){self._note(name)}")
        return op

    def has_task(self, task: str) -> bool:
        return bool(self.spec.by_task(task))

    def for_task(self, task: str, values: Values | None = None) -> OperationSpec:
        """The operation that does ``task`` with ``values``: among several (a style model's
        ``generate`` and ``generate_truncated``), the one that takes a truncation when one is
        given, else the one with the fewest inputs."""
        candidates = self.spec.by_task(task)
        if values is not None and values.truncation is not None:
            candidates = [op for op in candidates if op.input_for("truncation") is not None]
            if not candidates:
                raise InputError(f"the {self.spec.kind!r} model has no truncation (no {task} operation takes one)")
        if not candidates:
            raise InputError(f"the {self.spec.kind!r} export has no {task} operation (it has "
                             f"{', '.join(sorted(self.spec.operations))}){self._note(task)}")
        return min(candidates, key=lambda op: len(op.inputs))

    @property
    def truncation(self) -> InputSpec | None:
        """The truncation input of a generator, where the model has one (its range and default)."""
        return next((op.input_for("truncation") for op in self.spec.by_task("generate")
                     if op.input_for("truncation") is not None), None)

    @property
    def style(self) -> dict | None:
        """``{"num_ws", "w_dim", "default_crossover"}`` of a style-based model, else None."""
        return self.spec.facts.get("style")

    @property
    def translations(self) -> dict[str | None, str]:
        """direction → operation name: ``{None: "translate"}`` for a one-way translator,
        ``{"a2b": ..., "b2a": ...}`` for a two-way one (directions in name order)."""
        return {op.direction: op.name for op in self.spec.by_task("translate")}

    def default_operation(self) -> OperationSpec:
        """What ``serving_default`` means: the generator, else the (first) translation."""
        for task in ("generate", "translate"):
            if self.has_task(task):
                return self.for_task(task)
        return self.operation(min(self.spec.operations))

    def _note(self, what: str) -> str:
        return f"; {self.spec.note}" if self.spec.note and what == "mix" else ""

    # -- values → feeds → outputs ----------------------------------------------------------------
    def feeds(self, op: OperationSpec, values: Values) -> dict[str, np.ndarray]:
        """The operation's inputs, by role, from ``values``; an :class:`InputError` names what is
        missing or wrong."""
        n = self._count(op, values)
        feeds = {}
        for spec in op.inputs:
            feeds[spec.name] = np.asarray(_FEEDERS[spec.role](self, op, spec, values, n), dtype=spec.dtype)
        return feeds

    def run(self, op: OperationSpec | str, values: Values, token=None) -> Outputs:
        op = self.operation(op) if isinstance(op, str) else op
        return Outputs(op, self.call(op.name, self.feeds(op, values), token))

    def _count(self, op: OperationSpec, values: Values) -> int:
        """The number of items: from the codes, seeds, images or styles the operation takes."""
        given = {"code": values.codes if values.codes is not None else values.seeds,
                 "image": values.images, "styles": values.styles}
        for role, value in given.items():
            if op.input_for(role) is not None and value is not None:
                return len(value) if np.ndim(value) else 1
        needs = [i.role for i in op.inputs if i.role in given]
        raise InputError(f"operation {op.name!r} needs {' or '.join(_WORDS[r] for r in needs) or 'inputs'}")

    # -- one function per role -------------------------------------------------------------------
    def _codes(self, op, spec, values, n, codes=None, seeds=None, what="codes"):
        codes = values.codes if codes is None and seeds is None else codes
        seeds = values.seeds if codes is None and seeds is None else seeds
        d = self.spec.latent_dim
        if codes is not None:
            z = np.asarray(codes, np.float32)
            z = z[None] if z.ndim == 1 else z
            if z.ndim != 2 or z.shape[1] != d:
                raise InputError(f"{what} of shape {list(z.shape)}; this model's latent size is {d}")
        elif seeds is not None:
            z = codes_for_seeds(seeds, d)
        else:
            raise InputError(f"operation {op.name!r} needs {what} (or seeds to draw them from)")
        if len(z) != n:
            raise InputError(f"{len(z)} {what} for {n} items")
        return z

    def _mixing_codes(self, op, spec, values, n):
        if values.mixing_codes is None and values.mixing_seeds is None:
            raise InputError(f"operation {op.name!r} needs mixing codes (or mixing seeds)")
        return self._codes(op, spec, values, n, values.mixing_codes, values.mixing_seeds, "mixing codes")

    def _images(self, op, spec, values, n):
        if values.images is None:
            raise InputError(f"operation {op.name!r} needs images of shape {list(spec.shape[1:])}")
        x = np.asarray(values.images, np.float32)
        x = x[None] if x.ndim == len(spec.shape) - 1 else x
        if tuple(x.shape[1:]) != tuple(spec.shape[1:]):
            raise InputError(f"images of shape {list(x.shape)}; operation {op.name!r} takes "
                             f"[N, {', '.join(map(str, spec.shape[1:]))}]")
        if spec.value_range is not None and x.size:
            lo, hi = spec.value_range
            if x.min() < lo - 1e-6 or x.max() > hi + 1e-6:
                raise InputError(f"image values in [{x.min():.3g}, {x.max():.3g}]; operation {op.name!r} "
                                 f"takes values in [{lo:g}, {hi:g}]")
        return x

    def _labels(self, op, spec, values, n):
        return check_labels(values.labels, n, self.spec.num_classes, self.spec.kind)

    def _noise(self, op, spec, values, n):
        return draw_noise(n, int(spec.shape[1]), values.noise_seed, values.first_index, values.draw)

    def _per_item(self, spec, value, n, what, integer=False):
        value = spec.default if value is None else value
        if value is None:
            raise InputError(f"give {what}")
        arr = np.asarray(value, np.float64)
        arr = np.full((n,), arr) if arr.ndim == 0 else arr
        if arr.shape != (n,):
            raise InputError(f"{what} of shape {list(arr.shape)} for {n} items; give one, or one per item")
        lo, hi = spec.value_range or (-np.inf, np.inf)
        bad = ~np.isfinite(arr) | (arr < lo) | (arr > hi) | ((arr != np.round(arr)) if integer else False)
        if bad.any():
            raise InputError(f"{what}={arr[bad][0]:g} must be {'an integer ' if integer else 'a number '}"
                             f"in [{lo:g}, {hi:g}]")
        return arr

    def _truncation(self, op, spec, values, n):
        return self._per_item(spec, values.truncation, n, "truncation (psi)")

    def _crossover(self, op, spec, values, n):
        return self._per_item(spec, values.crossover, n, "crossover (a style layer)", integer=True)

    def _styles(self, op, spec, values, n):
        if values.styles is None:
            raise InputError(f"operation {op.name!r} needs styles of shape {list(spec.shape[1:])}")
        ws = np.asarray(values.styles, np.float32)
        if tuple(ws.shape[1:]) != tuple(spec.shape[1:]):
            raise InputError(f"styles of shape {list(ws.shape)}; operation {op.name!r} takes "
                             f"[N, {', '.join(map(str, spec.shape[1:]))}]")
        return ws


_FEEDERS = {"code": Adapter._codes, "mixing_code": Adapter._mixing_codes, "image": Adapter._images,
            "label": Adapter._labels, "noise": Adapter._noise, "truncation": Adapter._truncation,
            "crossover": Adapter._crossover, "styles": Adapter._styles}
_WORDS = {"code": "codes or seeds", "image": "images", "styles": "styles"}


def codes_for_seeds(seeds: Sequence[int], latent_dim: int) -> np.ndarray:
    """``[len(seeds), latent_dim]``: the code of each seed (the first row of its prior draw)."""
    return np.concatenate([sample_prior(1, latent_dim, int(s)) for s in seeds]) if len(seeds) else \
        np.zeros((0, latent_dim), np.float32)


def check_labels(labels, n: int, num_classes: int, kind: str) -> np.ndarray:
    """int32 labels ``[n]`` (a single int is repeated); an :class:`InputError` when missing or
    outside ``0..num_classes-1``."""
    if labels is None:
        raise InputError(f"the {kind!r} model is class-conditional: give a label (a class in "
                         f"0..{num_classes - 1})")
    values = np.asarray(labels)
    if values.ndim == 0:
        values = np.full((n,), values.item())
    if values.shape != (n,):
        raise InputError(f"{values.shape[0] if values.ndim else 1} labels for {n} inputs")
    bad = sorted({v for v in values.tolist() if not float(v).is_integer() or not 0 <= v < num_classes})
    if bad:
        raise InputError(f"unknown class(es) {bad[:10]}: the {kind!r} model knows classes 0..{num_classes - 1}")
    return values.astype(np.int32)
