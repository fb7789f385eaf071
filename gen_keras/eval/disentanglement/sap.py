"""SAP: Separated Attribute Predictability.

:func:`sap_score` — Separated Attribute Predictability (Kumar, Sattigeri & Balakrishnan 2018,
  "Variational Inference of Disentangled Latent Concepts from Unlabeled Observations", sec. 3):
  a score matrix S ``[L, K]`` of how well code j alone predicts factor k — R^2 of a linear fit
  for ordered factors, balanced accuracy of a 1-D nearest-class-mean classifier (held out) for
  categorical ones — and ``SAP = 1/K sum_k (top1_j S_jk - top2_j S_jk)``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gen_keras.eval.disentanglement.mutual_info import _check, _split


def sap_score(codes, factors, discrete: Sequence[bool] | None = None, *,
              train_fraction: float = 0.8, seed: int = 0) -> float:
    """SAP (Kumar et al. 2018; module docstring). ``discrete[k]`` marks categorical factors
    (scored by classification; default: none)."""
    s = sap_matrix(codes, factors, discrete, train_fraction=train_fraction, seed=seed)
    return sap_from_matrix(s)


def sap_matrix(codes, factors, discrete: Sequence[bool] | None = None, *,
               train_fraction: float = 0.8, seed: int = 0) -> np.ndarray:
    """S ``[L, K]``: how well code j alone predicts factor k."""
    codes, factors = _check(codes, factors)
    discrete = list(discrete) if discrete is not None else [False] * factors.shape[1]
    if len(discrete) != factors.shape[1]:
        raise ValueError(f"discrete has {len(discrete)} flags for {factors.shape[1]} factors")
    train, test = _split(len(codes), train_fraction, seed)
    s = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        y = factors[:, k]
        for j in range(codes.shape[1]):
            z = codes[:, j]
            if discrete[k]:
                s[j, k] = _nearest_mean_balanced_accuracy(z[train], y[train], z[test], y[test])
            else:
                s[j, k] = _r2_linear(z, y.astype(np.float64))
    return s


def sap_from_matrix(s) -> float:
    """Mean over factors of the gap between the two best single-code scores."""
    s = np.sort(np.asarray(s, np.float64), axis=0)[::-1]
    return float(np.mean(s[0] - (s[1] if s.shape[0] > 1 else 0.0)))


def _r2_linear(z: np.ndarray, y: np.ndarray) -> float:
    """R^2 of the least-squares line y ~ a z + b = the squared correlation (0 if either is
    constant)."""
    if z.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(z, y)[0, 1] ** 2)


def _nearest_mean_balanced_accuracy(z_train, y_train, z_test, y_test) -> float:
    classes = np.unique(y_train)
    means = np.array([z_train[y_train == c].mean() for c in classes])
    predicted = classes[np.argmin(np.abs(z_test[:, None] - means[None, :]), axis=1)]
    recalls = [np.mean(predicted[y_test == c] == c) for c in np.unique(y_test)]
    return float(np.mean(recalls))
