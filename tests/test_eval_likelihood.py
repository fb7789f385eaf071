"""The IWAE / ELBO estimates against a model whose log p(x) is known in closed form.

A linear-Gaussian VAE (decoder x = W z + b + sigma * noise, prior N(0, I)) has marginal
p(x) = N(b, W W^T + sigma^2 I) and posterior N(S W^T (x - b) / sigma^2, S) with
S = (I + W^T W / sigma^2)^-1 (Bishop 2006, eq. 2.113-2.117 / 12.42). With W's columns orthogonal,
S is diagonal, so the VAE's diagonal encoder can represent it exactly: then every importance
weight equals p(x) and ELBO = IWAE_k = log p(x) for any k. With a shifted encoder, the bounds
fall below log p(x) and IWAE_k climbs back towards it as k grows (Burda et al. 2016, thm. 1).
"""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from gen_keras.eval.likelihood import binarize, bits_per_dim, iwae_bounds, log_importance_weights, logmeanexp
from gen_keras.models.vae import VAE, VAEConfig

SHAPE = (28, 28, 1)
D = 784
LATENT = 2
SIGMA = 0.3


class LinearGaussianVAE(VAE):
    """A VAE whose encoder and decoder are single affine maps (weights set by the test)."""

    def build_encoder(self):
        x = keras.Input(SHAPE, name="x")
        flat = keras.layers.Flatten()(x)
        mean = keras.layers.Dense(LATENT, name="mean")(flat)
        log_var = keras.layers.Dense(LATENT, name="log_var")(flat)
        return keras.Model(x, [mean, log_var])

    def build_decoder(self):
        z = keras.Input((LATENT,), name="z")
        return keras.Model(z, keras.layers.Reshape(SHAPE)(keras.layers.Dense(D, name="w")(z)))


@pytest.fixture(scope="module")
def linear_model():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(D, LATENT)))
    w = q * np.array([0.8, 1.5])  # orthogonal columns with norms 0.8 and 1.5
    b = rng.uniform(0.2, 0.8, size=D)
    cfg = VAEConfig(kind="vae", latent_dim=LATENT, likelihood="gaussian", gaussian_sigma=SIGMA,
                    binarize="none")
    model = LinearGaussianVAE(cfg)
    s = np.linalg.inv(np.eye(LATENT) + w.T @ w / SIGMA ** 2)  # diagonal posterior covariance
    assert np.allclose(s, np.diag(np.diag(s)))
    enc_kernel = (s @ w.T / SIGMA ** 2).T  # mean = (x - b) @ enc_kernel
    model.encoder.get_layer("mean").set_weights([enc_kernel, -b @ enc_kernel])
    model.encoder.get_layer("log_var").set_weights([np.zeros((D, LATENT)), np.log(np.diag(s))])
    model.decoder.get_layer("w").set_weights([w.T, b])
    z = rng.normal(size=(24, LATENT))
    x = (z @ w.T + b + SIGMA * rng.normal(size=(24, D))).reshape(-1, *SHAPE).astype(np.float32)
    cov = w @ w.T + SIGMA ** 2 * np.eye(D)
    _, logdet = np.linalg.slogdet(cov)
    diff = x.reshape(-1, D) - b
    log_px = -0.5 * (D * math.log(2 * math.pi) + logdet
                     + np.einsum("nd,nd->n", diff, np.linalg.solve(cov, diff.T).T))
    return model, x, log_px


def _shift_encoder(model, delta):
    layer = model.encoder.get_layer("mean")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + delta])
    return lambda: layer.set_weights([kernel, bias])


def test_with_the_exact_posterior_elbo_and_iwae_equal_the_closed_form_log_px(linear_model):
    model, x, log_px = linear_model
    for k in (1, 50):
        result = iwae_bounds(model, x, k=k, seed=1)
        np.testing.assert_allclose(result.iwae, log_px, atol=2e-2, rtol=0)
        np.testing.assert_allclose(result.elbo, log_px, atol=2e-2, rtol=0)
    assert "continuous" in result.data_note  # a Gaussian decoder: no binarization


