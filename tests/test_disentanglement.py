"""Disentanglement metrics: hand-computed values, and the sanity of each metric on encoders whose
answer is known — an oracle (codes = the factors, permuted, rescaled, plus small noise), the
same oracle mixed by a random rotation, and a random encoder."""
import math

import numpy as np
import pytest
from PIL import Image

from gen_keras.config import DataConfig
from gen_keras.data import factor_sampler, load_factor_split
from gen_keras.errors import ConfigError
from gen_keras.eval import disentanglement as dm

SIZES = (3, 6, 40, 32, 32)  # the dsprites factor sizes
K = len(SIZES)


class IndexSampler:
    """A ground-truth sampler whose observations ARE the factor indices: encoders below are
    then known functions of the factors."""

    factor_sizes = SIZES

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)

    def observations(self, factors):
        return np.asarray(factors, np.float64)


_rng = np.random.default_rng(0)
PERM = _rng.permutation(K)
SCALES = _rng.uniform(0.5, 2.0, K) * _rng.choice([-1.0, 1.0], K)
ROTATION = np.linalg.qr(_rng.normal(size=(K, K)))[0]
MEAN = np.array([(s - 1) / 2 for s in SIZES])
SD = np.array([math.sqrt((s * s - 1) / 12) for s in SIZES])


NOISE = np.random.default_rng(1)


def oracle(obs):
    return ((obs - MEAN) / SD)[:, PERM] * SCALES + 0.01 * NOISE.normal(size=obs.shape)


def rotated(obs):
    return ((obs - MEAN) / SD) @ ROTATION.T + 0.01 * NOISE.normal(size=obs.shape)


def random_encoder(obs):
    return NOISE.normal(size=(len(obs), K))


@pytest.fixture(scope="module")
def sample():
    sampler = IndexSampler()
    factors = sampler.sample_factors(3000, np.random.default_rng(5))
    return sampler, factors


# -- hand-computed values -------------------------------------------------------------------------
def test_entropy_mutual_information_and_bins_by_hand():
    assert dm.entropy([0, 0, 1, 1]) == pytest.approx(math.log(2))
    assert dm.entropy([3, 3, 3]) == 0.0
    assert dm.mutual_information([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(math.log(2))
    assert dm.mutual_information([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # p(a,b) = 1/4 on (0,0), (1,1), (1,2), (0,0): I = H(a) - H(a|b) = log 2 - 0
    assert dm.mutual_information([0, 1, 1, 0], [0, 1, 2, 0]) == pytest.approx(math.log(2))
    np.testing.assert_array_equal(dm.discretize([[0.0], [0.5], [1.0], [0.2]], 2).ravel(), [0, 1, 1, 0])
    assert dm.default_num_bins(np.array([[0, 1], [1, 39]])) == 20
    assert dm.default_num_bins(np.arange(40)[:, None]) == 40


def test_mig_by_hand():
    # Factor 0 has entropy 1 nat; code 0 holds 0.6 of it, code 1 0.2 -> gap 0.4. Factor 1 (H = 2):
    # 0.5 and 0.1 -> 0.2. MIG = (0.4 + 0.2) / 2.
    assert dm.mig_from_mi([[0.6, 0.1], [0.2, 0.5]], [1.0, 2.0]) == pytest.approx(0.3)
    assert dm.mig_from_mi([[0.6, 0.1], [0.2, 0.5]], [1.0, 0.0]) == pytest.approx(0.4)  # constant factor left out
    f = np.array([[0], [0], [1], [1]])
    assert dm.mutual_information_gap(np.array([[0.0, 3.0], [0.0, 3.0], [1.0, 3.0], [1.0, 3.0]]), f) == pytest.approx(1.0)
    assert dm.mutual_information_gap(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]), f) == pytest.approx(0.0)


def test_dci_disentanglement_and_completeness_by_hand():
    assert dm.disentanglement_completeness(np.eye(3)) == pytest.approx((1.0, 1.0))
    # One code explains both factors equally: D = 0; each factor rests on one code: C = 1.
    assert dm.disentanglement_completeness([[1.0, 1.0], [0.0, 0.0]]) == pytest.approx((0.0, 1.0))
    # Rows (0.5, 0.5) and (1, 0), equal weights: D = (0 + 1) / 2. Columns (0.5, 1) -> (1/3, 2/3),
    # C_0 = 1 - H_2(1/3, 2/3) = 0.0817; column (0.5, 0) -> C_1 = 1.
    h = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    d, c = dm.disentanglement_completeness([[0.5, 0.5], [1.0, 0.0]])
    assert d == pytest.approx(0.5) and c == pytest.approx((1 - h + 1) / 2)


def test_sap_by_hand():
    # Factor 0: 0.9 - 0.2; factor 1: 0.6 - 0.5.
    assert dm.sap_from_matrix([[0.9, 0.1], [0.2, 0.6], [0.1, 0.5]]) == pytest.approx(0.4)
    z = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [3.0, 5.0]])
    f = np.array([[0], [1], [2], [3]])
    s = dm.sap_matrix(z, f, train_fraction=0.5)
    assert s[0, 0] == pytest.approx(1.0)  # R^2 of an exact line
    assert s[1, 0] == pytest.approx(np.corrcoef(z[:, 1], f[:, 0])[0, 1] ** 2)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same N"):
        dm.mutual_information_gap(np.zeros((3, 2)), np.zeros((4, 1), int))
    with pytest.raises(ValueError, match="integer"):
        dm.dci(np.zeros((10, 2)), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="NaN"):
        dm.sap_score(np.full((4, 1), np.nan), np.zeros((4, 1), int))


