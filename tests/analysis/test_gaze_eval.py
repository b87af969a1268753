"""Gaze evaluation on hand-made predictions whose errors are known exactly."""

import json
import math

import numpy as np
import pytest

from analysis.gaze_eval import angular_errors_deg, evaluate_gaze, mean_ci95, worst_slices

R = math.radians


def test_errors_along_one_axis_are_the_angle_difference():
    true = np.array([[0.0, 0.0], [R(10), 0.0], [0.0, R(-20)], [R(5), R(5)]])
    pred = true + np.array([[R(3), 0.0], [R(-4), 0.0], [0.0, R(7)], [0.0, 0.0]])
    assert angular_errors_deg(pred, true) == pytest.approx([3.0, 4.0, 7.0, 0.0], abs=1e-9)


def test_agrees_with_the_training_metric():
    torch = pytest.importorskip("torch")
    from models.gaze_loss import angular_error_deg

    rng = np.random.default_rng(0)
    true = rng.uniform(-0.6, 0.6, size=(50, 2))
    pred = true + rng.normal(0, 0.1, size=(50, 2))
    ref = angular_error_deg(torch.tensor(pred), torch.tensor(true), reduction="none").numpy()
    assert angular_errors_deg(pred, true) == pytest.approx(ref, abs=1e-9)


def test_summary_slices_and_intervals_on_hand_made_predictions():
    # true pitch: 2 in [0, 10), 3 in [10, 20), 1 in [-10, 0); yaw all in [0, 10)
    true_deg = np.array([[2, 1], [8, 1], [12, 1], [15, 1], [19, 1], [-5, 1]], dtype=float)
    pitch_err = np.array([1, 3, 2, 4, 6, 10], dtype=float)  # pred errs only in pitch
    true = np.radians(true_deg)
    pred = np.radians(true_deg + np.stack([pitch_err, np.zeros(6)], 1))
    res = evaluate_gaze(pred, true, slice_deg=10.0)

    assert res["n"] == 6
    assert res["mean_angular_error_deg"] == pytest.approx(26 / 6)
    assert res["median_angular_error_deg"] == pytest.approx(3.5)
    assert res["p90"] == pytest.approx(np.percentile(pitch_err, 90))
    by = {(s["axis"], s["lo_deg"]): s for s in res["slices"]}
    assert set(by) == {("pitch", -10.0), ("pitch", 0.0), ("pitch", 10.0), ("yaw", 0.0)}  # empty skipped
    assert by[("pitch", 0.0)]["n"] == 2 and by[("pitch", 0.0)]["mean_error_deg"] == pytest.approx(2.0)
    assert by[("pitch", 10.0)]["hi_deg"] == 20.0
    assert by[("pitch", 10.0)]["n"] == 3 and by[("pitch", 10.0)]["mean_error_deg"] == pytest.approx(4.0)
    assert by[("pitch", -10.0)]["ci95"] is None  # one sample: no interval
    assert by[("yaw", 0.0)]["n"] == 6
    for s in res["slices"]:
        if s["ci95"] is not None:
            lo, hi = s["ci95"]
            assert lo <= s["mean_error_deg"] <= hi and lo < hi
    # t-interval by hand for the [10, 20) slice: errors 2, 4, 6 -> mean 4, s = 2, t(0.975, 2)
    half = 4.302652729911275 * 2.0 / math.sqrt(3)
    assert by[("pitch", 10.0)]["ci95"] == pytest.approx([max(4 - half, 0.0), 4 + half])
    assert json.loads(json.dumps(res)) == res


def test_slice_edges_are_half_open():
    true = np.radians([[10.0, -10.0], [-10.0, 0.0], [0.0, 9.999]])
    res = evaluate_gaze(true, true, slice_deg=10.0)
    pitch = sorted((s["lo_deg"], s["n"]) for s in res["slices"] if s["axis"] == "pitch")
    yaw = sorted((s["lo_deg"], s["n"]) for s in res["slices"] if s["axis"] == "yaw")
    assert pitch == [(-10.0, 1), (0.0, 1), (10.0, 1)]
    assert yaw == [(-10.0, 1), (0.0, 2)]
    assert res["mean_angular_error_deg"] == pytest.approx(0.0, abs=1e-6)


def test_worst_slices_ranks_by_mean_and_respects_min_n():
    true_deg = np.array([[2, 1], [8, 1], [12, 1], [15, 1], [19, 1], [-5, 1]], dtype=float)
    err = np.array([1, 3, 2, 4, 6, 10], dtype=float)
    res = evaluate_gaze(np.radians(true_deg + np.stack([err, np.zeros(6)], 1)), np.radians(true_deg))
    top = worst_slices(res, k=2, min_n=2)
    # yaw [0, 10) holds all six (mean 26/6), pitch [10, 20) three (mean 4)
    assert [(s["axis"], s["lo_deg"]) for s in top] == [("yaw", 0.0), ("pitch", 10.0)]
    assert top[0]["mean_error_deg"] >= top[1]["mean_error_deg"]
    assert worst_slices(res, k=1, min_n=1)[0]["lo_deg"] == -10.0  # the single 10-degree miss
    assert worst_slices(res, k=5, min_n=100) == []


