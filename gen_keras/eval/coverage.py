"""Mode coverage from the evaluator's class predictions, and conditional accuracy.

Mode collapse shows as a skewed class histogram of generated samples (the "modes captured"
count of Metz et al. 2017, "Unrolled GANs", section 3.3.1, with a trained classifier as the
mode detector). Reported:

- ``classes_covered``: classes whose share of the generated samples is at least
  ``min_relative_share`` (default 0.1) of their share in the test split — a handful of
  misclassified samples does not make a missing class count as covered;
- ``class_kl``: KL(generated histogram || test histogram) = sum_c p_g(c) log(p_g(c) / p_t(c))
  in nats (0 when the proportions match; terms with p_g(c) = 0 contribute 0);
- for class-conditional models, ``conditional_accuracy``: how often the evaluator assigns a
  sample to the class it was generated for (the "classification accuracy score" idea of
  Ravuri & Vinyals 2019, run in the evaluator's direction).
"""
from __future__ import annotations

import numpy as np


def class_histogram(classes, num_classes: int) -> np.ndarray:
    """Normalized class frequencies ``[num_classes]``."""
    classes = np.asarray(classes, np.int64)
    if len(classes) == 0:
        raise ValueError("no samples to histogram")
    if classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"class ids must be in [0, {num_classes}), got [{classes.min()}, {classes.max()}]")
    return np.bincount(classes, minlength=num_classes).astype(np.float64) / len(classes)


def class_kl(generated_hist, reference_hist) -> float:
    """KL(p_g || p_t) in nats; p_t must be > 0 wherever p_g is."""
    p, q = np.asarray(generated_hist, np.float64), np.asarray(reference_hist, np.float64)
    support = p > 0
    if np.any(q[support] <= 0):
        raise ValueError("the reference histogram is 0 where the generated one is not: KL is infinite")
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def classes_covered(generated_hist, reference_hist, min_relative_share: float = 0.1) -> int:
    """Classes present in the reference whose generated share is >= ``min_relative_share`` x theirs."""
    p, q = np.asarray(generated_hist, np.float64), np.asarray(reference_hist, np.float64)
    present = q > 0
    return int(np.sum(p[present] >= min_relative_share * q[present]))


def mode_coverage(generated_classes, reference_classes, num_classes: int,
                  min_relative_share: float = 0.1) -> dict[str, float]:
    p_g = class_histogram(generated_classes, num_classes)
    p_t = class_histogram(reference_classes, num_classes)
    return {"classes_covered": float(classes_covered(p_g, p_t, min_relative_share)),
            "classes_total": float(np.sum(p_t > 0)),
            "class_kl": class_kl(p_g, p_t)}


def conditional_accuracy(predicted_classes, requested_classes) -> float:
    """Fraction of samples the evaluator assigns to the class they were generated for."""
    predicted, requested = np.asarray(predicted_classes), np.asarray(requested_classes)
    if predicted.shape != requested.shape:
        raise ValueError(f"{predicted.shape} predictions for {requested.shape} requested labels")
    return float(np.mean(predicted == requested))
