"""Disentanglement metrics: how well a representation separates known generative factors.

Every metric takes codes ``[N, L]`` (a representation of N images: posterior means for the VAE
family, codes for autoencoders) and the ground-truth factor indices ``[N, K]`` of those images —
or, for the two intervention-based scores, a ground-truth sampler and a representation
function. Scores are in [0, 1], higher is better:

- :func:`mutual_information_gap` — MIG (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of
  Disentanglement in Variational Autoencoders", eq. 6): for each factor v_k, the gap between the
  two codes with the largest mutual information with it, over its entropy,
  ``MIG = 1/K sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k)``.
  MI is estimated by binning each code into equal-width bins (the estimator of Locatello et al.
  2019, "Challenging Common Assumptions in the Unsupervised Learning of Disentangled
  Representations"). Their fixed 20 bins cap an exact code of a 40-valued factor (dSprites'
  orientation) at log 20 / log 40 = 0.81; the default here is ``max(20, most values of any
  factor)`` bins, so an exact code scores 1. Pass ``num_bins=20`` to compare with
  disentanglement_lib's published figures.
- :func:`dci` — disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A
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
- :func:`sap_score` — Separated Attribute Predictability (Kumar, Sattigeri & Balakrishnan 2018,
  "Variational Inference of Disentangled Latent Concepts from Unlabeled Observations", sec. 3):
  a score matrix S ``[L, K]`` of how well code j alone predicts factor k — R^2 of a linear fit
  for ordered factors, balanced accuracy of a 1-D nearest-class-mean classifier (held out) for
  categorical ones — and ``SAP = 1/K sum_k (top1_j S_jk - top2_j S_jk)``.
- :func:`factorvae_score` (Kim & Mnih 2018, "Disentangling by Factorising", sec. 4): fix one
  factor at a random value in a batch of images, normalize the codes by their global standard
  deviation, and vote for the (active) code with the smallest variance; a majority-vote
  classifier from code to factor is fit on ``num_train`` votes and the score is its accuracy on
  ``num_eval`` fresh votes. Chance level is 1/K.
- :func:`betavae_score` (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
  Constrained Variational Framework", sec. 3): for a factor k, the mean absolute code difference
  over ``batch_size`` pairs of images that share factor k; a linear classifier (logistic
  regression on standardized inputs) predicts k from it; the score is held-out accuracy.
  Chance level is 1/K.

:func:`mutual_information_matrix` and :func:`mi_heatmap_png` draw the factor-by-code mutual
information (normalized by each factor's entropy) as a picture. All randomness comes from
``seed``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def _check(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"codes must be [N, L] and factors [N, K] with the same N; got "
                         f"{codes.shape} and {factors.shape}")
    if codes.shape[0] < 2:
        raise ValueError("at least 2 examples are needed")
    if not np.isfinite(codes).all():
        raise ValueError("codes hold NaN or Inf")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integer indices, got {factors.dtype}")
    return codes, factors.astype(np.int64)


def discretize(codes, num_bins: int) -> np.ndarray:
    """Each code dimension into ``num_bins`` equal-width bins over its own range → ``int [N, L]``
    (a constant dimension falls entirely in bin 0)."""
    codes = np.asarray(codes, np.float64)
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    width = np.where(hi > lo, (hi - lo) / num_bins, 1.0)
    return np.clip(((codes - lo) / width).astype(np.int64), 0, num_bins - 1)


def entropy(labels) -> float:
    """Shannon entropy in nats of the empirical distribution of integer ``labels``."""
    p = np.bincount(np.unique(np.asarray(labels), return_inverse=True)[1]).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(a, b) -> float:
    """Mutual information in nats between two integer label arrays (plug-in estimate)."""
    _, a = np.unique(np.asarray(a), return_inverse=True)
    _, b = np.unique(np.asarray(b), return_inverse=True)
    nb = int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).reshape(-1, nb)
    joint = joint.astype(np.float64) / joint.sum()
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])))


def default_num_bins(factors) -> int:
    """``max(20, the most distinct values of any factor)``: enough bins that an exact code of
    every factor keeps all its information."""
    factors = np.asarray(factors)
    return max(20, max(len(np.unique(factors[:, k])) for k in range(factors.shape[1])))


def mutual_information_matrix(codes, factors, num_bins: int | None = None) -> np.ndarray:
    """``I(z_j; v_k)`` in nats, ``[L, K]``, with the codes binned (:func:`discretize`)."""
    codes, factors = _check(codes, factors)
    binned = discretize(codes, num_bins or default_num_bins(factors))
    return np.array([[mutual_information(binned[:, j], factors[:, k])
                      for k in range(factors.shape[1])] for j in range(codes.shape[1])])


# ----------------------------------------------------------------------------------------------
# MIG
# ----------------------------------------------------------------------------------------------
def mutual_information_gap(codes, factors, num_bins: int | None = None) -> float:
    """MIG (Chen et al. 2018; module docstring). Factors that never vary in the sample are
    left out (their entropy is 0)."""
    codes, factors = _check(codes, factors)
    mi = mutual_information_matrix(codes, factors, num_bins)
    return mig_from_mi(mi, [entropy(factors[:, k]) for k in range(factors.shape[1])])


def mig_from_mi(mi, factor_entropies) -> float:
    """MIG from a mutual-information matrix ``[L, K]`` and the factors' entropies ``[K]``."""
    mi = np.asarray(mi, np.float64)
    gaps = []
    for k, h in enumerate(factor_entropies):
        if h <= 0:
            continue
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if len(top) > 1 else 0.0
        gaps.append((top[0] - second) / h)
    if not gaps:
        raise ValueError("no factor varies in the sample: MIG is undefined")
    return float(np.mean(gaps))