def test_mean_ci95_and_input_checks():
    assert mean_ci95(np.array([1.0])) is None
    lo, hi = mean_ci95(np.array([1.0, 1.0, 1.0]))
    assert lo == hi == 1.0
    with pytest.raises(ValueError):
        evaluate_gaze(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        evaluate_gaze(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        evaluate_gaze(np.full((2, 2), np.nan), np.zeros((2, 2)))


def test_bias_spread_and_per_subject_errors_by_hand():
    true = np.radians([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [0.0, -10.0]])
    pred = true + np.radians([[2.0, 0.0], [2.0, 0.0], [4.0, 0.0], [4.0, 0.0]])
    res = evaluate_gaze(pred, true, groups=["a", "a", "b", "b"])
    assert res["bias_deg"]["pitch"] == pytest.approx(3.0)  # mean of 2, 2, 4, 4
    assert res["bias_deg"]["yaw"] == pytest.approx(0.0, abs=1e-12)
    assert res["spread_deg"]["pitch"] == pytest.approx(1.0)  # population std of 2, 2, 4, 4
    by = {s["subject"]: s for s in res["subjects"]}
    # a pure pitch offset of d degrees is an angular error of d degrees at these angles
    assert by["a"]["mean_error_deg"] == pytest.approx(2.0, rel=1e-3)
    assert by["b"]["mean_error_deg"] == pytest.approx(4.0, rel=1e-2)
    assert res["n_subjects"] == 2 and res["subject_mean_deg"] == pytest.approx(3.0, rel=1e-2)
    lo, hi = res["subject_ci95"]  # t(0.975, 1) = 12.706, s = sqrt(2), n = 2: half-width 12.706
    assert hi - res["subject_mean_deg"] == pytest.approx(12.706, rel=1e-3)


def test_gain_is_the_slope_of_the_answer_on_the_truth():
    """A model that answers 0.4 x the true pitch (+ an offset) and the yaw in full has
    pitch gain 0.4 and yaw gain 1; a constant answer has gain 0; no variation: None."""
    rng = np.random.default_rng(0)
    true = np.radians(np.c_[rng.uniform(-10, 10, 200), rng.uniform(-15, 15, 200)])
    pred = np.c_[0.4 * true[:, 0] + np.radians(3.0), true[:, 1]]
    gain = evaluate_gaze(pred, true)["gain"]
    assert gain["pitch"] == pytest.approx(0.4, abs=1e-3)  # small-angle: deg are near-linear
    assert gain["yaw"] == pytest.approx(1.0, abs=1e-9)
    assert evaluate_gaze(np.zeros_like(true), true)["gain"]["pitch"] == pytest.approx(0.0)
    flat = np.c_[np.zeros(200), true[:, 1]]
    assert evaluate_gaze(pred, flat)["gain"]["pitch"] is None


def test_recalibration_bound_removes_gain_and_offset_but_not_noise():
    """An answer that is 0.4 x the truth + 3 deg has an exact affine inverse: the bound is 0.
    Noise that no scale or offset explains stays in the bound."""
    rng = np.random.default_rng(1)
    true = np.radians(np.c_[rng.uniform(-10, 10, 300), rng.uniform(-15, 15, 300)])
    shrunk = np.c_[0.4 * true[:, 0] + np.radians(3.0), 0.7 * true[:, 1] - np.radians(1.0)]
    res = evaluate_gaze(shrunk, true)
    assert res["mean_angular_error_deg"] > 2.0
    assert res["recalibrated_deg"] == pytest.approx(0.0, abs=0.02)  # deg vs rad: near-linear here
    noisy = true + np.radians(rng.normal(0.0, 3.0, true.shape))
    res = evaluate_gaze(noisy, true)
    # the least-squares map shrinks noisy answers a little, never below the noise's share
    assert 0.8 * res["mean_angular_error_deg"] < res["recalibrated_deg"] <= res["mean_angular_error_deg"]


def test_subject_offsets_removed_is_the_error_left_after_each_persons_mean():
    """Two people with their own constant pitch offsets (2 and 4 deg): removing each
    person's mean error leaves nothing; a per-person spread stays."""
    true = np.radians([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [0.0, -10.0]])
    pred = true + np.radians([[2.0, 0.0], [2.0, 0.0], [4.0, 0.0], [4.0, 0.0]])
    res = evaluate_gaze(pred, true, groups=["a", "a", "b", "b"])
    assert res["subject_offsets_removed_deg"] == pytest.approx(0.0, abs=1e-6)
    # one gain and offset cannot fit both people: pitch answers 2, 2, 14, 4 for 0, 0, 10, 0
    # fit as t = (85/99) p - 20/9, residuals 0.505, 0.505, 0.202, 1.212 deg (mean 0.606)
    assert res["recalibrated_deg"] == pytest.approx(0.606, abs=0.002)
    spread = true + np.radians([[1.0, 0.0], [-1.0, 0.0], [4.0, 0.0], [4.0, 0.0]])
    res = evaluate_gaze(spread, true, groups=["a", "a", "b", "b"])
    assert res["subject_offsets_removed_deg"] == pytest.approx(0.5, abs=0.01)  # (1 + 1 + 0 + 0) / 4
    assert "subject_offsets_removed_deg" not in evaluate_gaze(spread, true)


def test_slices_by_a_discrete_variable_keep_each_value():
    true = np.zeros((6, 2))
    pred = np.radians(np.array([[1.0, 0], [1.0, 0], [3.0, 0], [3.0, 0], [5.0, 0], [5.0, 0]]))
    res = evaluate_gaze(pred, true, slice_by={"head_pose_deg": [-15, -15, 0, 0, 15, 15]})
    head = [s for s in res["slices"] if s["axis"] == "head_pose_deg"]
    assert [(s["lo_deg"], s["n"]) for s in head] == [(-15.0, 2), (0.0, 2), (15.0, 2)]
    assert [round(s["mean_error_deg"], 6) for s in head] == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="slice_by"):
        evaluate_gaze(pred, true, slice_by={"x": [1, 2]})
