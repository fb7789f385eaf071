"""The style space W of a style-based generator (Karras et al. 2019, "A Style-Based Generator
Architecture for GANs"): the mapping network sends a code z ~ N(0, I) to a style w, and the
synthesis network draws the image from w (the same w at every layer here; per-layer styles are
what ``:mix`` and the mixing grids use). W is learned to be less entangled than Z (their sec. 4),
so paths and arithmetic are done on w:

- **interpolation in w**: linear paths between the styles of two codes (the paper's perceptual
  path length is measured in W with linear interpolation, sec. 4.2);
- **GAN vector arithmetic** (Radford et al. 2016, "Unsupervised Representation Learning with
  DCGANs", sec. 6.3: "smiling woman - neutral woman + neutral man"): draw many samples, let the
  project's evaluator label them, and add ``mean code of class A - mean code of class B`` to the
  codes of samples of a third class C. It works in ``w`` for style-based exports and in ``z``
  (as in the DCGAN paper) for any generator.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gen_keras.exported.adapter import Values
from gen_keras.exported.latents import interpolate
from gen_keras.latent.loading import InMemoryModel, as_latent_model

SPACES = ("w", "z")
MIN_PER_CLASS = 5  # samples a class mean is taken over, at least


@dataclasses.dataclass
class StyleSpace:
    """``to_w(z) -> [N, w_dim]`` and ``synthesize(w) -> images`` (one w for every layer)."""
    to_w: object
    synthesize_ws: object
    num_ws: int

    def synthesize(self, w) -> np.ndarray:
        w = np.asarray(w, np.float32)
        return self.synthesize_ws(np.repeat(w[:, None, :], self.num_ws, axis=1))


def style_space(model) -> StyleSpace:
    """The style space of a style-based model: an export whose manifest declares a style layout
    and map / synthesize operations, or a style-based model in memory (its EMA generator's
    halves)."""
    m = as_latent_model(model)
    if isinstance(m, InMemoryModel):
        net = m.model
        if not hasattr(net, "mapping") or not hasattr(net, "synthesis"):
            raise ValueError(f"the {m.kind!r} model has no style space (w); only style-based generators "
                             "have one — use --space z")
        return StyleSpace(lambda z: np.asarray(net.mapping(np.asarray(z, np.float32))),
                          lambda ws: np.asarray(net.synthesis(ws)), int(net.num_ws))
    adapter = m.adapter
    if adapter.style is None or not (adapter.has_task("map") and adapter.has_task("synthesize")):
        raise ValueError(f"the {m.kind!r} export has no style space (w): it declares no style layout with "
                         f"map and synthesize operations (it has {', '.join(m.operations)}); only "
                         "style-based generators have one — use --space z")
    to_w, synthesize = adapter.for_task("map"), adapter.for_task("synthesize")
    return StyleSpace(lambda z: adapter.run(to_w, Values(codes=z)).role("style"),
                      lambda ws: adapter.run(synthesize, Values(styles=ws)).role("image"),
                      int(adapter.style["num_ws"]))


def w_interpolation_strips(model, starts, ends, steps: int = 10, method: str = "linear") -> np.ndarray:
    """Images ``[pairs * steps, H, W, C]``: one row per pair of codes ``z``, the synthesis of
    the path between their styles ``w`` (both ends included)."""
    m = as_latent_model(model)
    space = style_space(m)
    starts, ends = m.as_codes(starts), m.as_codes(ends)
    if len(starts) != len(ends):
        raise ValueError(f"{len(starts)} start codes but {len(ends)} end codes")
    w_a, w_b = space.to_w(starts), space.to_w(ends)
    path = np.concatenate([interpolate(a, b, steps, method) for a, b in zip(w_a, w_b)])
    return space.synthesize(path)


@dataclasses.dataclass
class Arithmetic:
    grid: np.ndarray  # [count * len(scales), H, W, C]: one row per sample of class C
    columns: int
    vector: np.ndarray  # mean code of A - mean code of B
    counts: dict  # samples the evaluator gave each class
    shares: list  # per scale: {"scale", "share_plus", "share_onto"} of the moved images


def vector_arithmetic(model, classify, plus: int, minus: int, onto: int, *, space: str = "w",
                      samples: int = 2000, count: int = 8, scales=(0.0, 0.5, 1.0, 1.5, 2.0),
                      seed: int = 0) -> Arithmetic:
    """``code(sample of class onto) + s * (mean code | plus - mean code | minus)`` for each scale
    s, the classes given by ``classify(images) -> int labels`` (the project's evaluator) on
    ``samples`` generated images. Also measures, per scale, which share of the moved images the
    classifier reads as ``plus`` and as ``onto``."""
    m = as_latent_model(model)
    if space not in SPACES:
        raise ValueError(f"space={space!r} is not one of {', '.join(SPACES)}")
    if m.conditional:
        raise ValueError("vector arithmetic needs an unconditional generator (a conditional one is told its class)")
    if count < 1 or samples < 1:
        raise ValueError(f"count={count} and samples={samples} must be >= 1")
    scales = np.asarray(scales, np.float32)
    if not scales.size:
        raise ValueError("scales must name at least one multiple of the vector")
    z = m.sample_latent(samples, seed)
    if space == "w":
        style = style_space(m)
        codes = style.to_w(z)
        decode = style.synthesize
    else:
        codes, decode = z, m.generate
    labels = np.asarray(classify(decode(codes))).ravel().astype(np.int64)
    counts = {int(c): int((labels == c).sum()) for c in np.unique(labels)}
    for name, c in (("--plus", plus), ("--minus", minus), ("--onto", onto)):
        if counts.get(int(c), 0) < MIN_PER_CLASS:
            raise ValueError(f"{name} {c}: the evaluator read {counts.get(int(c), 0)} of the {samples} samples as "
                             f"class {c} (at least {MIN_PER_CLASS} are needed); classes read: {counts}")
    vector = (codes[labels == plus].mean(axis=0) - codes[labels == minus].mean(axis=0)).astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(labels == onto), size=min(count, counts[int(onto)]), replace=False)
    moved = codes[rows][:, None, :] + scales[None, :, None] * vector[None, None, :]
    images = decode(moved.reshape(-1, codes.shape[1]).astype(np.float32))
    read = np.asarray(classify(images)).ravel().reshape(len(rows), len(scales))
    shares = [{"scale": float(s), "share_plus": float((read[:, k] == plus).mean()),
               "share_onto": float((read[:, k] == onto).mean())} for k, s in enumerate(scales)]
    return Arithmetic(images, len(scales), vector, counts, shares)
