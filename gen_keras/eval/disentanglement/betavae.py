"""The beta-VAE score.

:func:`betavae_score` (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
  Constrained Variational Framework", sec. 3): for a factor k, the mean absolute code difference
  over ``batch_size`` pairs of images that share factor k; a linear classifier (logistic
  regression on standardized inputs) predicts k from it; the score is held-out accuracy.
  Chance level is 1/K.

:func:`mutual_information_matrix` and :func:`mi_heatmap_png` draw the factor-by-code mutual
information (normalized by each factor's entropy) as a picture. All randomness comes from
``seed``.
"""
from __future__ import annotations

import numpy as np

from gen_keras.eval.disentanglement.interventions import Represent, _codes_of


def betavae_score(sampler, represent: Represent, *, batch_size: int = 64, num_train: int = 500,
                  num_eval: int = 300, points_per_call: int = 16, seed: int = 0) -> float:
    """The beta-VAE score (Higgins et al. 2017; module docstring): held-out accuracy of a
    linear classifier from the mean absolute code difference of ``batch_size`` pairs sharing a
    factor to that factor."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n_factors = len(sampler.factor_sizes)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ks = [], []
        for start in range(0, n, points_per_call):
            k = rng.integers(0, n_factors, min(points_per_call, n - start))
            first = sampler.sample_factors(len(k) * batch_size, rng)
            second = sampler.sample_factors(len(k) * batch_size, rng)
            rows = np.repeat(k, batch_size)
            second[np.arange(len(rows)), rows] = first[np.arange(len(rows)), rows]
            z1 = _codes_of(sampler, represent, first)
            z2 = _codes_of(sampler, represent, second)
            xs.append(np.abs(z1 - z2).reshape(len(k), batch_size, -1).mean(axis=1))
            ks.append(k)
        return np.concatenate(xs), np.concatenate(ks)

    x_train, k_train = points(num_train)
    x_eval, k_eval = points(num_eval)
    if len(np.unique(k_train)) < 2:
        return float(np.mean(k_eval == k_train[0]))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x_train, k_train)
    return float(np.mean(clf.predict(x_eval) == k_eval))
