"""``synthloop loop --mirror-eye``: the loop reads one eye side mirrored onto the other's
everywhere (the split, the analysis, the refinement), scores what the unmirrored eyes
would score, and its models record the side as `synthloop train --mirror-eye` does."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.gaze_eval import angular_errors_deg
from synthloop.errors import DataFormatError, UsageError
from synthloop.loop.config import LoopConfig
from synthloop.loop.real import load_real
from tests.test_gaze_mirror_eye import _with_sides
from tests.test_loop_real import _eyes


def test_an_unset_side_keeps_a_loop_s_identity_and_a_set_one_changes_it():
    plain = LoopConfig(task="gaze", real="/eyes")
    assert "mirror_eye" not in plain.to_dict()
    assert LoopConfig(task="gaze", real="/eyes", mirror_eye="L").to_dict()["mirror_eye"] == "L"


@pytest.mark.parametrize("kwargs, says", [
    ({"task": "gaze", "mirror_eye": "left"}, "mirror_eye must be L or R, got 'left'"),
    ({"task": "landmarks", "mirror_eye": "L"}, "applies to eye patches, not to the landmarks loop"),
])
def test_a_side_that_cannot_apply_is_refused(kwargs, says):
    with pytest.raises(UsageError, match=says):
        LoopConfig(real="/data", **kwargs)


def test_the_named_side_is_mirrored_with_its_yaw_and_the_split_and_errors_do_not_move(tmp_path):
    folder = _with_sides(_eyes(tmp_path / "eyes", n=24, subjects=4), sides="LLR")
    plain = load_real(LoopConfig(task="gaze", real=str(folder)))
    mirrored = load_real(LoopConfig(task="gaze", real=str(folder), mirror_eye="L"))
    left = np.array([s == "L" for s in plain.data.source.sides])
    assert left.sum() == 16
    np.testing.assert_array_equal(mirrored.images[left], plain.images[left][:, :, ::-1])
    np.testing.assert_array_equal(mirrored.images[~left], plain.images[~left])
    py, mpy = plain.labels["pitchyaw"], mirrored.labels["pitchyaw"]
    np.testing.assert_array_equal(mpy[left, 1], -py[left, 1])
    np.testing.assert_array_equal(mpy[:, 0], py[:, 0])
    assert set(mirrored.data.source.sides) == {"R"}
    # the same people on each side, and another identity: the images differ
    np.testing.assert_array_equal(mirrored.analysis, plain.analysis)
    np.testing.assert_array_equal(mirrored.holdout, plain.holdout)
    assert mirrored.fingerprint != plain.fingerprint
    # an answer mirrored with its eye scores what the unmirrored answer scored
    pred = np.random.default_rng(1).uniform(-0.3, 0.3, py.shape)
    mpred = pred.copy()
    mpred[left, 1] *= -1
    np.testing.assert_allclose(angular_errors_deg(mpred, mpy), angular_errors_deg(pred, py))


def test_a_folder_that_cannot_name_its_sides_is_refused_naming_it(tmp_path):
    folder = _eyes(tmp_path / "bare", n=24, subjects=4)
    with pytest.raises(DataFormatError, match="needs an 'eye' column") as e:
        load_real(LoopConfig(task="gaze", real=str(folder), mirror_eye="R"))
    assert e.value.path == folder


def test_the_refiner_sees_the_real_eyes_mirrored(tmp_path):
    from synthloop.refine import RefineRequest, _real_images
    from synthloop.taskspec import get_task

    folder = _with_sides(_eyes(tmp_path / "eyes", n=12, subjects=3), sides="LR")
    spec = get_task("gaze")
    plain = _real_images(spec, str(folder), (36, 60), [0, 1, 2])
    mirrored = _real_images(spec, str(folder), (36, 60), [0, 1, 2], "L")
    np.testing.assert_array_equal(mirrored[[0, 2]], plain[[0, 2]][:, :, ::-1])  # the L eyes
    np.testing.assert_array_equal(mirrored[1], plain[1])
    with pytest.raises(UsageError, match="applies to eye patches, not to face"):
        _real_images(get_task("landmarks"), str(folder), (128, 128, 3), None, "L")
    with pytest.raises(UsageError, match="--mirror-eye must be L or R"):
        RefineRequest(batch="b", real="r", out="o", mirror_eye="both")


def test_the_round_s_refine_request_and_training_carry_the_side(tmp_path, monkeypatch):
    from tests.test_loop_refine_method import round_request_on_a_batch

    batch, request = round_request_on_a_batch(tmp_path, monkeypatch)
    cfg = LoopConfig(task="gaze", real="/eyes", refine_method="mean-patch", mirror_eye="R")
    assert request(cfg, 0, str(batch))["mirror_eye"] == "R"
    plain = LoopConfig(task="gaze", real="/eyes", refine_method="mean-patch")
    assert "mirror_eye" not in request(plain, 0, str(batch))
    # the round's training config records the side in the checkpoint's task settings
    import synthloop.gaze.rounds as gaze_rounds
    from synth.shards import BatchReader
    from synthloop.settings import Settings

    monkeypatch.setattr("synth.shards.open_for_training", lambda path: BatchReader(path))
    seen = {}
    monkeypatch.setattr(gaze_rounds, "train_in_round",
                        lambda settings, **kw: seen.setdefault("cfg", kw["train_config"]))
    real = type("Real", (), {"images": np.zeros((4, 36, 60), np.uint8), "analysis": np.arange(4)})
    for c, want in ((cfg, {"mirror_eye": "R"}), (plain, {})):
        seen.clear()
        gaze_rounds.train_round(Settings(home=tmp_path / "home"), c, lid="l", k=0,
                                batch_dir=str(batch), init_from=None, mlflow_run_id=None, real=real)
        assert seen["cfg"].task_kwargs == want