def test_iwae_is_above_the_elbo_and_rises_to_log_px_as_k_grows(linear_model):
    model, x, log_px = linear_model
    restore = _shift_encoder(model, np.array([0.7, -0.4]))  # ~2 posterior std off
    try:
        log_w = log_importance_weights(model, x, k=1000, seed=3, decode_batch=4000)
    finally:
        restore()
    assert log_w.shape == (len(x), 1000)
    bounds = {k: logmeanexp(log_w[:, :k]) for k in (1, 10, 100, 1000)}
    for k, iwae in bounds.items():
        elbo = log_w[:, :k].mean(axis=1)  # the ELBO estimate from the same k draws
        assert np.all(iwae >= elbo - 1e-9 * np.abs(elbo)), f"IWAE_{k} < ELBO_{k} for some example"
        if k > 1:
            assert np.mean(iwae - elbo) > 0.1
    means = [float(np.mean(bounds[k])) for k in (1, 10, 100, 1000)]
    assert means == sorted(means) and means[-1] - means[0] > 1.0  # rises...
    gap = float(np.mean(log_px) - means[-1])
    assert 0 <= gap < 0.25 * (np.mean(log_px) - means[0])  # ...towards log p(x), from below
    assert means[-1] - means[-2] < means[1] - means[0]  # and flattens (a plateau)


def test_chunking_does_not_change_the_estimate(linear_model):
    model, x, _ = linear_model
    restore = _shift_encoder(model, np.array([0.2, 0.1]))
    try:
        a = iwae_bounds(model, x, k=60, seed=5, decode_batch=24 * 60)  # one chunk
        b = iwae_bounds(model, x, k=60, seed=5, decode_batch=24 * 60, batch_size=24)
        c = iwae_bounds(model, x, k=60, seed=6, decode_batch=24 * 60)
    finally:
        restore()
    np.testing.assert_allclose(a.iwae, b.iwae, rtol=1e-6)  # seeded: the same draws
    assert not np.allclose(a.iwae, c.iwae)  # another seed, other draws


def test_logmeanexp_is_stable_for_very_negative_weights():
    log_w = np.array([[-10000.0, -10000.0 + math.log(3.0)]])
    # log((e^a + 3 e^a) / 2) = a + log 2
    np.testing.assert_allclose(logmeanexp(log_w), [-10000.0 + math.log(2.0)])


def test_binarization_is_seeded_and_unbiased():
    images = np.full((50, 28, 28, 1), 0.3, np.float32)
    a, b, c = binarize(images, 0), binarize(images, 0), binarize(images, 1)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(a.mean() - 0.3) < 0.01
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(images * 2 - 1, 0)


def test_bits_per_dim_divides_by_d_ln2():
    assert bits_per_dim(784 * math.log(2.0), SHAPE) == pytest.approx(1.0)


def test_bernoulli_vae_is_scored_on_binary_images_and_says_so():
    model = VAE(VAEConfig(latent_dim=4, filters=8, hidden=32))
    x = np.random.default_rng(0).uniform(size=(6, *SHAPE)).astype(np.float32)
    result = iwae_bounds(model, x, k=4, seed=2)
    assert "binarized" in result.data_note and "seed 2" in result.data_note
    metrics = result.metrics("test")
    assert set(metrics) == {"test_neg_elbo_nats", "test_neg_elbo_bpd", "test_nll_k4_nats",
                            "test_nll_k4_bpd"}
    assert metrics["test_nll_k4_nats"] <= metrics["test_neg_elbo_nats"] + 1e-6


def test_mlp_decoder_vae_round_trips_with_the_same_likelihood(tmp_path):
    from gen_keras.artifacts import load_model, save_model
    from gen_keras.config_loader import load_config
    from gen_keras.errors import ConfigError

    cfg = load_config(None, ["model.kind=vae", "model.decoder=mlp", "model.hidden=64",
                             "model.decoder_layers=2", "model.latent_dim=4", "model.filters=8"])
    model = VAE(cfg.model)
    assert [layer.name for layer in model.decoder.layers if "hidden" in layer.name] == [
        "hidden0", "hidden1"]
    x = np.random.default_rng(0).uniform(size=(5, *SHAPE)).astype(np.float32)
    before = iwae_bounds(model, x, k=8, seed=1).iwae
    loaded = load_model(save_model(model, tmp_path / "m.keras"))
    assert loaded.config.decoder == "mlp"
    np.testing.assert_allclose(iwae_bounds(loaded, x, k=8, seed=1).iwae, before, rtol=1e-5)
    assert {ep.name for ep in loaded.export_endpoints()} == {"generate", "encode", "reconstruct", "score"}
    with pytest.raises(ConfigError, match="model.decoder="):
        load_config(None, ["model.decoder=transformer"])
