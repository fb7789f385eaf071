"""DCI: disentanglement, completeness, informativeness.

:func:`dci` — disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A
  Framework for the Quantitative Evaluation of Disentangled Representations"): one regressor per
  factor predicts it from all codes; its feature importances form R ``[L, K]``. Disentanglement
  ``D = sum_j rho_j (1 - H_K(P_j.))`` with ``P_jk = R_jk / sum_k R_jk`` and ``rho_j`` the code's
  share of all importance; completeness ``C = 1/K sum_k (1 - H_L(P~_.k))`` with
  ``P~_jk = R_jk / sum_j R_jk`` (entropies in base K and L, so each lies in [0, 1]);
  informativeness is the regressors' held-out R^2 averaged over factors (1 - the paper's
  normalized squared error; clipped at 0). Regressor: gradient-boosted trees (scikit-learn
  ``GradientBoostingRegressor``, 50 stages of depth 3, impurity importances), as in Locatello
  et al. 2019. Not the paper's lasso: a linear model cannot follow a non-linear code, and on
  codes unrelated to the factors it zeroes nearly every weight, so the few tiny survivors look
  "disentangled" (measured here: D = 0.66 for random codes, against 0.02 with trees).
"""
from __future__ import annotations

import numpy as np

from gen_keras.eval.disentanglement.mutual_info import _check, _split


def dci(codes, factors, *, train_fraction: float = 0.8, seed: int = 0) -> dict[str, float]:
    """``{"dci_disentanglement", "dci_completeness", "dci_informativeness"}`` (Eastwood &
    Williams 2018; module docstring), the regressors fit on ``train_fraction`` of the examples
    and scored on the rest."""
    importance, r2 = dci_importance(codes, factors, train_fraction=train_fraction, seed=seed)
    d, c = disentanglement_completeness(importance)
    return {"dci_disentanglement": d, "dci_completeness": c,
            "dci_informativeness": float(np.mean(np.clip(r2, 0.0, 1.0)))}


def dci_importance(codes, factors, *, train_fraction: float = 0.8,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The importance matrix R ``[L, K]`` (gradient-boosted trees) and each factor's held-out
    R^2 ``[K]``."""
    from sklearn.ensemble import GradientBoostingRegressor

    codes, factors = _check(codes, factors)
    train, test = _split(len(codes), train_fraction, seed)
    x = codes
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    r2 = np.zeros(factors.shape[1])
    for k in range(factors.shape[1]):
        y = factors[:, k].astype(np.float64)
        y_sd = y[train].std()
        if y_sd == 0:
            continue  # a factor constant in the sample carries no importance and no error
        y = (y - y[train].mean()) / y_sd
        model = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=seed)
        model.fit(x[train], y[train])
        importance[:, k] = model.feature_importances_
        residual = y[test] - model.predict(x[test])
        r2[k] = 1.0 - np.mean(residual ** 2) / max(np.var(y[test]), 1e-12)
    return importance, r2


def disentanglement_completeness(importance) -> tuple[float, float]:
    """``(D, C)`` from an importance matrix R ``[L, K]`` (Eastwood & Williams 2018, sec. 3.1;
    codes with no importance get weight 0, factors with none count as C = 0)."""
    r = np.abs(np.asarray(importance, np.float64))
    n_codes, n_factors = r.shape
    total = r.sum()
    if total <= 0:
        return 0.0, 0.0
    row = r.sum(axis=1)
    p = r / np.where(row > 0, row, 1.0)[:, None]
    d_per_code = 1.0 - _entropy_rows(p, n_factors)
    d = float(np.sum(np.where(row > 0, d_per_code, 0.0) * row / total))
    col = r.sum(axis=0)
    q = (r / np.where(col > 0, col, 1.0)[None, :]).T
    c_per_factor = np.where(col > 0, 1.0 - _entropy_rows(q, n_codes), 0.0)
    return d, float(np.mean(c_per_factor))


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of ``p`` (rows sum to 1) in log base ``base`` (0 when base is 1)."""
    if base <= 1:
        return np.zeros(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(base)
