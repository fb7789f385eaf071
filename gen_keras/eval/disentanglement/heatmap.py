"""The factor-by-code mutual information (normalized by each factor's entropy) as a picture."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gen_keras.eval.disentanglement.mutual_info import normalized_mi


def mi_heatmap(matrix, factor_names: Sequence[str], cell: int = 28) -> np.ndarray:
    """An RGB picture ``uint8`` of a ``[L, K]`` matrix in [0, 1]: one row per factor, one
    column per code, white (0) to dark blue (1), each cell's value written in it."""
    from PIL import Image, ImageDraw

    m = np.clip(np.asarray(matrix, np.float64), 0.0, 1.0).T  # [K, L]: factors down, codes across
    k, n_codes = m.shape
    if len(factor_names) != k:
        raise ValueError(f"{len(factor_names)} factor names for {k} factors")
    left, top = 8 + 7 * max(14, *(len(n) for n in factor_names)), 18
    im = Image.new("RGB", (left + n_codes * cell + 4, top + k * cell + 4), "white")
    draw = ImageDraw.Draw(im)
    draw.text((4, 4), "factor \\ code", fill="black")
    for j in range(n_codes):
        draw.text((left + j * cell + cell // 2 - 3 * len(str(j)), 4), str(j), fill="black")
    for i, name in enumerate(factor_names):
        draw.text((4, top + i * cell + cell // 2 - 5), name, fill="black")
        for j in range(n_codes):
            v = m[i, j]
            colour = tuple(round(255 - v * (255 - c)) for c in (8, 48, 107))
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour, outline=(200, 200, 200))
            draw.text((x0 + 3, y0 + cell // 2 - 5), f"{v:.2f}"[1:] if v < 1 else "1.0",
                      fill="white" if v > 0.5 else "black")
    return np.asarray(im)


def mi_heatmap_png(codes, factors, factor_names: Sequence[str], path: str | Path,
                   num_bins: int | None = None) -> Path:
    """Write the normalized factor-by-code mutual information heat map of ``codes`` as a PNG
    (atomically: temporary file, then rename); returns the path."""
    from gen_keras.images import save_png

    return save_png(mi_heatmap(normalized_mi(codes, factors, num_bins), factor_names), path, scale=1)
