"""Per-example anomaly scores: how badly a model explains each image (higher = more anomalous).

Each model says how it scores an example (its ``score`` method, exported as the ``score``
operation); nothing here knows a loss:

- Autoencoders: the reconstruction error of the clean input, in the model's own loss
  (binary cross-entropy summed over pixels, or the squared error) — the AE anomaly score of
  Japkowicz et al. 1995 and Sakurada & Yairi 2014.
- VAEs: the negative ELBO, ``-E_q[log p(x|z)] + KL(q(z|x) || p(z))`` (Kingma & Welling 2014,
  eq. 3), an upper bound on -log p(x) (An & Cho 2015 use the reconstruction probability, a
  close relative). The expectation is estimated with ``samples`` draws of z; from an export the
  noise of draw d for image i is the one rule's (:func:`gen_keras.exported.latents.draw_noise`
  of ``(seed, d, i)``), the same noise ``gen-keras batch score`` and the pyfunc model draw.

Two entry points: :func:`score_model` for a model in memory and :func:`score_export` for an
export (an :class:`~gen_keras.exported.reader.ExportReader` or a folder).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


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


def score_export(exported, images, labels=None, samples: int = 8, seed: int = 0) -> np.ndarray:
    """``[N]`` scores from the export's score operation, averaged over ``samples`` draws of its
    noise input when it has one (a VAE); ``exported`` is a reader or a folder."""
    from gen_keras.exported.adapter import Values
    from gen_keras.exported.reader import ExportReader, open_export

    m = exported if isinstance(exported, ExportReader) else open_export(str(exported))
    if not m.adapter.has_task("score"):
        raise ValueError(f"the {m.kind!r} export has no 'score' operation, so it has no anomaly "
                         "score (a GAN generator cannot reconstruct an image; an export made "
                         "before the score operation existed needs `gen-keras export` again)")
    op = m.adapter.for_task("score")
    x = m.as_images(images)
    y = m.check_labels(labels, len(x))
    draws = max(1, samples) if op.input_for("noise") is not None else 1
    total = np.zeros(len(x))
    for draw in range(draws):
        values = Values(images=x, labels=y, noise_seed=seed, draw=draw)
        total += m.adapter.run(op, values).role("score").astype(np.float64)
    return total / draws


def per_class_means(scores, labels) -> dict[int, float]:
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).ravel()
    return {int(c): float(scores[labels == c].mean()) for c in np.unique(labels)}


def write_scores_csv(path: str | Path, scores, labels=None) -> Path:
    """``index,label,score`` rows (label empty when unknown), published atomically."""
    from gen_keras.files import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "label", "score"])
            for i, s in enumerate(np.asarray(scores, np.float64)):
                label = "" if labels is None or int(labels[i]) < 0 else int(labels[i])
                w.writerow([i, label, f"{s:.6f}"])

    return atomic_write(path, write)
