"""Per-example anomaly scores: how badly a model explains each image (higher = more anomalous).

- Autoencoders: the reconstruction error of the clean input, in the model's own loss
  (binary cross-entropy summed over pixels, or the squared error) — the AE anomaly score of
  Japkowicz et al. 1995 and Sakurada & Yairi 2014.
- VAEs: the negative ELBO, ``-E_q[log p(x|z)] + KL(q(z|x) || p(z))`` (Kingma & Welling 2014,
  eq. 3), an upper bound on -log p(x) (An & Cho 2015 use the reconstruction probability, a
  close relative). The expectation is estimated with ``samples`` draws of z.

Two entry points: :func:`score_model` for a model in memory (it calls the model's ``score``),
and :func:`score_export` for an export folder run with onnxruntime, which recomputes the same
quantities from the ``encode`` / ``generate`` / ``reconstruct`` endpoints and the manifest's
model config. From the export, Bernoulli terms use the decoder's probabilities clipped to
[1e-7, 1 - 1e-7] (the export gives probabilities, not logits).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

PROB_EPS = 1e-7


def score_model(model, images, labels=None, batch_size: int = 500, samples: int = 1) -> np.ndarray:
    """``[N]`` scores from an in-memory gen_keras model's ``score`` (averaged over ``samples``
    calls for a VAE, whose score draws z)."""
    if not hasattr(model, "score"):
        raise ValueError(f"the {model.config.kind!r} model has no anomaly score (no encoder)")
    conditional = bool(type(model.config).conditional)
    if conditional and labels is None:
        raise ValueError(f"the {model.config.kind!r} model is class-conditional: scoring needs labels")
    from gen_keras.precision import float32_twin

    model = float32_twin(model)  # scores never depend on the training precision
    images = np.asarray(images, np.float32)
    out = []
    for s in range(0, len(images), batch_size):
        x = images[s:s + batch_size]
        args = (x, np.asarray(labels[s:s + batch_size], np.int32)) if conditional else (x,)
        draws = [np.asarray(model.score(*args), np.float64) for _ in range(max(1, samples))]
        out.append(np.mean(draws, axis=0))
    return np.concatenate(out) if out else np.zeros((0,))


def bernoulli_nll(x, probs) -> np.ndarray:
    """``-sum_i x_i log p_i + (1 - x_i) log(1 - p_i)`` per example (p clipped to [eps, 1-eps])."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    p = np.clip(np.asarray(probs, np.float64).reshape(len(x), -1), PROB_EPS, 1 - PROB_EPS)
    return -np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)


def gaussian_nll(x, mean, sigma: float) -> np.ndarray:
    """``sum_i 0.5 log(2 pi) + log sigma + (x_i - mu_i)^2 / (2 sigma^2)`` per example."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    mu = np.asarray(mean, np.float64).reshape(len(x), -1)
    return np.sum(0.5 * math.log(2 * math.pi) + math.log(sigma)
                  + (x - mu) ** 2 / (2 * sigma ** 2), axis=1)


def squared_error(x, x_hat) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.sum((x - np.asarray(x_hat, np.float64).reshape(len(x), -1)) ** 2, axis=1)


def gaussian_kl(mean, log_var) -> np.ndarray:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example (Kingma & Welling 2014, appendix B)."""
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    return -0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)


def score_export(exported, images, labels=None, samples: int = 8, seed: int = 0) -> np.ndarray:
    """``[N]`` scores from an export folder (path or :class:`~gen_keras.latent.ExportedModel`)."""
    from gen_keras.latent.loading import as_latent_model

    m = as_latent_model(exported)
    if not getattr(m, "manifest", None):
        raise TypeError("score_export needs an export folder or ExportedModel; use score_model "
                        "for a model in memory")
    if not m.has_encoder:
        raise ValueError(f"the {m.kind!r} export has no 'encode' endpoint, so it has no anomaly "
                         "score (a GAN generator cannot reconstruct an image)")
    x = m.as_images(images)
    y = m.check_labels(labels, len(x))
    cfg = m.model_config
    encoded = m.encode_all(x, y)
    if "mean" in encoded and "log_var" in encoded:  # a VAE: -ELBO
        mean, log_var = encoded["mean"], encoded["log_var"]
        rng = np.random.default_rng(seed)
        reconstruction = np.zeros(len(x))
        for _ in range(max(1, samples)):
            z = mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape).astype(np.float32)
            decoded = m.generate(z, y)
            if cfg.get("likelihood", "bernoulli") == "bernoulli":
                reconstruction += bernoulli_nll(x, decoded)
            else:
                reconstruction += gaussian_nll(x, decoded, float(cfg.get("gaussian_sigma", 0.1)))
        return reconstruction / max(1, samples) + gaussian_kl(mean, log_var)
    x_hat = m.reconstruct(x, y)  # an autoencoder: its own reconstruction loss
    if cfg.get("reconstruction", "mse") == "bce":
        return bernoulli_nll(x, x_hat)
    return squared_error(x, x_hat)


def per_class_means(scores, labels) -> dict[int, float]:
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).ravel()
    return {int(c): float(scores[labels == c].mean()) for c in np.unique(labels)}


def write_scores_csv(path: str | Path, scores, labels=None) -> Path:
    """``index,label,score`` rows (label empty when unknown), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "score"])
        for i, s in enumerate(np.asarray(scores, np.float64)):
            label = "" if labels is None or int(labels[i]) < 0 else int(labels[i])
            w.writerow([i, label, f"{s:.6f}"])
    tmp.replace(path)
    return path