# ----------------------------------------------------------------------------------------------
# DCI
# ----------------------------------------------------------------------------------------------
def _split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = round(n * train_fraction)
    if not 0 < cut < n:
        raise ValueError(f"train_fraction={train_fraction} leaves no train or test examples of {n}")
    return order[:cut], order[cut:]


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


# ----------------------------------------------------------------------------------------------
# SAP
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Intervention-based scores: a ground-truth sampler and a representation function
# ----------------------------------------------------------------------------------------------
# ``sampler``: ``factor_sizes`` (sequence of K ints), ``sample_factors(n, rng) -> int [n, K]``
# and ``observations(factors) -> array [n, ...]`` (gen_keras.data.ground_truth.FactorSampler).
# ``represent``: observations ``[n, ...]`` -> codes ``[n, L]``.
Represent = Callable[[np.ndarray], np.ndarray]


def _codes_of(sampler, represent: Represent, factors: np.ndarray) -> np.ndarray:
    codes = np.asarray(represent(sampler.observations(factors)), np.float64)
    if codes.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(f"represent returned shape {codes.shape} for {factors.shape[0]} inputs")
    return codes


def _fixed_factor_batches(sampler, factor_k: np.ndarray, batch_size: int,
                          rng: np.random.Generator) -> np.ndarray:
    """For each requested factor k, a batch of ``batch_size`` factor tuples sharing one random
    value of factor k → ``[len(factor_k) * batch_size, K]`` (batch after batch)."""
    sizes = np.asarray(sampler.factor_sizes)
    out = sampler.sample_factors(len(factor_k) * batch_size, rng).reshape(len(factor_k), batch_size, -1)
    fixed = rng.integers(0, sizes[factor_k])
    out[np.arange(len(factor_k)), :, factor_k] = fixed[:, None]
    return out.reshape(len(factor_k) * batch_size, -1)


