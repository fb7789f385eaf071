"""The sample-quality metrics on REAL data, under the real evaluator (trained once per session).

What must hold if the metrics measure what they claim: real train images against the test split
give a small FID and a KID near 0 (the floor); a "generator" that only ever draws one digit is
far from it, with low recall and 1/10 classes covered; a generator that replays held-out real
images scores like real data, whatever value range it outputs in.
"""
from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from gen_keras.config import ModelConfig
from gen_keras.config_loader import load_config
from gen_keras.eval import evaluator as evaluator_mod
from gen_keras.eval.samples import compare_features, sample_quality

N = 2000


@pytest.fixture(scope="session")
def eval_setup(data_cache):
    cfg = load_config("pipelines/configs/vae_mnist10k.yaml")
    ev = evaluator_mod.get_evaluator(cfg)
    train_x, train_y = evaluator_mod.split_in_unit_range(cfg, "train")
    test_x, test_y = evaluator_mod.split_in_unit_range(cfg, "test")
    test_f, test_c = ev.features_and_classes(test_x, (0.0, 1.0))
    return cfg, ev, (train_x, train_y), (test_f, test_c)


@pytest.fixture(scope="session")
def floor(eval_setup):
    """2,000 real TRAIN images against the 2,000 test images: the best a generator can do."""
    _, ev, (train_x, _), (test_f, test_c) = eval_setup
    idx = np.random.default_rng(0).choice(len(train_x), N, replace=False)
    f, c = ev.features_and_classes(train_x[idx], (0.0, 1.0))
    return compare_features(test_f, test_c, f, c, ev.num_classes)


def test_evaluator_is_accurate_and_cached_with_its_checksum(eval_setup):
    cfg, ev, _, _ = eval_setup
    assert ev.test_accuracy >= 0.98
    assert evaluator_mod.get_evaluator(cfg) is ev  # reused within the process
    evaluator_mod._LOADED.clear()
    again = evaluator_mod.get_evaluator(cfg)  # loaded from the disk cache, sha256-checked
    assert again is not ev and again.info == ev.info and len(ev.info["sha256"]) == 64
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(again.features(x, (0, 1)), ev.features(x, (0, 1)), rtol=1e-5)
    folders = list(evaluator_mod.cache_root().glob("mnist10k-28x28x1-*"))
    assert len(folders) == 1 and (folders[0] / "evaluator.keras.sha256").read_text().startswith(
        ev.info["sha256"])


def test_evaluator_maps_both_value_ranges_to_the_same_features(eval_setup):
    _, ev, (train_x, _), _ = eval_setup
    x = train_x[:64]
    f01 = ev.features(x, (0.0, 1.0))
    fpm = ev.features(x * 2.0 - 1.0, (-1.0, 1.0))
    np.testing.assert_allclose(f01, fpm, atol=1e-4)


def test_real_train_images_give_the_floor(floor):
    # Not 0: the test split (the last 2,000 digits) holds only high-school writers, the train split
    # a mix with Census employees; measured here: FID ~4, KID ~0.09 (a one-digit set: ~225, ~12).
    assert floor[f"fid_{N}"] < 8.0
    assert abs(floor[f"kid_{N}"]) < 0.25
    assert floor[f"precision_{N}"] > 0.7 and floor[f"recall_{N}"] > 0.7
    assert floor["classes_covered"] == 10 and floor[f"class_kl_{N}"] < 0.02


def test_a_one_digit_generator_is_far_from_the_data(eval_setup, floor):
    _, ev, (train_x, train_y), (test_f, test_c) = eval_setup
    ones = train_x[train_y == 1]
    draw = ones[np.random.default_rng(1).choice(len(ones), N, replace=True)]
    f, c = ev.features_and_classes(draw, (0.0, 1.0))
    out = compare_features(test_f, test_c, f, c, ev.num_classes)
    assert out[f"fid_{N}"] > 20 * floor[f"fid_{N}"]
    assert out[f"kid_{N}"] > 30 * abs(floor[f"kid_{N}"])
    assert out[f"recall_{N}"] < 0.2
    assert out["classes_covered"] == 1 and out["classes_total"] == 10
    assert out[f"class_kl_{N}"] > 1.5  # ~ log(1 / p_test(1)) = log(1 / 0.11)


