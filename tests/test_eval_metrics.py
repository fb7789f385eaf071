"""Each sample-quality metric against values computed by hand on tiny inputs (no TF, no data)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gen_keras.eval import coverage, frechet, kid, precision_recall


# -- Frechet distance --------------------------------------------------------------------------
def test_frechet_distance_of_two_1d_gaussians_has_the_closed_form():
    # d^2 = (mu1 - mu2)^2 + (s1 - s2)^2 for 1-D Gaussians with std s: (0 - 3)^2 + (1 - 2)^2 = 10
    assert frechet.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0, abs=1e-9)


def test_frechet_distance_of_rotated_gaussians_with_commuting_covariances():
    # S1 = R diag(1, 4) R^T, S2 = R diag(9, 1) R^T commute, so sqrt(S1 S2) = R diag(3, 2) R^T and
    # Tr(S1 + S2 - 2 sqrt(S1 S2)) = (1 + 4) + (9 + 1) - 2 (3 + 2) = 5; plus |mu1 - mu2|^2 = 1 + 4.
    a = 0.3
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    s1 = r @ np.diag([1.0, 4.0]) @ r.T
    s2 = r @ np.diag([9.0, 1.0]) @ r.T
    assert frechet.frechet_distance([0, 0], s1, [1, 2], s2) == pytest.approx(10.0, abs=1e-9)


def test_gaussian_statistics_use_the_unbiased_covariance():
    mu, sigma = frechet.gaussian_statistics([[0.0, 1.0], [2.0, 1.0]])
    np.testing.assert_allclose(mu, [1.0, 1.0])
    # ((0-1)^2 + (2-1)^2) / (N - 1) = 2, not 1 (the N denominator)
    np.testing.assert_allclose(sigma, [[2.0, 0.0], [0.0, 0.0]])
    assert sigma.dtype == np.float64


def test_frechet_distance_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(500, 6))
    assert frechet.frechet_distance_of_features(f, f) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 0, 0, 0, 0, 2.0])
    # Same covariance, mean moved by `shift`: the distance is exactly |shift|^2 = 5.
    assert frechet.frechet_distance_of_features(f, f + shift) == pytest.approx(5.0, abs=1e-6)


def test_rank_deficient_covariances_still_give_the_exact_distance():
    # 3 samples in 8 dimensions: rank-2 covariances. With b = a + shift the covariances are equal,
    # so the distance is exactly |shift|^2 however singular they are.
    a = np.random.default_rng(1).normal(size=(3, 8))
    shift = np.full(8, 0.5)
    assert frechet.frechet_distance_of_features(a, a + shift) == pytest.approx(8 * 0.25, abs=1e-6)


def test_a_product_without_a_square_root_falls_back_to_eps_on_the_diagonal():
    # S1 S2 = [[0, 1], [0, 0]] is nilpotent: it has no square root, and scipy returns huge finite
    # numbers instead of failing. The residual check catches it; with eps on the diagonals the
    # root exists and the trace term is ~2 sqrt(eps) -> the distance is ~ Tr(S1) + Tr(S2) = 2.
    s1 = np.array([[0.0, 1.0], [0.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="singular"):
        d = frechet.frechet_distance([0, 0], s1, [0, 0], np.eye(2), eps=1e-8)
    assert d == pytest.approx(2.0, abs=1e-3)


def test_a_non_covariance_input_is_rejected_by_the_imaginary_part_check():
    # diag(1, -4) is no covariance: sqrt of the product has 2i on its diagonal.
    with pytest.raises(ValueError, match="imaginary"):
        frechet.frechet_distance([0, 0], np.diag([1.0, -4.0]), [0, 0], np.eye(2))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        frechet.frechet_distance([0, 0], np.eye(2), [0, 0, 0], np.eye(3))


# -- KID -----------------------------------------------------------------------------------------
def test_unbiased_mmd_matches_the_hand_computed_value():
    # d = 2, k(a, b) = (a.b / 2 + 1)^3. X = {(1,0), (0,1)}, Y = {(1,1), (0,0)}:
    # k(x1, x2) = 1, k(y1, y2) = 1 → within-set terms 2/2 = 1 each;
    # cross: k(x1,y1) = k(x2,y1) = 1.5^3 = 3.375, k(x1,y2) = k(x2,y2) = 1 → mean 2.1875.
    # MMD^2_u = 1 + 1 - 2 * 2.1875 = -2.375 (the unbiased estimate may be negative).
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert kid.mmd2_unbiased(x, y) == pytest.approx(-2.375, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_large_for_another():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(800, 16)), rng.normal(size=(800, 16))
    same_mean, same_std = kid.kernel_inception_distance(a, b, num_subsets=20, subset_size=400)
    shifted, _ = kid.kernel_inception_distance(a, b + 1.0, num_subsets=20, subset_size=400)
    identical, _ = kid.kernel_inception_distance(a, a, num_subsets=20, subset_size=400)
    assert abs(same_mean) < 0.02 and same_std > 0
    assert abs(identical) < 0.02
    assert shifted > 50 * max(abs(same_mean), 1e-3)


def test_kid_needs_subsets_of_two():
    with pytest.raises(ValueError, match="at least 4"):
        kid.kernel_inception_distance(np.zeros((3, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        kid.mmd2_unbiased(np.zeros((1, 3)), np.zeros((5, 3)))


# -- precision / recall, density / coverage --------------------------------------------------
# Real: the unit square's corners; every corner's 3rd nearest neighbour is the opposite corner,
# so each real ball has radius sqrt(2). Fake: a unit square at x = 1.9..2.9 plus its centre;
# corner radii (k = 3) are 1, the centre's 0.707.
REAL = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
FAKE = np.array([[1.9, 0], [2.9, 0], [1.9, 1], [2.9, 1], [2.4, 0.5]], float)


def test_knn_radii_exclude_the_point_itself():
    np.testing.assert_allclose(precision_recall.knn_radii(REAL, 3), [math.sqrt(2)] * 4)
    np.testing.assert_allclose(precision_recall.knn_radii(FAKE, 3), [1, 1, 1, 1, math.sqrt(0.5)])


def test_precision_and_recall_on_a_2d_toy():
    # precision: (1.9, 0) and (1.9, 1) lie 0.9 from a real corner (< sqrt 2); (2.9, *) lie 1.9
    # away; the centre (2.4, 0.5) lies sqrt(1.96 + 0.25) = 1.487 > 1.414 away → 2/5.
    # recall: (1, 0) and (1, 1) lie 0.9 from a fake corner (< its radius 1); (0, *) do not → 2/4.
    precision, recall = precision_recall.precision_recall(REAL, FAKE, k=3)
    assert precision == pytest.approx(0.4)
    assert recall == pytest.approx(0.5)


def test_density_and_coverage_on_the_same_toy():
    # Real balls (radius sqrt 2): (1, 0) holds (1.9, 0) [0.9] and (1.9, 1) [1.345]; (1, 1) holds
    # the same two; (0, *) hold none. density = 4 / (k M) = 4 / 15; coverage = 2 / 4.
    density, cover = precision_recall.density_coverage(REAL, FAKE, k=3)
    assert density == pytest.approx(4 / 15)
    assert cover == pytest.approx(0.5)


def test_knn_needs_more_points_than_k():
    with pytest.raises(ValueError, match="k=3"):
        precision_recall.knn_radii(REAL[:3], 3)


# -- mode coverage ---------------------------------------------------------------------------
def test_class_kl_and_classes_covered_by_hand():
    generated = [0, 0, 1, 1]  # p_g = (0.5, 0.5, 0)
    reference = [0, 1, 2]  # p_t = (1/3, 1/3, 1/3)
    out = coverage.mode_coverage(generated, reference, num_classes=3)
    # KL = 2 * 0.5 * log(0.5 / (1/3)) = log 1.5
    assert out["class_kl"] == pytest.approx(math.log(1.5))
    assert out["classes_covered"] == 2 and out["classes_total"] == 3


def test_a_few_stray_samples_do_not_cover_a_class():
    reference = np.repeat(np.arange(10), 100)
    generated = np.array([3] * 990 + [0] * 5 + [7] * 5)  # 0.5% each < 10% of their 10% share
    assert coverage.mode_coverage(generated, reference, 10)["classes_covered"] == 1
    assert coverage.mode_coverage(reference, reference, 10) == {
        "classes_covered": 10.0, "classes_total": 10.0, "class_kl": 0.0}


def test_conditional_accuracy_counts_matches():
    assert coverage.conditional_accuracy([1, 2, 3, 3], [1, 2, 0, 3]) == 0.75
    with pytest.raises(ValueError):
        coverage.conditional_accuracy([1, 2], [1, 2, 3])


def test_class_kl_is_infinite_when_the_reference_lacks_a_generated_class():
    with pytest.raises(ValueError, match="infinite"):
        coverage.class_kl([0.5, 0.5], [1.0, 0.0])
