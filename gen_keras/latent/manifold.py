"""Pictures of a latent space as a whole:

- the learned manifold (Kingma & Welling 2014, fig. 4): decode a grid of codes whose two
  coordinates are evenly spaced probabilities on the unit square mapped through the inverse
  Gaussian CDF, so the grid covers the N(0, 1) prior evenly in probability;
- a scatter plot of encoded test images coloured by label; a latent with more than two
  dimensions is projected on its first two principal components (PCA of the codes by SVD).

The scatter plot is drawn with Pillow (matplotlib is not a dependency of this project).
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from gen_keras.latent.loading import as_latent_model
from gen_keras.latent.traversal import check_dims

# Tableau's 10 categorical colours (the default cycle of many plotting tools), then greys.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def manifold_codes(n: int, latent_dim: int, dims=(0, 1), base=None,
                   margin: float = 0.05) -> np.ndarray:
    """``[n * n, latent_dim]`` codes, row-major from the top-left: the row index walks the
    second dimension from high to low (as on a plot's y axis), the column the first from low
    to high; every other dimension stays at ``base`` (0, the prior mean)."""
    if int(n) != n or n < 2:
        raise ValueError(f"n={n}: a manifold grid needs at least 2 points per side")
    if latent_dim < 2:
        raise ValueError(f"the latent has {latent_dim} dimension(s); a 2-D manifold grid needs "
                         "at least 2 (use a traversal for a 1-D latent)")
    dims = check_dims(dims, latent_dim)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims={list(dims)} must name two different latent dimensions")
    if not 0 < margin < 0.5:
        raise ValueError(f"margin={margin} must be in (0, 0.5)")
    normal = NormalDist()
    values = np.array([normal.inv_cdf(p) for p in np.linspace(margin, 1 - margin, int(n))],
                      np.float32)
    base = np.zeros(latent_dim, np.float32) if base is None else np.asarray(base, np.float32)
    codes = np.repeat(base[None], n * n, axis=0)
    rows, cols = np.meshgrid(values[::-1], values, indexing="ij")
    codes[:, dims[0]] = cols.ravel()
    codes[:, dims[1]] = rows.ravel()
    return codes


def manifold_grid(model, n: int = 15, dims=(0, 1), label=None) -> tuple[np.ndarray, int]:
    """``(images [n * n, H, W, C], n)`` decoded from :func:`manifold_codes`."""
    m = as_latent_model(model)
    codes = manifold_codes(n, m.latent_dim, dims)
    return m.generate(codes, None if label is None else np.full(len(codes), label)), int(n)


# ----------------------------------------------------------------------------------------------
def project_2d(codes) -> tuple[np.ndarray, list[str]]:
    """``(points [N, 2], axis names)``: the codes themselves for a 2-D latent, their first two
    principal components for a wider one (with the share of variance each explains), and for
    a 1-D latent the code against a fixed jitter (so the points do not sit on one line)."""
    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"need at least 2 codes [N, d] to plot, got shape {list(codes.shape)}")
    d = codes.shape[1]
    if d == 1:
        jitter = np.random.default_rng(0).uniform(-0.5, 0.5, len(codes))
        return np.stack([codes[:, 0], jitter], 1), ["z[0]", "jitter"]
    if d == 2:
        return codes.copy(), ["z[0]", "z[1]"]
    centred = codes - codes.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    share = s ** 2 / max(float(np.sum(s ** 2)), 1e-30)
    return centred @ vt[:2].T, [f"PC1 ({100 * share[0]:.0f}% of variance)",
                                f"PC2 ({100 * share[1]:.0f}% of variance)"]


def scatter_image(points, labels, axis_names=("x", "y"), title: str = "",
                  size: int = 640, radius: int = 2) -> np.ndarray:
    """An RGB uint8 ``[size, size + legend, 3]`` scatter plot, one colour per label."""
    from PIL import Image, ImageDraw, ImageFont

    points = np.asarray(points, np.float64)
    labels = np.asarray(labels).ravel()
    if len(points) != len(labels):
        raise ValueError(f"{len(points)} points but {len(labels)} labels")
    classes = [int(c) for c in np.unique(labels)]
    font = _font(ImageFont, 14)
    left, top, right, bottom = 70, 60, size - 20, size - 60
    legend_w = 90
    im = Image.new("RGB", (size + legend_w, size), "white")
    draw = ImageDraw.Draw(im)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = np.where(hi > lo, (hi - lo) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad

    def to_px(p):
        return (left + (p[..., 0] - lo[0]) / (hi[0] - lo[0]) * (right - left),
                bottom - (p[..., 1] - lo[1]) / (hi[1] - lo[1]) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    for i in range(5):  # ticks and tick labels on both axes
        f = i / 4
        x, y = left + f * (right - left), bottom - f * (bottom - top)
        draw.line([x, bottom, x, bottom + 5], fill="black")
        draw.text((x, bottom + 8), f"{lo[0] + f * (hi[0] - lo[0]):.2g}", fill="black", font=font,
                  anchor="ma")
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 8, y), f"{lo[1] + f * (hi[1] - lo[1]):.2g}", fill="black", font=font,
                  anchor="rm")
    draw.text(((left + right) / 2, size - 22), axis_names[0], fill="black", font=font, anchor="ma")
    draw.text((8, top - 22), axis_names[1], fill="black", font=font)
    if title:
        draw.text(((left + right) / 2, 8), title, fill="black", font=font, anchor="ma")
    # A seeded random drawing order, so no class is painted over all the others.
    order = np.random.default_rng(0).permutation(len(points))
    xs, ys = to_px(points[order])
    for x, y, c in zip(xs, ys, labels[order]):
        colour = PALETTE[classes.index(int(c)) % len(PALETTE)]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    for i, c in enumerate(classes):
        y = top + 10 + i * 22
        draw.ellipse([size + 6, y - 6, size + 18, y + 6], fill=PALETTE[i % len(PALETTE)])
        draw.text((size + 26, y), f"{c}", fill="black", font=font, anchor="lm")
    return np.asarray(im)


def _font(ImageFont, size):
    try:
        return ImageFont.load_default(size=size)  # a scalable font when FreeType is present
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def encoded_scatter(model, images, labels, size: int = 640) -> np.ndarray:
    """Encode ``images`` and plot their codes (projected to 2-D when needed) by label."""
    m = as_latent_model(model)
    m.require_encoder("the scatter plot of encoded images")
    labels = np.asarray(labels).ravel().astype(np.int32)
    codes = m.encode(m.as_images(images), labels if m.conditional else None)
    points, names = project_2d(codes)
    how = "codes" if m.latent_dim <= 2 else "PCA of the codes"
    title = f"{m.kind}: {len(codes)} encoded images, latent {m.latent_dim}-D ({how})"
    return scatter_image(points, labels, names, title, size)