def factorvae_score(sampler, represent: Represent, *, batch_size: int = 64,
                    num_train: int = 500, num_eval: int = 300, num_variance: int = 5000,
                    prune_ratio: float = 0.05, votes_per_call: int = 16,
                    seed: int = 0) -> float:
    """The FactorVAE score (Kim & Mnih 2018; module docstring). Codes whose variance over
    ``num_variance`` random images is below ``prune_ratio`` x the largest are collapsed and
    take no votes. Images are rendered and encoded ``votes_per_call`` batches at a time."""
    rng = np.random.default_rng(seed)
    codes = _codes_of(sampler, represent, sampler.sample_factors(num_variance, rng))
    scale = codes.std(axis=0)
    active = scale ** 2 >= prune_ratio * max(float(np.max(scale ** 2)), 1e-12)
    if not active.any():
        return 0.0
    n_factors = len(sampler.factor_sizes)

    def votes(n: int) -> tuple[np.ndarray, np.ndarray]:
        ks, ds = [], []
        for start in range(0, n, votes_per_call):
            k = rng.integers(0, n_factors, min(votes_per_call, n - start))
            z = _codes_of(sampler, represent, _fixed_factor_batches(sampler, k, batch_size, rng))
            var = (z / np.where(scale > 0, scale, 1.0)).reshape(len(k), batch_size, -1).var(axis=1)
            ds.append(np.argmin(np.where(active, var, np.inf), axis=1))
            ks.append(k)
        return np.concatenate(ds), np.concatenate(ks)

    d_train, k_train = votes(num_train)
    counts = np.zeros((codes.shape[1], n_factors), np.int64)
    np.add.at(counts, (d_train, k_train), 1)
    majority = np.argmax(counts, axis=1)  # code -> the factor it most often voted for
    d_eval, k_eval = votes(num_eval)
    return float(np.mean(majority[d_eval] == k_eval))


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


# ----------------------------------------------------------------------------------------------
# All of them for a data set
# ----------------------------------------------------------------------------------------------
def disentanglement_metrics(represent: Represent, dataset: str, *, value_range=(0.0, 1.0),
                            num_samples: int = 5000, seed: int = 0, batch_size: int = 1000,
                            heatmap_path: str | Path | None = None) -> dict[str, float]:
    """Every metric above for a representation of a factor data set (``dsprites``,
    ``shapes3d``, ...): ``mig``, ``dci_*``, ``sap``, ``factorvae_score``, ``betavae_score``.
    Codes of ``num_samples`` images of uniformly drawn factor combinations, rendered by the
    set's ground-truth sampler in ``value_range``; the set's categorical factors are scored as
    such by SAP. With ``heatmap_path``, also writes the mutual-information heat map there.
    A data set without factors is a :class:`~gen_keras.errors.ConfigError` naming it."""
    from gen_keras.data import factor_sampler

    sampler = factor_sampler(dataset, value_range)
    rng = np.random.default_rng(seed)
    factors = sampler.sample_factors(num_samples, rng)
    codes = np.concatenate([_codes_of(sampler, represent, factors[i:i + batch_size])
                            for i in range(0, num_samples, batch_size)])
    discrete = [f.discrete for f in sampler.factor_set.factors]
    out = {"mig": mutual_information_gap(codes, factors), **dci(codes, factors, seed=seed),
           "sap": sap_score(codes, factors, discrete, seed=seed),
           "factorvae_score": factorvae_score(sampler, represent, seed=seed),
           "betavae_score": betavae_score(sampler, represent, seed=seed)}
    if heatmap_path is not None:
        mi_heatmap_png(codes, factors, sampler.factor_names, heatmap_path)
    return out


# ----------------------------------------------------------------------------------------------
# The heat map
# ----------------------------------------------------------------------------------------------
def normalized_mi(codes, factors, num_bins: int | None = None) -> np.ndarray:
    """``I(z_j; v_k) / H(v_k)`` ``[L, K]`` (0 for a constant factor): the heat map's cells."""
    codes, factors = _check(codes, factors)
    mi = mutual_information_matrix(codes, factors, num_bins)
    h = np.array([entropy(factors[:, k]) for k in range(factors.shape[1])])
    return np.where(h > 0, mi / np.where(h > 0, h, 1.0), 0.0)


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


__all__ = [
    "betavae_score",
    "dci",
    "dci_importance",
    "default_num_bins",
    "discretize",
    "disentanglement_completeness",
    "disentanglement_metrics",
    "entropy",
    "factorvae_score",
    "mi_heatmap",
    "mi_heatmap_png",
    "mig_from_mi",
    "mutual_information",
    "mutual_information_gap",
    "mutual_information_matrix",
    "normalized_mi",
    "sap_from_matrix",
    "sap_matrix",
    "sap_score",
]
