"""Domain-gap measures recover what they claim to measure on data with known answers."""

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from analysis.domain_gap import (
    IMAGE_STATS,
    frechet_distance,
    frechet_distance_from_stats,
    image_stat_gap,
    image_statistics,
    mean_prediction_entropy,
    mmd_rbf,
)

# --------------------------------------------------------------------------- MMD


def test_mmd_same_distribution_is_near_zero_and_shift_is_clearly_positive():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 5)), rng.normal(size=(500, 5))
    same = mmd_rbf(a, b)
    shifted = mmd_rbf(a, b + 1.0)
    assert abs(same) < 0.01
    assert shifted > 0.1
    assert shifted > 20 * abs(same)


def test_mmd_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    values = [mmd_rbf(a, b + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert all(x < y for x, y in zip(values, values[1:], strict=False)), values
    fixed = [mmd_rbf(a, b + s, bandwidths=[1.0, 2.0]) for s in (0.0, 0.5, 1.0)]
    assert fixed[0] < fixed[1] < fixed[2]


def test_mmd_unbiased_estimate_matches_a_hand_computation():
    a = np.array([[0.0], [1.0], [3.0]])
    b = np.array([[0.5], [2.0]])
    s = 1.5

    def k(x, y):
        return math.exp(-((x - y) ** 2) / (2 * s * s))

    xa, xb = a[:, 0], b[:, 0]
    kxx = sum(k(x, y) for i, x in enumerate(xa) for j, y in enumerate(xa) if i != j) / 6
    kyy = sum(k(x, y) for i, x in enumerate(xb) for j, y in enumerate(xb) if i != j) / 2
    kxy = sum(k(x, y) for x in xa for y in xb) / 6
    assert mmd_rbf(a, b, bandwidths=[s]) == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-12)


def test_mmd_subsampling_is_deterministic_and_checks_shapes():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 0.5
    assert mmd_rbf(a, b, max_n=100, seed=3) == mmd_rbf(a, b, max_n=100, seed=3)
    with pytest.raises(ValueError, match="dimensions"):
        mmd_rbf(a, b[:, :1])


# --------------------------------------------------------------------------- Frechet


def test_frechet_of_two_samples_of_one_gaussian_is_near_zero():
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    a = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    b = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) < 0.01
    assert frechet_distance(a, b + 1.0) > 2.9  # ||(1, 1, 1)||^2 = 3


def test_frechet_equals_mean_distance_for_equal_covariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    shift = np.array([1.0, -2.0, 0.5, 3.0])
    # b = a + shift has exactly the same sample covariance
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    cov = np.diag([1.0, 4.0])
    assert frechet_distance_from_stats([0, 0], cov, [3, 4], cov) == pytest.approx(25.0)
    # closed form for diagonal covariances: sum (sqrt(s1) - sqrt(s2))^2
    assert frechet_distance_from_stats([0, 0], np.diag([1.0, 4.0]), [0, 0], np.diag([4.0, 9.0])) == (
        pytest.approx((1 - 2) ** 2 + (2 - 3) ** 2)
    )


def test_frechet_survives_singular_covariances():
    a = np.zeros((50, 3))
    a[:, 0] = np.linspace(0, 1, 50)  # rank-1 covariance
    assert math.isfinite(frechet_distance(a, a + np.array([0.0, 1.0, 0.0])))


# --------------------------------------------------------------------------- entropy


def test_entropy_of_uniform_and_one_hot_predictions():
    k = 8
    uniform = np.full((10, k), 1.0 / k)
    onehot = np.eye(k)[np.arange(10) % k]
    assert mean_prediction_entropy([uniform]) == pytest.approx(math.log(k))
    assert mean_prediction_entropy(onehot) == pytest.approx(0.0)
    assert mean_prediction_entropy([uniform, onehot], normalise=True) == pytest.approx(0.5)
    # logits: equal logits are uniform; the list may mix numbers of bins
    assert mean_prediction_entropy([np.zeros((4, 3)), np.zeros((4, 5))]) == pytest.approx(
        (math.log(3) + math.log(5)) / 2
    )
    assert mean_prediction_entropy([np.array([[100.0, 0.0, 0.0]])]) == pytest.approx(0.0, abs=1e-12)


def test_entropy_takes_torch_logits():
    torch = pytest.importorskip("torch")
    logits = [torch.zeros(6, 4), torch.zeros(6, 4)]
    assert mean_prediction_entropy(logits) == pytest.approx(math.log(4))


# --------------------------------------------------------------------------- images


def _smooth_image(h=96, w=160):
    v, u = np.mgrid[0:h, 0:w]
    return 110.0 + 40.0 * np.sin(u / 17.0) * np.cos(v / 13.0) + 0.3 * u


def test_noise_estimate_recovers_added_gaussian_noise():
    rng = np.random.default_rng(0)
    base = _smooth_image()
    clean = np.clip(np.round(base), 0, 255).astype(np.uint8)[None]
    assert image_statistics(clean)["summary"]["noise_sigma"]["mean"] < 1.0
    for sigma in (4.0, 8.0, 12.0):
        noisy = np.clip(np.round(base + rng.normal(0, sigma, size=(6, *base.shape))), 0, 255)
        est = image_statistics(noisy.astype(np.uint8))["per_image"]["noise_sigma"]
        assert np.all(np.abs(est / sigma - 1) < 0.15), (sigma, est)


def test_blur_lowers_the_laplacian_variance():
    rng = np.random.default_rng(1)
    sharp = np.clip(_smooth_image() + rng.normal(0, 6, size=(96, 160)), 0, 255)
    sharp[30:60, 40:100] = 240  # an edge
    blurred = gaussian_filter(sharp, 1.5)
    s = image_statistics(np.stack([sharp, blurred]).round().astype(np.uint8))["per_image"]
    assert s["laplacian_var"][1] < 0.5 * s["laplacian_var"][0]


def test_brightness_recovers_an_offset_and_the_gap_reports_it():
    rng = np.random.default_rng(2)
    a = np.clip(_smooth_image()[None] + rng.normal(0, 3, (20, 96, 160)), 0, 200).round()
    b = a + 25.0  # no clipping: max 225
    sa, sb = image_statistics(a.astype(np.uint8)), image_statistics(b.astype(np.uint8))
    assert np.allclose(sb["per_image"]["brightness"] - sa["per_image"]["brightness"], 25.0)
    assert np.allclose(sb["per_image"]["contrast"], sa["per_image"]["contrast"])
    gap = image_stat_gap(a.astype(np.uint8), sb)  # a precomputed side is accepted
    assert set(gap) == set(IMAGE_STATS)
    assert gap["brightness"]["diff"] == pytest.approx(25.0)
    assert gap["brightness"]["wasserstein"] == pytest.approx(25.0)
    assert gap["contrast"]["wasserstein"] == pytest.approx(0.0, abs=1e-9)
    json.dumps(gap)
    json.dumps(sa["summary"])
