"""Latent traversals (Higgins et al. 2017, beta-VAE, fig. 1/7): vary one latent dimension over a
range with the others fixed at a base code, one row per dimension. A dimension that encodes one
factor of variation changes one thing along its row; a dead dimension (KL ~ 0) changes nothing.
"""
from __future__ import annotations

import numpy as np

from gen_keras.latent.loading import as_latent_model


def traversal_values(steps: int, span: float = 3.0) -> np.ndarray:
    """``steps`` evenly spaced values in ``[-span, span]`` (added to the base code)."""
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps={steps}: a traversal needs at least 2 steps")
    if not span > 0:
        raise ValueError(f"span={span} must be > 0")
    return np.linspace(-span, span, int(steps), dtype=np.float32)


def traversal_codes(base, dims, values) -> np.ndarray:
    """``[len(dims) * len(values), d]``: row i sets ``base[dims[i]] + values[j]``.

    The values are offsets from the base code, so a traversal from an encoded image passes
    through that image's own code (offset 0 when ``steps`` is odd).
    """
    base = np.asarray(base, np.float32).ravel()
    dims = check_dims(dims, base.size)
    codes = np.repeat(base[None], len(dims) * len(values), axis=0).reshape(len(dims), len(values), -1)
    for i, d in enumerate(dims):
        codes[i, :, d] = base[d] + np.asarray(values, np.float32)
    return codes.reshape(-1, base.size)


def check_dims(dims, latent_dim: int) -> list[int]:
    dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
    if not dims:
        raise ValueError("dims is empty: name at least one latent dimension")
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise ValueError(f"latent dimension(s) {bad} out of range: the latent has {latent_dim} "
                         f"dimension(s), 0..{latent_dim - 1}")
    return dims


def traversal_grid(model, base=None, dims=None, steps: int = 9, span: float = 3.0,
                   label=None) -> tuple[np.ndarray, int]:
    """``(images [len(dims) * steps, H, W, C], steps)``; ``base`` defaults to the prior mean 0,
    ``dims`` to every dimension; ``label`` is required for a conditional model."""
    m = as_latent_model(model)
    base = np.zeros(m.latent_dim, np.float32) if base is None else m.as_codes(base)[0]
    values = traversal_values(steps, span)
    codes = traversal_codes(base, dims, values)
    return m.generate(codes, label if label is None else np.full(len(codes), label)), len(values)
