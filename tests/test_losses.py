"""VAE/AE losses against values computed by hand."""
import math

import numpy as np
import pytest

from gen_keras import losses


def test_kl_of_standard_normal_is_zero():
    assert losses.kl_divergence([[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]).numpy()[0] == pytest.approx(0.0)


def test_kl_of_known_gaussian():
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 * (s^2 + mu^2 - 1 - ln s^2), per dimension, summed.
    mu, var = np.array([[1.0, -2.0]]), np.array([[0.25, 4.0]])
    by_hand = sum(0.5 * (v + m * m - 1.0 - math.log(v)) for m, v in zip(mu[0], var[0]))
    got = losses.kl_divergence(mu.astype("float32"), np.log(var).astype("float32")).numpy()[0]
    assert got == pytest.approx(by_hand, rel=1e-6)  # = 0.5*(0.25+1-1+1.386) + 0.5*(4+4-1-1.386)


def test_bernoulli_log_likelihood_of_known_image():
    x = np.array([[[[1.0], [0.0]], [[0.5], [1.0]]]], "float32")
    logits = np.array([[[[0.0], [2.0]], [[-1.0], [3.0]]]], "float32")
    p = 1.0 / (1.0 + np.exp(-logits))
    by_hand = float(np.sum(x * np.log(p) + (1 - x) * np.log(1 - p)))
    assert losses.bernoulli_log_likelihood(x, logits).numpy()[0] == pytest.approx(by_hand, rel=1e-5)
    # BCE of the AE is its negative.
    assert losses.binary_crossentropy_per_example(x, logits).numpy()[0] == pytest.approx(-by_hand, rel=1e-5)


def test_gaussian_log_likelihood_of_known_image():
    x = np.array([[[[0.5]], [[1.0]]]], "float32")
    mean = np.array([[[[0.0]], [[1.0]]]], "float32")
    sigma = 0.5
    by_hand = sum(-0.5 * math.log(2 * math.pi) - math.log(sigma) - (xi - mi) ** 2 / (2 * sigma ** 2)
                  for xi, mi in ((0.5, 0.0), (1.0, 1.0)))
    got = losses.gaussian_log_likelihood(x, mean, math.log(sigma)).numpy()[0]
    assert got == pytest.approx(by_hand, rel=1e-6)


def test_log_normal_diag_matches_scalar_formula():
    z, mu, var = 0.3, -0.2, 2.0
    by_hand = -0.5 * math.log(2 * math.pi * var) - (z - mu) ** 2 / (2 * var)
    got = losses.log_normal_diag([[z]], [[mu]], [[math.log(var)]]).numpy()[0]
    assert got == pytest.approx(by_hand, rel=1e-6)
    assert losses.log_standard_normal([[0.0, 1.0]]).numpy()[0] == pytest.approx(
        -math.log(2 * math.pi) - 0.5, rel=1e-6)


def test_negative_elbo_and_beta():
    rec_ll, kl = np.array([-100.0, -50.0], "float32"), np.array([10.0, 4.0], "float32")
    np.testing.assert_allclose(losses.negative_elbo(rec_ll, kl).numpy(), [110.0, 54.0])
    np.testing.assert_allclose(losses.negative_elbo(rec_ll, kl, beta=4.0).numpy(), [140.0, 66.0])


def test_squared_error_and_global_batch_average():
    x = np.zeros((2, 1, 2, 1), "float32")
    x_hat = np.array([[[[1.0], [2.0]]], [[[0.0], [3.0]]]], "float32")
    per = losses.squared_error_per_example(x, x_hat).numpy()
    np.testing.assert_allclose(per, [5.0, 9.0])
    # A replica holding 2 of a global batch of 4 contributes sum/4.
    assert losses.average_over_global_batch(per, 4).numpy() == pytest.approx(14.0 / 4)