@dataclasses.dataclass
class ReplayConfig(ModelConfig):
    kind: str = "replay"
    value_range: typing.ClassVar[tuple[float, float]] = (-1.0, 1.0)


@dataclasses.dataclass
class ConditionalReplayConfig(ReplayConfig):
    num_classes: int = 10
    conditional: typing.ClassVar[bool] = True


class ReplayGenerator:
    """'Generates' held-out real images (the train split, never the test split), in [-1, 1];
    conditional: an image of the requested class."""

    def __init__(self, images, labels, config):
        self.images, self.labels, self.config = images * 2.0 - 1.0, labels, config
        self.image_shape = tuple(config.image_shape)
        self.rng = np.random.default_rng(5)

    def sample_latent(self, n, seed=0):
        return np.random.default_rng(seed).standard_normal((n, 2)).astype("float32")

    def generate(self, z, labels=None):
        if labels is None:
            return self.images[self.rng.choice(len(self.images), len(z), replace=False)]
        return np.stack([self.images[self.rng.choice(np.flatnonzero(self.labels == y))]
                         for y in labels])


def test_held_out_real_images_score_like_real_data(eval_setup, floor):
    cfg, ev, (train_x, train_y), _ = eval_setup
    out = sample_quality(ReplayGenerator(train_x, train_y, ReplayConfig()), cfg,
                         num_samples=N, evaluator=ev)
    assert out[f"fid_{N}"] < 1.5 * floor[f"fid_{N}"] + 0.5
    assert abs(out[f"kid_{N}"]) < 2 * abs(floor[f"kid_{N}"]) + 0.05
    assert out[f"precision_{N}"] > 0.7 and out[f"recall_{N}"] > 0.7
    assert out["classes_covered"] == 10 and out[f"class_kl_{N}"] < 0.02
    assert out["evaluator_test_accuracy"] == ev.test_accuracy
    assert not any(k.startswith("conditional_accuracy") for k in out)


def test_conditional_accuracy_of_a_perfect_conditional_generator(eval_setup, floor):
    cfg, ev, (train_x, train_y), _ = eval_setup
    out = sample_quality(ReplayGenerator(train_x, train_y, ConditionalReplayConfig()), cfg,
                         num_samples=N, evaluator=ev)
    # Every sample is a real image of the requested class: only the evaluator's own errors remain.
    assert out[f"conditional_accuracy_{N}"] >= 0.97
    assert out["classes_covered"] == 10 and out[f"class_kl_{N}"] < 0.02


def test_every_registered_kind_gets_the_metrics_that_fit_it(eval_setup):
    """Untrained models of every kind in the registry: the VAE family gets likelihoods, every
    generator gets sample metrics, conditional kinds get conditional accuracy, translation kinds
    the metrics of their task (on their default task)."""
    from gen_keras.eval import evaluate_model, is_translator, is_vae_family
    from gen_keras.models import build_model, model_kinds

    _, ev, _, _ = eval_setup
    for kind in model_kinds():
        cfg = load_config(None, [f"model.kind={kind}", "data.limit_test=40"]
                          + (["model.num_classes=10"] if _conditional(kind) else [])
                          + (["model.dataset_size=8000"] if _needs_dataset_size(kind) else []))
        model = build_model(cfg.model)
        out = evaluate_model(model, cfg, num_samples=40, iwae_k=2, evaluator=ev)
        if is_translator(model):
            assert any(k.startswith("fid") and np.isfinite(v) for k, v in out.items()), (kind, out)
            assert "classes_covered" not in out and "test_nll_k2_nats" not in out, kind
            continue
        assert np.isfinite(out["fid_40"]) and 0 <= out["classes_covered"] <= 10, kind
        assert ("test_nll_k2_nats" in out) == is_vae_family(model), kind
        assert ("conditional_accuracy_40" in out) == _conditional(kind), kind


def _conditional(kind: str) -> bool:
    from gen_keras.models import model_config_class

    return model_config_class(kind).conditional


def _needs_dataset_size(kind: str) -> bool:
    """beta-TCVAE's estimator needs N, which the training pipeline fills from the data."""
    from gen_keras.models import model_config_class

    return hasattr(model_config_class(kind), "dataset_size")
