"""Anomaly scores: the per-example formulas on hand values, the CSV, and the real check — a VAE
trained without one digit class scores that class worse than the classes it saw."""
import csv

import numpy as np
import pytest

from gen_keras import cli
from gen_keras.anomaly import per_class_means, score_export, score_model, write_scores_csv
from gen_keras.config_loader import load_config
from gen_keras.data import load_split_arrays
from gen_keras.exported.latents import draw_noise
from gen_keras.models import build_model
from gen_keras.training import train

from conftest import ROOT

HELD_OUT = 7  # less ink than the average digit: by ink alone it would score BELOW average


def numpy_neg_elbo(x, logits, mean, log_var):
    """By hand: -sum_i [x_i log s(l_i) + (1 - x_i) log(1 - s(l_i))] + KL(N(mean, var) || N(0, I))."""
    x, l = np.asarray(x, np.float64).reshape(len(x), -1), np.asarray(logits, np.float64).reshape(len(x), -1)
    p = 1.0 / (1.0 + np.exp(-l))
    nll = -np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    return nll - 0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)


def test_exported_score_is_the_negative_elbo_by_hand(tmp_path):
    """The export's ``score`` operation (x, eps → -ELBO at z = mean + sigma * eps) against the
    formula computed in numpy from the Keras networks' outputs for the same eps."""
    from gen_keras.export import export_model
    from gen_keras.exported.reader import ExportReader

    model = build_model(load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml",
                                    ["model.hidden=16", "model.latent_dim=3"]).model)
    reader = ExportReader(export_model(model, tmp_path / "vae", name="vae"))
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(5, 28, 28, 1)) > 0.7).astype("float32")
    eps = rng.standard_normal((5, 3)).astype("float32")
    mean, log_var = (np.asarray(t) for t in model.encode(x))
    logits = np.asarray(model.decoder_output(mean + np.exp(0.5 * log_var) * eps))
    want = numpy_neg_elbo(x, logits, mean, log_var)
    np.testing.assert_allclose(reader.run("score", x=x, eps=eps)["score"], want, rtol=1e-4)
    # score_export averages draws of eps by the one noise rule: one draw is the operation on that eps.
    one = draw_noise(5, 3, seed=7, first_index=0, draw=0)
    np.testing.assert_allclose(score_export(reader, x, samples=1, seed=7),
                               reader.run("score", x=x, eps=one)["score"], rtol=1e-6)


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
