"""The feedback loop for facial landmarks on a tiny budget: a "real" folder the test
writes (faces of the built-in procedural head pasted into larger JPEGs, with .pts files),
the default landmark model at width 8, two closed rounds. The rounds finish with a finite
held-out NME, the analysis re-weights ``head_yaw`` (from the yaw estimated on the real
faces' true points), and the catalog links distribution -> batch -> run -> analysis."""

from __future__ import annotations

import math

import numpy as np
import pytest

# slow: flow runs against a Prefect test server (its start alone is ~25 s on 2 cores)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]

OFFSET = np.array([20.0, 30.0])  # where the 128-px face sits in the 200x170 "photo"
# 60 faces, 36 analysed: the policy re-weights a factor from >= 30 real samples (min_count)
N_REAL = 60
TINY = dict(rounds=2, n_per_round=64, steps_per_round=2, patience=None, transfer_steps=10,
            holdout_frac=0.4, model_kwargs={"width": 8, "depths": (1, 1, 1, 1), "head_channels": 8})


@pytest.fixture()
def builtin_faces(monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_FACE_MODEL", "builtin")


@pytest.fixture(scope="module")
def real_faces(tmp_path_factory):
    from PIL import Image

    from realdata.landmarks import write_pts
    from synth.face_distribution import default_face_distribution
    from synth.face_fallback import fallback_face_model
    from synth.face_generator import FaceGenerator

    images, _, labels = FaceGenerator(default_face_distribution(),
                                      model=fallback_face_model()).render_all(N_REAL, seed=7)
    real = tmp_path_factory.mktemp("faces") / "real"
    real.mkdir()
    for i in range(len(images)):
        photo = np.full((170, 200, 3), 90, np.uint8)
        photo[30:158, 20:148] = images[i]
        Image.fromarray(photo).save(real / f"face_{i:03d}.jpg", quality=92)
        write_pts(real / f"face_{i:03d}.pts", labels["points68"][i] + OFFSET)
    return real


@pytest.mark.slow  # a whole two-round landmarks loop
def test_landmarks_closed_loop_reweights_head_yaw(prefect_harness, builtin_faces, real_faces, assert_lineage,
                                                  assert_moves_toward_error_mass):
    from catalog import Catalog
    from flows.feedback_loop import LoopParams, feedback_loop
    from synth.face_distribution import default_face_distribution
    from synthloop.settings import get_settings

    state = feedback_loop(LoopParams(task="landmarks", real=str(real_faces), seed=0, **TINY),
                          return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    rounds = res["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert all(math.isfinite(r["real_error"]) and r["real_error"] > 0 for r in rounds)
    dist0 = default_face_distribution()
    assert rounds[0]["distribution_id"] == dist0.id
    assert rounds[1]["distribution_id"] != dist0.id

    cat = Catalog(get_settings().catalog)
    from synthloop.lineage import distribution_from_catalog

    d1 = distribution_from_catalog(cat, rounds[1]["distribution_id"])
    assert d1.parent == dist0.id and d1.reason
    # head_yaw moved toward where round 0's errors are (yaw estimated from the true points)
    from analysis.landmark_eval import estimate_yaw_deg
    from synthloop.loop.real import load_real
    from synthloop.loop.rounds import ERRORS_FILE, round_dir

    real = load_real(LoopParams(task="landmarks", real=str(real_faces), seed=0, **TINY).config())
    errors = np.load(round_dir(get_settings(), res["loop_id"], 0) / ERRORS_FILE)["errors"]
    yaw = np.radians(estimate_yaw_deg(real.labels["points"][real.analysis]))
    assert_moves_toward_error_mass(dist0, d1, errors[real.analysis], {"head_yaw": yaw})
    analysis = cat.get_analysis(f"{res['loop_id']}-r0-analysis")
    assert "head_yaw" in analysis["metrics"]["update"]["factors"]
    variables = {s["variable"] for s in analysis["slices"]["slices"]}
    assert {"head_yaw_deg", "inter_ocular_px", "sharpness"} <= variables
    assert_lineage(cat, rounds, dist0)


def test_landmarks_loop_needs_real_faces():
    from flows.feedback_loop import LoopParams

    with pytest.raises(ValueError, match="needs labeled real data .*.pts files"):
        LoopParams(task="landmarks").config()


@pytest.mark.slow  # a whole two-round landmarks loop
def test_landmarks_loop_sets_round_1_faces_into_photographs_placed_by_round_0_s_model(
        prefect_harness, builtin_faces, real_faces):
    from catalog import Catalog
    from flows.feedback_loop import LoopParams, feedback_loop
    from synth.shards import BatchReader
    from synthloop.loop.real import load_real
    from synthloop.settings import get_settings

    # round 0's model must find the faces it places the photographs by: more steps than TINY
    params = LoopParams(task="landmarks", real=str(real_faces), seed=0, refine_method="real-context",
                        **{**TINY, "steps_per_round": 60})
    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    cat = Catalog(get_settings().catalog)
    first, second = (BatchReader(cat.get_batch(r["batch_id"])["path"]) for r in res["rounds"])
    assert "parent" not in first.manifest  # round 0: no model yet to place the real points
    assert second.status.status == "accepted"
    refiner = second.manifest["refiner"]
    round0 = cat.get_training_run(f"{res['loop_id']}-r0")["checkpoint"]
    assert refiner["config"] == {"method": "real-context", "landmarker": round0, "shading": 0.0}
    assert refiner["real_n"] == len(load_real(params.config()).analysis)  # never the held-out part
    parent = BatchReader(second.manifest["parent"]["path"])
    points = "landmarks/points68.npy"
    assert (np.load(second.path / points) == np.load(parent.path / points)).all()
    # (a 60-step model misplaces the photographs' points too far for any to fit a face's
    # shape, so the pixels stay: tests/models/test_real_context.py checks the setting in)
