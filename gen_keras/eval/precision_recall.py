"""k-nearest-neighbour manifold metrics on evaluator features.

Improved precision and recall (Kynkaanniemi, Karras, Laine, Lehtinen & Aila 2019, eq. 1-2): the
real manifold is the union of balls around each real feature with radius its distance to its
k-th nearest real neighbour (k = 3); precision is the fraction of generated samples inside it,
recall the fraction of real samples inside the generated manifold built the same way.

Density and coverage (Naeem, Oh, Uh, Choi & Yoo 2020, eq. 3-4; k = 5): built on the REAL balls
only, so a few outlying fakes cannot inflate them:

    density  = 1/(k M) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]
    coverage = 1/N     sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]

(X: N real features, Y: M generated.) Distances are Euclidean, computed in blocks.
"""
from __future__ import annotations

import numpy as np


def pairwise_distances(a, b, block: int = 1024) -> np.ndarray:
    """Euclidean distances ``[len(a), len(b)]`` in float64, a block of rows at a time."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    b_sq = np.sum(b * b, axis=1)
    out = np.empty((len(a), len(b)))
    for start in range(0, len(a), block):
        rows = a[start:start + block]
        sq = np.sum(rows * rows, axis=1)[:, None] + b_sq[None, :] - 2.0 * rows @ b.T
        out[start:start + block] = np.sqrt(np.maximum(sq, 0.0))
    return out


def knn_radii(features, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest OTHER point of the same set."""
    features = np.asarray(features, np.float64)
    if not 1 <= k < len(features):
        raise ValueError(f"k={k} needs at least k + 1 = {k + 1} points, got {len(features)}")
    d = pairwise_distances(features, features)
    # Column 0 of the sorted row is the point itself (distance 0), so the k-th neighbour is at k.
    return np.partition(d, k, axis=1)[:, k]


def _inside_counts(query, centres, radii) -> np.ndarray:
    """For each query point, how many balls B(centre, radius) contain it."""
    d = pairwise_distances(query, centres)
    return np.sum(d <= radii[None, :], axis=1)


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN radius ``k``."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = float(np.mean(_inside_counts(fake, real, knn_radii(real, k)) > 0))
    recall = float(np.mean(_inside_counts(real, fake, knn_radii(fake, k)) > 0))
    return precision, recall


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN radius ``k`` on the real set."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    radii = knn_radii(real, k)
    d = pairwise_distances(real, fake)  # [N real, M fake]
    inside = d <= radii[:, None]
    density = float(inside.sum() / (k * len(fake)))
    coverage = float(np.mean(inside.any(axis=1)))
    return density, coverage
