"""How useful an encoder's codes are for a downstream task (issue 16, "the encoder as a feature
extractor"), measured the way representation-learning papers do, next to the same measures on raw
pixels and on PCA codes of the same width (the baselines an encoder has to beat):

- **linear probe**: logistic regression on the codes of every labelled training image, accuracy
  on the test images (e.g. Alain & Bengio 2016; the "linear evaluation protocol" of Chen et al.
  2020, SimCLR, sec. 4);
- **few labels**: the same probe fitted on 100 and 1,000 labelled training images (a seeded,
  class-balanced draw) — the semi-supervised use of Kingma et al. 2014, "Semi-Supervised
  Learning with Deep Generative Models";
- **clustering**: k-means with k = the number of classes on the test codes, scored by normalized
  mutual information and by cluster accuracy (each cluster mapped to one class by the Hungarian
  algorithm, Kuhn 1955), as in Xie et al. 2016, "Unsupervised Deep Embedding for Clustering".

Each function is a pure function of arrays; features are standardized on the training part.
"""
from __future__ import annotations

import numpy as np

FEW_LABELS = (100, 1000)
FEW_LABEL_DRAWS = 5


def _standardize(train, test):
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    mean, sd = train.mean(axis=0), train.std(axis=0)
    sd[sd < 1e-8] = 1.0
    return (train - mean) / sd, (test - mean) / sd


def linear_probe_accuracy(train_x, train_y, test_x, test_y, *, max_iter: int = 1000) -> float:
    """Test accuracy of a logistic regression (L2, C = 1) fitted on standardized features."""
    from sklearn.linear_model import LogisticRegression

    train_y, test_y = np.asarray(train_y).ravel(), np.asarray(test_y).ravel()
    if len(np.unique(train_y)) < 2:
        raise ValueError("a probe needs at least two classes among its training labels")
    a, b = _standardize(np.reshape(train_x, (len(train_x), -1)), np.reshape(test_x, (len(test_x), -1)))
    a, b = row_space(a, b)
    clf = LogisticRegression(max_iter=max_iter)
    clf.fit(a, train_y)
    return float((clf.predict(b) == test_y).mean())


def row_space(train, test):
    """``(train @ V, test @ V)`` with V an orthonormal basis of the training rows' span, when
    there are more features than training rows (100 labelled 64x64 images: 4,096 pixels, 100
    rows). An L2-penalized linear model's weights lie in that span (the data term's gradient
    ``train.T @ residual`` does, and the penalty shrinks the rest to 0; the intercept is not
    penalized), and V keeps inner products and norms: the fit in these n coordinates is the same
    model as in the d original ones, at n/d of the cost per step. Otherwise unchanged.

    V comes from the n x n Gram matrix ``train @ train.T = U diag(s^2) U.T`` (``V = train.T U /
    s``, so ``train @ V = U s``), much cheaper than an SVD of ``train``; directions with
    ``s^2 <= 1e-12 max(s^2)`` (repeated or constant rows) carry nothing and are left out."""
    n, d = train.shape
    if d <= n:
        return train, test
    eigenvalues, u = np.linalg.eigh(train @ train.T)
    keep = eigenvalues > eigenvalues.max() * 1e-12
    u, s = u[:, keep], np.sqrt(eigenvalues[keep])
    return u * s, (test @ train.T @ u) / s