# -- known encoders -------------------------------------------------------------------------------
def scores(encoder, sampler, factors):
    codes = encoder(sampler.observations(factors))
    return {"mig": dm.mutual_information_gap(codes, factors), **dm.dci(codes, factors),
            "sap": dm.sap_score(codes, factors, [True, False, False, False, False]),
            "factorvae": dm.factorvae_score(sampler, encoder, num_train=300, num_eval=200),
            "betavae": dm.betavae_score(sampler, encoder, num_train=300, num_eval=200)}


def test_oracle_scores_high(sample):
    s = scores(oracle, *sample)
    assert s["mig"] >= 0.9 and s["dci_disentanglement"] >= 0.9 and s["factorvae"] >= 0.9, s
    assert s["dci_completeness"] >= 0.9 and s["dci_informativeness"] >= 0.9, s
    assert s["sap"] >= 0.8 and s["betavae"] >= 0.9, s


def test_random_encoder_scores_low(sample):
    s = scores(random_encoder, *sample)
    assert s["mig"] <= 0.1 and s["dci_disentanglement"] <= 0.1 and s["sap"] <= 0.1, s
    assert s["dci_informativeness"] <= 0.1, s
    # The two classifier scores are accuracies: a random code is at chance, 1 / K = 0.2.
    assert s["factorvae"] <= 1 / K + 0.1 and s["betavae"] <= 1 / K + 0.1, s


def test_rotated_oracle_is_informative_but_not_disentangled(sample):
    s = scores(rotated, *sample)
    assert s["mig"] <= 0.3 and s["dci_disentanglement"] <= 0.5, s
    assert s["dci_informativeness"] >= 0.9, s


# -- on the real data sets --------------------------------------------------------------------------
def test_metrics_on_a_factor_data_set_and_heat_map(tmp_path):
    """The sampler renders real dsprites images; hand-made codes — the sprite's centroid x and
    y, its area, and noise — are credited to the factors they follow: the centroid to the
    positions, the area to scale (and shape), the noise to nothing."""
    sampler = factor_sampler("dsprites")
    factors = sampler.sample_factors(3000, np.random.default_rng(0))
    mass = sampler.observations(factors)[..., 0]
    ys, xs = np.mgrid[0:64, 0:64]
    area = mass.sum(axis=(1, 2))
    codes = np.stack([(mass * xs).sum(axis=(1, 2)) / area, (mass * ys).sum(axis=(1, 2)) / area,
                      area, np.random.default_rng(0).normal(size=len(area))], axis=1)
    mi = dm.normalized_mi(codes, factors)
    pos_x, pos_y, scale = 3, 4, 1
    assert mi[0, pos_x] >= 0.75 and mi[1, pos_y] >= 0.75  # ~0.84: pixels quantize the centroid
    assert np.argmax(mi[:, scale]) == 2 and mi[2, scale] >= 0.7
    assert mi[3].max() <= 0.1  # noise (what remains is the estimator's small-sample bias)
    path = dm.mi_heatmap_png(codes, factors, sampler.factor_names, tmp_path / "mi.png")
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.width > 4 * 28 and im.height > 5 * 28
    assert [p.name for p in tmp_path.iterdir()] == ["mi.png"]  # written atomically, no leftovers


def test_factor_metrics_on_a_set_without_factors_name_it():
    with pytest.raises(ConfigError, match="mnist10k.*no ground-truth factors.*dsprites"):
        dm.disentanglement_metrics(lambda x: x.reshape(len(x), -1)[:, :2], "mnist10k")
    with pytest.raises(ConfigError, match="npz:x.npz"):
        load_factor_split(DataConfig(dataset="npz:x.npz"), "test")
