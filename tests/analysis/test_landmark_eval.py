"""Tests for landmark evaluation (analysis.landmark_eval): NME, yaw estimate, yaw slices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from analysis.landmark_eval import MEAN_FACE_3D, estimate_yaw_deg, evaluate_landmarks, nme

SHARED = Path(
    os.environ.get("SYNTHLOOP_SHARED", Path(__file__).resolve().parents[2].parent / "shared")
)
LFPW = SHARED / "data" / "real" / "lfpw-train"


def _hand_face() -> np.ndarray:
    """All points at (10, 10) except the eyes:
    left eye  36 = (0, 0), 39 = (6, 0), 37, 38 = (3, -1), 40, 41 = (3, 1) -> centre (3, 0)
    right eye 42 = (14, 0), 45 = (20, 0), 43, 44 = (17, -1), 46, 47 = (17, 1) -> centre (17, 0)
    so inter-ocular = |p36 - p45| = 20 and inter-pupil = |(3, 0) - (17, 0)| = 14."""
    t = np.full((68, 2), 10.0)
    t[36], t[39], t[[37, 38]], t[[40, 41]] = (0, 0), (6, 0), (3, -1), (3, 1)
    t[42], t[45], t[[43, 44]], t[[46, 47]] = (14, 0), (20, 0), (17, -1), (17, 1)
    return t


def test_nme_hand_computed():
    true = _hand_face()
    pred = true.copy()
    pred[0] += (3, 4)  # error 5
    pred[1] += (0, 6)  # error 6
    pred[30] += (-8, 6)  # error 10
    # mean error = (5 + 6 + 10) / 68 = 21 / 68
    # inter-ocular: 100 * 21 / 68 / 20 = 105 / 68 = 1.5441...
    # inter-pupil:  100 * 21 / 68 / 14 = 150 / 68 = 2.2058...
    assert nme(pred, true, "inter_ocular") == pytest.approx([105 / 68])
    assert nme(pred, true, "inter_pupil") == pytest.approx([150 / 68])
    assert nme(pred, true).shape == (1,)  # a single (68, 2) face is a batch of one


def test_nme_batch_and_missing_true_points():
    true = np.stack([_hand_face(), _hand_face()])
    pred = true + (3.0, 0.0)  # every point 3 px off: 100 * 3 / 20 = 15
    assert nme(pred, true).tolist() == pytest.approx([15.0, 15.0])
    true[1, 0] = np.nan  # not labelled: left out of the mean, not counted as an error
    pred[1, 0] += 1000
    assert nme(pred, true).tolist() == pytest.approx([15.0, 15.0])


def test_nme_errors():
    t = _hand_face()
    with pytest.raises(ValueError, match="norm must be one of"):
        nme(t, t, "bbox")
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        nme(t[:67], t[:67])
    with pytest.raises(ValueError, match="shapes differ"):
        nme(np.stack([t, t]), t)
    bad = t.copy()
    bad[45] = bad[36]
    with pytest.raises(ValueError, match="missing or zero for sample"):
        nme(t, bad)
    with pytest.raises(ValueError, match="non-finite"):
        nme(np.full((68, 2), np.nan), t)


def _rot(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """The renderers' head pose (synth.eye_renderer.head_rotation): R = Ry(yaw) Rx(-pitch)
    Rz(roll) in the template frame (x right, y down, z away from the camera); positive yaw
    turns the face toward the image's left (the nose tip, z < 0, moves to -x)."""
    cy, sy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    cp, sp = np.cos(np.radians(-pitch)), np.sin(np.radians(-pitch))
    cr, sr = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def _project(shape3d: np.ndarray, yaw: float, pitch=0.0, roll=0.0, dist_cm=None) -> np.ndarray:
    """Image points (pixels) of a rotated 3D face; orthographic unless dist_cm is given."""
    q = shape3d @ _rot(yaw, pitch, roll).T
    if dist_cm is None:
        return 20.0 * q[:, :2] + (200, 150)
    q = q + (0, 0, dist_cm)
    return 1000.0 * q[:, :2] / q[:, 2:] + (320, 240)


def test_yaw_of_the_rotated_template_is_exact():
    yaws = [-75, -40, -10, 0, 10, 40, 75]
    pts = np.stack([_project(MEAN_FACE_3D, y, pitch=12, roll=-8) for y in yaws])
    np.testing.assert_allclose(estimate_yaw_deg(pts), yaws, atol=1e-6)


def test_yaw_sign_convention():
    pts = _project(MEAN_FACE_3D, 30.0)
    nose, eyes_mid = pts[30, 0], (pts[36, 0] + pts[45, 0]) / 2
    assert nose < eyes_mid  # positive yaw: the nose tip moved toward the image's left
    assert estimate_yaw_deg(pts)[0] > 0
    assert estimate_yaw_deg(_project(MEAN_FACE_3D, -30.0))[0] < 0


