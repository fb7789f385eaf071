"""Anomaly scores: the per-example formulas on hand values, the CSV, and the real check — a VAE
trained without one digit class scores that class worse than the classes it saw."""
import csv
import math

import numpy as np
import pytest

from gen_keras import cli
from gen_keras.anomaly import (bernoulli_nll, gaussian_kl, gaussian_nll, per_class_means,
                               score_model, squared_error, write_scores_csv)
from gen_keras.config import load_config
from gen_keras.data import load_split_arrays
from gen_keras.models import build_model
from gen_keras.training import train

from conftest import ROOT

HELD_OUT = 7  # less ink than the average digit: by ink alone it would score BELOW average


def test_per_example_formulas_by_hand():
    x = np.array([[1.0, 0.0], [0.5, 0.5]])
    p = np.array([[0.8, 0.1], [0.5, 0.5]])
    np.testing.assert_allclose(bernoulli_nll(x, p),
                               [-math.log(0.8) - math.log(0.9), 2 * math.log(2)])
    # Clipping keeps a confident wrong pixel finite: -log(1e-7).
    np.testing.assert_allclose(bernoulli_nll([[0.0]], [[1.0]]), [-math.log(1e-7)], rtol=1e-6)
    np.testing.assert_allclose(squared_error(x, p), [0.04 + 0.01, 0.0])
    sigma = 0.5
    np.testing.assert_allclose(gaussian_nll([[1.0]], [[0.0]], sigma),
                               [0.5 * math.log(2 * math.pi) + math.log(sigma) + 1 / (2 * sigma ** 2)])
    np.testing.assert_allclose(gaussian_kl([[1.0, 0.0]], [[0.0, math.log(2.0)]]),
                               [0.5 * (1 + 1 - 1 - 0) + 0.5 * (2 + 0 - 1 - math.log(2))])


def test_scores_csv_and_class_means(tmp_path):
    path = write_scores_csv(tmp_path / "s.csv", [1.0, 2.5, 4.0], np.array([3, -1, 3]))
    rows = list(csv.reader(path.open()))
    assert rows == [["index", "label", "score"], ["0", "3", "1.000000"], ["1", "", "2.500000"],
                    ["2", "3", "4.000000"]]
    assert per_class_means([1.0, 2.5, 4.0], [3, -1, 3]) == {-1: 2.5, 3: 2.5}


def test_conditional_model_needs_labels_to_score():
    cvae = build_model(load_config(ROOT / "pipelines/configs/cvae_mnist10k.yaml",
                                   ["model.filters=8", "model.hidden=16"]).model)
    x = np.zeros((2, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match="needs labels"):
        score_model(cvae, x)
    assert score_model(cvae, x, np.array([0, 9])).shape == (2,)


def test_held_out_class_scores_worse(tmp_path, smoke_overrides, mlflow_server):
    base = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml")
    x, y = load_split_arrays(base, "train")
    keep = y != HELD_OUT
    npz = tmp_path / f"mnist_without_{HELD_OUT}.npz"
    np.savez(npz, x=np.round(x[keep, ..., 0] * 255).astype(np.uint8), y=y[keep])
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", [
        *smoke_overrides, f"data.dataset=npz:{npz}", "data.limit_train=0", "train.epochs=3",
        "train.batch_size=32", "model.latent_dim=4", "model.filters=16", "model.hidden=128"])
    r = train(cfg, tracking_uri=mlflow_server.uri)

    out = tmp_path / "scores.csv"
    assert cli.main(["score", "--export", str(r.export_dir), "--data", "mnist10k",
                     "--samples", "4", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    scores = np.array([float(row["score"]) for row in rows])
    labels = np.array([int(row["label"]) for row in rows])
    assert len(rows) == 2000 and set(labels) == set(range(10))
    held_out, held_in = scores[labels == HELD_OUT].mean(), scores[labels != HELD_OUT].mean()
    means = per_class_means(scores, labels)
    print(f"negative ELBO per class {({c: round(v, 1) for c, v in means.items()})}; held-out "
          f"{HELD_OUT}: {held_out:.1f} vs held-in {held_in:.1f} nats")
    assert held_out > 1.05 * held_in
    # The control: by ink alone, the held-out class would score below the held-in average.
    xt, _ = load_split_arrays(base, "test")
    ink = xt.reshape(len(xt), -1).sum(1)
    assert ink[labels == HELD_OUT].mean() < ink[labels != HELD_OUT].mean()
    # The library call on the model in memory agrees with the export's scores on average.
    in_memory = score_model(r.model, xt[:500], samples=4)
    assert in_memory.mean() == pytest.approx(scores[:500].mean(), rel=0.02)
