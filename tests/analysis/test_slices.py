"""Slicing per-sample errors by observed variables, and the domain gap per slice."""

import json
import math

import numpy as np
import pytest

from analysis.gaze_eval import evaluate_gaze, mean_ci95
from analysis.slices import (
    domain_gap_by_slice,
    observed_variables,
    slice_edges,
    slice_errors,
    worst,
)


def test_hand_computed_slices_with_explicit_edges():
    errors = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]
    v = [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 7.0]  # 7.0 is outside the edges: left out
    out = slice_errors(errors, {"v": v}, edges={"v": [0, 1, 2]})
    assert [(s["lo"], s["hi"], s["n"]) for s in out] == [(0.0, 1.0, 2), (1.0, 2.0, 4)]
    assert out[0]["mean_error"] == 1.5  # [0, 1): errors 1, 2
    assert out[1]["mean_error"] == 4.5  # [1, 2] (last edge closed): errors 3, 4, 5, 6
    # t-interval: 1.5 -+ t(0.975, 1) * 0.7071 / sqrt(2) = 1.5 -+ 12.706 * 0.5
    #   -> [0 (clipped), 7.853]
    assert out[0]["ci95"] == pytest.approx([0.0, 1.5 + 12.7062047 * 0.5], rel=1e-6)
    assert out[1]["ci95"] == mean_ci95(np.array([3.0, 4.0, 5.0, 6.0]))
    json.dumps(out)


def test_quantile_edges_make_populated_slices():
    x = np.arange(10.0)
    out = slice_errors(x, {"x": x}, n_bins=2)  # edges 0, 4.5, 9
    assert [(s["n"], s["mean_error"]) for s in out] == [(5, 2.0), (5, 7.0)]
    assert slice_edges(x, 2) == [0.0, 4.5, 9.0]
    # a discrete variable: repeated quantiles merge, every slice keeps samples
    d = np.array([0.0] * 5 + [1.0] * 5)
    sl = slice_errors(np.arange(10.0), {"d": d}, n_bins=4)
    assert [s["n"] for s in sl] == [5, 5]
    # a constant variable: one slice [v, v]
    c = slice_errors([1.0, 3.0], {"c": [2.0, 2.0]})
    assert [(s["lo"], s["hi"], s["n"], s["mean_error"]) for s in c] == [(2.0, 2.0, 2, 2.0)]


def test_non_finite_values_leave_samples_out_where_they_are_missing():
    errors = [1.0, 2.0, np.nan, 4.0]
    out = slice_errors(errors, {"a": [0.0, 0.0, 0.0, 1.0], "b": [np.nan, 0.0, 0.0, 0.0]},
                       edges={"a": [0, 0.5, 1], "b": [0, 1]})
    by = {(s["variable"], s["lo"]): (s["n"], s["mean_error"]) for s in out}
    assert by == {("a", 0.0): (2, 1.5), ("a", 0.5): (1, 4.0), ("b", 0.0): (2, 3.0)}
    assert [s for s in out if s["n"] == 1][0]["ci95"] is None


def test_gaze_bins_are_just_another_observed_variable():
    rng = np.random.default_rng(0)
    true = np.radians(rng.uniform(-35, 35, size=(400, 2)) + 0.01)
    pred = true + np.radians(rng.normal(0, 3, size=true.shape))
    ref = evaluate_gaze(pred, true, slice_deg=10.0)
    from analysis.gaze_eval import angular_errors_deg

    obs = observed_variables(true_pitchyaw=true)
    edges = {k: list(range(-40, 41, 10)) for k in obs}
    ours = slice_errors(angular_errors_deg(pred, true), obs, edges=edges)
    for axis in ("pitch", "yaw"):
        a = [(s["lo_deg"], s["n"], s["mean_error_deg"]) for s in ref["slices"] if s["axis"] == axis]
        b = [(s["lo"], s["n"], s["mean_error"])
             for s in ours if s["variable"] == f"gaze_{axis}_deg"]
        assert [x[:2] for x in a] == [x[:2] for x in b]
        np.testing.assert_allclose([x[2] for x in a], [x[2] for x in b])


def test_worst_filters_small_slices_and_orders_worst_first():
    sl = [
        {"variable": "a", "lo": 0.0, "hi": 1.0, "n": 50, "mean_error": 3.0, "ci95": None},
        {"variable": "a", "lo": 1.0, "hi": 2.0, "n": 5, "mean_error": 99.0, "ci95": None},
        {"variable": "b", "lo": 0.0, "hi": 1.0, "n": 30, "mean_error": 7.0, "ci95": None},
        {"variable": "a", "lo": 2.0, "hi": 3.0, "n": 30, "mean_error": 7.0, "ci95": None},
    ]
    w = worst(sl, k=2, min_n=20)
    assert [(s["variable"], s["lo"]) for s in w] == [("a", 2.0), ("b", 0.0)]
    w[0]["n"] = -1
    assert sl[3]["n"] == 30  # copies
    with pytest.raises(ValueError):
        worst(sl, k=1, min_n=0)


def test_observed_variables_collects_what_is_given():
    imgs = np.random.default_rng(1).integers(0, 256, (6, 36, 60), dtype=np.uint8)
    obs = observed_variables(images=imgs, true_pitchyaw=np.zeros((6, 2)),
                             head_pose=np.radians(np.full((6, 3), 10.0)), face_size=np.arange(6),
                             stats=["brightness", "sharpness"])
    assert list(obs) == ["gaze_pitch_deg", "gaze_yaw_deg", "head_pitch_deg", "head_yaw_deg",
                         "head_roll_deg", "face_size", "brightness", "sharpness"]
    assert obs["head_yaw_deg"] == pytest.approx(np.full(6, 10.0))
    with pytest.raises(ValueError):
        observed_variables(true_pitchyaw=np.zeros((6, 2)), face_size=np.arange(5))
    with pytest.raises(ValueError):
        slice_errors(np.zeros(3), {"x": np.zeros(4)})


def test_domain_gap_by_slice_finds_the_uncovered_slice():
    rng = np.random.default_rng(2)
    syn = rng.normal(size=(300, 3))
    v = rng.random(400)
    real = rng.normal(size=(400, 3))
    real[v >= 0.5] += 2.0  # the upper half of v is far from anything synthetic
    out = domain_gap_by_slice(syn, real, {"v": v}, edges={"v": [0.0, 0.5, 1.0]})
    assert out[0]["variable"] == "all" and out[0]["n"] == 400
    lo, hi = out[1], out[2]
    assert (lo["lo"], hi["lo"]) == (0.0, 0.5)
    assert hi["mmd"] > 0.1 > abs(lo["mmd"]) * 5
    assert math.isfinite(out[0]["mmd"]) and lo["mmd"] < out[0]["mmd"] < hi["mmd"]
    small = domain_gap_by_slice(syn, real, {"v": v}, edges={"v": [0.0, 0.02, 1.0]}, min_n=20)
    assert small[1]["n"] < 20 and small[1]["mmd"] is None
    json.dumps(out)
    assert domain_gap_by_slice(syn, real, {"v": v}) == domain_gap_by_slice(syn, real, {"v": v})


def test_slice_error_bars_plot(tmp_path):
    from analysis.plots import slice_error_bars

    x = np.arange(20.0)
    fig = slice_error_bars(slice_errors(x, {"x": x, "y": -x}), path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    assert len([a for a in fig.axes if a.has_data()]) == 2