def test_yaw_rough_magnitude_on_other_faces_under_perspective():
    """Faces that are not the template (3 mm per-point shape noise), pitch/roll, perspective
    at 50 cm and 1 px annotation noise: the estimate stays within a few degrees."""
    rng = np.random.default_rng(0)
    yaws = rng.uniform(-70, 70, 60)
    pts = np.stack([
        _project(MEAN_FACE_3D + rng.normal(0, 0.3, (68, 3)), y,
                 rng.uniform(-15, 15), rng.uniform(-15, 15), dist_cm=50)
        + rng.normal(0, 1.0, (68, 2))
        for y in yaws
    ])
    err = np.abs(estimate_yaw_deg(pts) - yaws)
    assert err.mean() < 4.0 and err.max() < 12.0


def test_yaw_is_nan_without_enough_points():
    pts = _project(MEAN_FACE_3D, 20.0)
    pts[20:] = np.nan
    assert np.isnan(estimate_yaw_deg(pts)[0])
    pts = _project(MEAN_FACE_3D, 20.0)
    pts[[0, 5, 40, 60]] = np.nan  # a few missing points do not matter
    assert estimate_yaw_deg(pts)[0] == pytest.approx(20.0)


def test_evaluate_landmarks_summary_and_slices():
    rng = np.random.default_rng(1)
    yaws = np.array([-60, -30, -5, 0, 5, 30, 30, 60, 80, 95.0])
    true = np.stack([_project(MEAN_FACE_3D, y) for y in yaws])
    pred = true + rng.normal(0, 1.0, true.shape)
    pred[2] += 40.0  # one failure
    res = evaluate_landmarks(pred, true)
    json.dumps(res)  # plain Python throughout
    io, ip = nme(pred, true, "inter_ocular"), nme(pred, true, "inter_pupil")
    assert res["n"] == 10
    assert res["nme_inter_ocular"] == pytest.approx(io.mean())
    assert res["nme_inter_pupil"] == pytest.approx(ip.mean())
    assert res["median_nme_inter_ocular"] == pytest.approx(np.median(io))
    assert res["median_nme_inter_pupil"] == pytest.approx(np.median(ip))
    assert res["failure_rate_010"] == pytest.approx(0.1)
    lo, hi = res["ci95_inter_ocular"]
    assert lo <= res["nme_inter_ocular"] <= hi and len(res["ci95_inter_pupil"]) == 2
    got = [(s["variable"], s["lo"], s["hi"], s["n"]) for s in res["slices"]]
    # -60 | -30 | -5, 0, 5 | 30, 30 | 60, 80 (the last slice includes 90; 95 is in none)
    assert got == [("yaw_deg", -90.0, -45.0, 1), ("yaw_deg", -45.0, -15.0, 1),
                   ("yaw_deg", -15.0, 15.0, 3), ("yaw_deg", 15.0, 45.0, 2),
                   ("yaw_deg", 45.0, 90.0, 2)]
    mid = res["slices"][2]
    assert mid["nme_inter_ocular"] == pytest.approx(io[2:5].mean())
    assert mid["nme_inter_pupil"] == pytest.approx(ip[2:5].mean())
    assert mid["failure_rate_010"] == pytest.approx(1 / 3)


def test_evaluate_landmarks_leaves_out_empty_slices_and_checks_edges():
    true = np.stack([_project(MEAN_FACE_3D, 0.0)] * 3)
    res = evaluate_landmarks(true + 0.5, true, yaw_edges_deg=(-30, -10, 10, 30))
    assert [s["lo"] for s in res["slices"]] == [-10.0]
    assert res["failure_rate_010"] == 0.0
    with pytest.raises(ValueError, match="increasing"):
        evaluate_landmarks(true, true, yaw_edges_deg=(10, 0))
    with pytest.raises(ValueError, match="no samples"):
        evaluate_landmarks(np.zeros((0, 68, 2)), np.zeros((0, 68, 2)))


@pytest.mark.skipif(not LFPW.is_dir(), reason="no shared data (../shared/data/real)")
def test_lfpw_faces_yield_a_spread_of_yaws():
    from realdata.landmarks import read_landmark_folder

    yaw = estimate_yaw_deg(read_landmark_folder(LFPW, with_images=False).points)
    assert not np.isnan(yaw).any()
    assert np.abs(np.median(yaw)) < 5  # mostly frontal, no sign bias
    assert yaw.min() < -25 and yaw.max() > 25  # both ways
    assert np.abs(yaw).max() < 90