def balanced_draw(labels, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` labelled examples, as equal a share of each class as the data allow
    (seeded); a class with too few examples gives all it has and the rest come from the others."""
    labels = np.asarray(labels).ravel()
    if n > len(labels):
        raise ValueError(f"{n} labelled examples asked for, but only {len(labels)} exist")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    take, left = {c: 0 for c in classes}, n
    while left:
        open_ = [c for c in classes if take[c] < len(pools[c])]
        share = max(1, left // len(open_))
        for c in open_:
            k = min(share, len(pools[c]) - take[c], left)
            take[c] += k
            left -= k
            if not left:
                break
    return np.sort(np.concatenate([pools[c][:take[c]] for c in classes]))


def few_label_accuracy(train_x, train_y, test_x, test_y, n: int, seed: int = 0) -> float:
    idx = balanced_draw(train_y, n, seed)
    return linear_probe_accuracy(np.asarray(train_x)[idx], np.asarray(train_y)[idx], test_x, test_y)


def cluster_accuracy(labels, clusters) -> float:
    """The accuracy of the best one-to-one map of clusters onto classes (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels).ravel(), np.asarray(clusters).ravel()
    cls, labels_i = np.unique(labels, return_inverse=True)
    cl, clusters_i = np.unique(clusters, return_inverse=True)
    counts = np.zeros((len(cl), len(cls)), np.int64)
    np.add.at(counts, (clusters_i, labels_i), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(labels))


def kmeans_scores(x, labels, k: int | None = None, seed: int = 0) -> dict[str, float]:
    """k-means (k = the number of classes, 10 restarts) on standardized features:
    ``{"nmi": ..., "acc": ...}`` against ``labels``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    labels = np.asarray(labels).ravel()
    k = k or len(np.unique(labels))
    x, _ = _standardize(np.reshape(x, (len(x), -1)), np.zeros((1, int(np.prod(np.shape(x)[1:])))))
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "acc": cluster_accuracy(labels, clusters)}


def pca_codes(train_pixels, test_pixels, width: int, seed: int = 0):
    """PCA codes of ``width`` components, fitted on the training pixels."""
    from sklearn.decomposition import PCA

    a, b = np.reshape(train_pixels, (len(train_pixels), -1)), np.reshape(test_pixels, (len(test_pixels), -1))
    pca = PCA(n_components=width, random_state=seed).fit(a)
    return pca.transform(a), pca.transform(b)


def source_report(name: str, train_x, train_y, test_x, test_y, *, few=FEW_LABELS, seed: int = 0,
                  draws: int = FEW_LABEL_DRAWS) -> dict[str, float]:
    """Every probe on one source of features ``name``: ``{"probe_linear_{name}",
    "probe_{n}_labels_{name}", "kmeans_{nmi|acc}_{name}"}``. A few-label figure is the mean over
    ``draws`` class-balanced draws (seeds ``seed`` .. ``seed + draws - 1``): one draw of 100 labels
    swings by a few points."""
    out = {f"probe_linear_{name}": linear_probe_accuracy(train_x, train_y, test_x, test_y)}
    for n in few:
        if n <= len(train_y):
            out[f"probe_{n}_labels_{name}"] = float(np.mean(
                [few_label_accuracy(train_x, train_y, test_x, test_y, n, seed + d) for d in range(draws)]))
    scores = kmeans_scores(test_x, test_y, seed=seed)
    out[f"kmeans_nmi_{name}"], out[f"kmeans_acc_{name}"] = scores["nmi"], scores["acc"]
    return out


def baseline_report(train_y, test_y, train_pixels, test_pixels, width: int, *, few=FEW_LABELS,
                    seed: int = 0, draws: int = FEW_LABEL_DRAWS) -> dict[str, float]:
    """The baselines an encoder of ``width`` codes has to beat: :func:`source_report` on raw
    pixels (``..._pixels``) and on PCA codes of ``width`` components (``..._pca``). They depend
    on the data and these settings only, not on the model, so a caller may keep them
    (:func:`gen_keras.eval.cached_baselines`)."""
    pca_train, pca_test = pca_codes(train_pixels, test_pixels, width, seed)
    settings = dict(few=few, seed=seed, draws=draws)
    return {**source_report("pixels", train_pixels, train_y, test_pixels, test_y, **settings),
            **source_report("pca", pca_train, train_y, pca_test, test_y, **settings)}


def representation_report(train_codes, train_y, test_codes, test_y, train_pixels, test_pixels, *,
                          few=FEW_LABELS, seed: int = 0, draws: int = FEW_LABEL_DRAWS,
                          baselines: dict[str, float] | None = None) -> dict[str, float]:
    """Every probe on the codes, on raw pixels and on PCA codes of the codes' width:
    ``{"probe_linear_{codes|pixels|pca}", "probe_{n}_labels_{...}", "kmeans_{nmi|acc}_{...}"}``,
    the same few-label draws for the three. ``baselines``: the pixel and PCA part, when the caller
    already has :func:`baseline_report` of the same arrays and settings."""
    settings = dict(few=few, seed=seed, draws=draws)
    out = source_report("codes", train_codes, train_y, test_codes, test_y, **settings)
    if baselines is None:
        baselines = baseline_report(train_y, test_y, train_pixels, test_pixels,
                                    int(np.shape(train_codes)[1]), **settings)
    out.update(baselines)
    return out
