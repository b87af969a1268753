"""The mean patch per head pose (models.pose_mean_patch): each synthetic eye takes the
real-minus-synthetic mean difference of the real pose nearest its head yaw, the pairing
of the two yaw conventions is read off the images, and what it cannot fit is refused."""

import numpy as np
import pytest

from models.pose_mean_patch import MIN_PER_POSE, fit_pose_mean_patch

POSES = np.array([-30.0, 0.0, 30.0])


def _sets(real_sign: int, n: int = 90, seed: int = 0):
    """Synthetic eyes at head yaws near -30, 0, +30 (a turned head: a bright top row at
    -30, a dark bottom row at +30) and real eyes in a frame where real pose P is the
    synthetic yaw ``real_sign * P``: the same turned-head rows, 10 grey levels brighter
    everywhere (what every pose shares), and a bright left column at the pose of yaw -30
    only (what that pose adds)."""
    rng = np.random.default_rng(seed)
    yaw = rng.choice(POSES, n) + rng.uniform(-6, 6, n)
    synthetic = 100 + rng.normal(0, 3, (n, 6, 10))
    synthetic[yaw < -15, 0, :] += 40
    synthetic[yaw > 15, -1, :] -= 40
    real_pose = rng.choice(POSES, n)
    as_yaw = real_sign * real_pose
    real = 110 + rng.normal(0, 3, (n, 6, 10))
    real[as_yaw == -30, 0, :] += 40
    real[as_yaw == -30, :, 0] += 20
    real[as_yaw == 30, -1, :] -= 40
    return synthetic.astype(np.uint8), yaw, real.astype(np.uint8), real_pose


@pytest.mark.parametrize("real_sign", [1, -1])
def test_each_pose_gets_its_own_difference_and_the_pairing_is_found(real_sign):
    synthetic, yaw, real, real_pose = _sets(real_sign)
    patch = fit_pose_mean_patch(synthetic, yaw, real, real_pose, strength=1.0)
    assert patch.sign == real_sign and patch.poses_deg.tolist() == POSES.tolist()
    turned = 0 if real_sign == 1 else 2  # the real pose that is the synthetic yaw -30
    for k in range(3):  # the shared +10, and the turned pose's own left column on top
        assert patch.deltas[k, :, 1:].mean() == pytest.approx(10, abs=1.5)
        assert patch.deltas[k, :, 0].mean() == pytest.approx(30 if k == turned else 10, abs=2)
    refined = patch.apply(synthetic, yaw).astype(float) - synthetic
    at = patch.pose_index(yaw)
    assert set(at[yaw < -15]) == {turned}
    assert refined[yaw < -15][:, :, 0].mean() == pytest.approx(30, abs=2)
    assert refined[yaw > -15][:, :, 0].mean() == pytest.approx(10, abs=2)


def test_strength_scales_the_move_and_zero_is_the_identity():
    synthetic, yaw, real, real_pose = _sets(1)
    assert np.array_equal(fit_pose_mean_patch(synthetic, yaw, real, real_pose, 0.0).apply(synthetic, yaw),
                          synthetic)
    half = fit_pose_mean_patch(synthetic, yaw, real, real_pose, 0.5)
    moved = half.apply(synthetic, yaw).astype(float) - synthetic
    assert moved[yaw < -15][:, :, 0].mean() == pytest.approx(15, abs=1.5)
    assert moved[yaw > -15].mean() == pytest.approx(5, abs=1)


def test_what_cannot_be_fitted_is_refused_naming_the_problem():
    synthetic, yaw, real, real_pose = _sets(1)
    with pytest.raises(ValueError, match="need at least"):
        fit_pose_mean_patch(synthetic, yaw, real[:MIN_PER_POSE], real_pose[:MIN_PER_POSE])
    with pytest.raises(ValueError, match="distinct values"):
        fit_pose_mean_patch(synthetic, yaw, real, np.linspace(-30, 30, len(real)))
    with pytest.raises(ValueError, match="missing"):
        fit_pose_mean_patch(synthetic, yaw, real, np.where(real_pose == 0, np.nan, real_pose))
    with pytest.raises(ValueError, match="synthetic eyes are"):
        fit_pose_mean_patch(synthetic[:, :, :8], yaw, real, real_pose)
    # synthetic eyes at level heads only: no pairing covers the turned poses
    with pytest.raises(ValueError, match="head yaw read as"):
        fit_pose_mean_patch(synthetic, np.zeros(len(yaw)), real, real_pose)


def test_interpolation_blends_the_two_poses_either_side_and_clamps_beyond_them():
    synthetic, yaw, real, real_pose = _sets(1)
    nearest = fit_pose_mean_patch(synthetic, yaw, real, real_pose)
    blended = fit_pose_mean_patch(synthetic, yaw, real, real_pose, interpolate=True)
    assert np.array_equal(blended.deltas, nearest.deltas)  # the fit itself is the same
    w = blended.pose_weights(np.array([-45.0, -30.0, -20.0, 0.0, 7.5, 30.0, 50.0]))
    assert np.allclose(w.sum(1), 1.0)
    expected = [[1, 0, 0], [1, 0, 0], [2 / 3, 1 / 3, 0], [0, 1, 0], [0, 0.75, 0.25],
                [0, 0, 1], [0, 0, 1]]
    assert np.allclose(w, expected, atol=1e-6)
    # an eye a third of the way from -30 to 0 takes a third of pose -30's left column
    probe = np.full((1, 6, 10), 100, np.uint8)
    left = blended.apply(probe, np.array([-20.0])).astype(float)[0, :, 0] - 100
    assert left.mean() == pytest.approx(10 + 20 * 2 / 3, abs=2)
    # mirrored conventions: the weights follow sign * yaw
    flipped = fit_pose_mean_patch(*_sets(-1), interpolate=True)
    assert flipped.sign == -1
    assert np.allclose(flipped.pose_weights(np.array([-20.0])), [[0, 1 / 3, 2 / 3]], atol=1e-6)
