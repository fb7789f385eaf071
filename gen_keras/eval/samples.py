"""Sample quality of a generator against the test split, in the evaluator's feature space:
FID, KID, precision/recall, density/coverage, mode coverage and conditional accuracy.

The sample count N is part of every set-level metric's name (``fid_2000``): FID, precision and
recall depend on N, so figures compare only at equal N. N real test images (the first N of the
split) are compared with N generated ones.
"""
from __future__ import annotations

import numpy as np

from gen_keras.eval import coverage, frechet, kid, precision_recall


def generate_samples(model, n: int, seed: int = 0, labels: np.ndarray | None = None,
                     batch_size: int = 500) -> np.ndarray:
    """``n`` images in the model's value range from latent codes ``model.sample_latent(n, seed)``."""
    z = np.asarray(model.sample_latent(n, seed), np.float32)
    out = []
    for start in range(0, n, batch_size):
        y = None if labels is None else np.asarray(labels[start:start + batch_size], np.int32)
        images = model.generate(z[start:start + batch_size], y)
        out.append(np.asarray(images, np.float32))
    return np.concatenate(out) if out else np.zeros((0, *model.image_shape), np.float32)


def requested_labels(model, reference_labels: np.ndarray, n: int, seed: int) -> np.ndarray | None:
    """For a class-conditional model, n labels drawn from the test split's class frequencies
    (so the class histogram can be compared with the test one); None otherwise."""
    if not type(model.config).conditional:
        return None
    rng = np.random.default_rng(seed + 7919)
    return rng.choice(np.asarray(reference_labels), size=n, replace=True).astype(np.int32)


def compare_features(real_feats, real_classes, fake_feats, fake_classes, num_classes: int, *,
                     requested: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Every set metric for one (real, generated) pair of feature sets of equal size N."""
    n = len(fake_feats)
    kid_mean, kid_std = kid.kernel_inception_distance(real_feats, fake_feats, seed=seed)
    precision, recall = precision_recall.precision_recall(real_feats, fake_feats, k=3)
    density, cover = precision_recall.density_coverage(real_feats, fake_feats, k=5)
    modes = coverage.mode_coverage(fake_classes, real_classes, num_classes)
    out = {
        f"fid_{n}": frechet.frechet_distance_of_features(real_feats, fake_feats),
        f"kid_{n}": kid_mean,
        f"kid_{n}_std": kid_std,
        f"precision_{n}": precision,
        f"recall_{n}": recall,
        f"density_{n}": density,
        f"coverage_{n}": cover,
        "classes_covered": modes["classes_covered"],
        "classes_total": modes["classes_total"],
        f"class_kl_{n}": modes["class_kl"],
    }
    if requested is not None:
        out[f"conditional_accuracy_{n}"] = coverage.conditional_accuracy(fake_classes, requested)
    return out


def reference_set(run_config, num_samples: int):
    """The first ``num_samples`` test images (model range) and labels (honours data.limit_test)."""
    from gen_keras.data import load_split_arrays

    images, labels = load_split_arrays(run_config, "test", limit=run_config.data.limit_test)
    n = min(num_samples, len(images))
    if n < 6:  # k-NN metrics need k + 1 points
        raise ValueError(f"only {len(images)} test images: sample metrics need at least 6")
    return images[:n], labels[:n]


def sample_quality(model, run_config, *, num_samples: int = 2000, seed: int = 0,
                   evaluator=None) -> dict[str, float]:
    """Generate N samples and compare them with N test images (see the module docstring)."""
    from gen_keras.eval.evaluator import get_evaluator

    evaluator = evaluator or get_evaluator(run_config)
    real, real_labels = reference_set(run_config, num_samples)
    n = len(real)
    value_range = type(model.config).value_range
    requested = requested_labels(model, real_labels, n, seed)
    fake = generate_samples(model, n, seed, requested)
    real_feats, real_classes = evaluator.features_and_classes(real, type(run_config.model).value_range)
    fake_feats, fake_classes = evaluator.features_and_classes(fake, value_range)
    out = compare_features(real_feats, real_classes, fake_feats, fake_classes,
                           evaluator.num_classes, requested=requested, seed=seed)
    out["evaluator_test_accuracy"] = evaluator.test_accuracy
    return out
