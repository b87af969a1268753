"""The loop's refinement setting: SimGAN with steps, or a mean patch (shared or per head
pose) without."""

from __future__ import annotations

import pytest

from synthloop.errors import UsageError
from synthloop.loop.config import LoopConfig


def test_a_loop_without_refinement_keeps_its_identity():
    plain = LoopConfig(task="gaze", real="/eyes")
    assert not plain.refines and "refine_method" not in plain.to_dict()
    # SimGAN is spelled one way whichever way it was asked for, so its id does not split
    simgan = LoopConfig(task="gaze", real="/eyes", refine_steps=500, refine_method="simgan")
    assert simgan == LoopConfig(task="gaze", real="/eyes", refine_steps=500)
    assert simgan.refines and "refine_method" not in simgan.to_dict()
    patch = LoopConfig(task="gaze", real="/eyes", refine_method="mean-patch")
    assert patch.refines and patch.to_dict()["refine_method"] == "mean-patch"
    assert patch.to_dict() != plain.to_dict()
    from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH

    # the strength in use is part of the id, so a new default cannot pass for an old loop
    assert patch.to_dict()["refine_strength"] == MEAN_PATCH_STRENGTH
    posed = LoopConfig(task="gaze", real="/eyes", refine_method="pose-mean-patch")
    assert posed.to_dict()["refine_strength"] == POSE_MEAN_PATCH_STRENGTH == 1.0
    half = LoopConfig(task="gaze", real="/eyes", refine_method="mean-patch", refine_strength=0.25)
    assert half.to_dict()["refine_strength"] == 0.25 != patch.to_dict()["refine_strength"]


@pytest.mark.parametrize("kwargs, says", [
    ({"refine_method": "cyclegan"}, "refine_method 'cyclegan': choose from simgan, mean-patch, "
     "pose-mean-patch, landmark-patch, real-context"),
    ({"refine_method": "landmark-patch"}, "aligns faces by their 68 points: it refines landmarks "
     "loops, not the gaze loop"),
    ({"refine_method": "real-context"}, "real-context aligns faces"),
    ({"refine_method": "simgan"}, "needs refine_steps"),
    ({"refine_method": "mean-patch", "refine_steps": 100}, "mean-patch trains nothing"),
    ({"refine_method": "pose-mean-patch", "refine_steps": 100}, "pose-mean-patch trains nothing"),
    ({"refine_strength": 0.5}, "set refine_method mean-patch, pose-mean-patch, landmark-patch"),
    ({"refine_method": "mean-patch", "refine_strength": 0.0}, r"must be in \(0, 4\]"),
    ({"refine_method": "pose-mean-patch", "refine_strength": 5.0}, r"must be in \(0, 4\]"),
])
def test_refinement_settings_that_cannot_run_are_refused(kwargs, says):
    with pytest.raises(UsageError, match=says):
        LoopConfig(task="gaze", real="/eyes", **kwargs)


def round_request_on_a_batch(tmp_path, monkeypatch):
    """``(batch folder, the round's refine-request function)`` with the loop's real split
    stubbed: analysis indices [3, 1] of "/eyes"."""
    import tasks.loop as loop_tasks
    from synth.eye_distribution import default_eye_distribution
    from synth.generate import generate_batch

    batch = tmp_path / "b"
    generate_batch(batch, n=8, seed=0, dist=default_eye_distribution())

    class Split:
        path, analysis = "/eyes", [3, 1]

    monkeypatch.setattr(loop_tasks, "load_real", lambda cfg: Split)
    return batch, loop_tasks.round_refine_request.fn


def test_the_round_s_refine_request_asks_for_the_method(tmp_path, monkeypatch):
    batch, request = round_request_on_a_batch(tmp_path, monkeypatch)
    patch = request(LoopConfig(task="gaze", real="/eyes", refine_method="mean-patch"), 0, str(batch))
    assert patch["method"] == "mean-patch" and "steps" not in patch
    assert patch["strength"] == LoopConfig(task="gaze", real="/e", refine_method="mean-patch").refine_strength
    assert patch["real_indices"] == [3, 1] and patch["out"] == f"{batch}-refined"
    posed = request(LoopConfig(task="gaze", real="/eyes", refine_method="pose-mean-patch",
                               refine_strength=1.0, mirror_eye="L"), 0, str(batch))
    assert posed["method"] == "pose-mean-patch" and posed["strength"] == 1.0
    assert posed["mirror_eye"] == "L" and "steps" not in posed
    simgan = request(LoopConfig(task="gaze", real="/eyes", refine_steps=7), 0, str(batch))
    assert simgan["steps"] == 7 and "method" not in simgan


def test_the_form_s_zero_strength_is_the_method_s_own_and_the_command_line_refuses_zero(
        tmp_path, capsys):
    from flows.feedback_loop import LoopParams
    from synthloop.cli.parser import build_parser
    from tests.test_loop_real import _eyes

    folder = str(_eyes(tmp_path / "eyes"))
    form = LoopParams(task="gaze", real=folder, refine_method="pose-mean-patch")
    assert form.refine_strength == 0.0 and form.config().refine_strength == 1.0
    assert LoopParams(task="gaze", real=folder, refine_method="mean-patch").config().refine_strength == 0.5
    assert LoopParams(task="gaze", real=folder, refine_method="pose-mean-patch",
                      refine_strength=0.4).config().refine_strength == 0.4
    parser = build_parser()
    assert parser.parse_args(["loop", "--refine-strength", "0.4"]).refine_strength == 0.4
    assert parser.parse_args(["loop"]).refine_strength is None
    with pytest.raises(SystemExit):
        parser.parse_args(["loop", "--refine-strength", "0"])
    assert "--refine-strength: must be in (0, 4], got 0" in capsys.readouterr().err


def test_a_landmarks_loop_refines_with_the_face_methods_and_refuses_what_they_do_not_take():
    ctx = LoopConfig(task="landmarks", real="/faces", refine_method="real-context")
    assert ctx.refines and ctx.to_dict()["refine_method"] == "real-context"
    assert "refine_strength" not in ctx.to_dict()  # it takes none, so none is in its id
    patch = LoopConfig(task="landmarks", real="/faces", refine_method="landmark-patch")
    assert patch.to_dict()["refine_strength"] == 0.5
    with pytest.raises(UsageError, match="real-context trains nothing"):
        LoopConfig(task="landmarks", real="/faces", refine_method="real-context", refine_steps=10)
    with pytest.raises(UsageError, match="refine_strength is the patches'"):
        LoopConfig(task="landmarks", real="/faces", refine_method="real-context", refine_strength=1.0)


def test_a_face_method_refines_from_round_1_with_the_previous_round_s_model(tmp_path, monkeypatch):
    # (the request reads the batch's manifest only: an eye batch serves)
    batch, request = round_request_on_a_batch(tmp_path, monkeypatch)
    cfg = LoopConfig(task="landmarks", real="/faces", refine_method="real-context")
    first = request(cfg, 0, str(batch))  # round 0: no model yet to place the points
    assert first == {"rendered": "round 0 trains on the rendered batch: real-context places the "
                                 "real faces' points with the previous round's model"}
    later = request(cfg, 1, str(batch), "/runs/round-0/last.pt")
    assert later["method"] == "real-context" and later["landmarker"] == "/runs/round-0/last.pt"
    assert later["real_indices"] == [3, 1] and later["strength"] is None and "steps" not in later
    # the other methods never read a landmarker, so a round does not hand them one
    plain = request(LoopConfig(task="landmarks", real="/faces", refine_method="mean-patch"), 1,
                    str(batch), "/runs/round-0/last.pt")
    assert "landmarker" not in plain and plain["method"] == "mean-patch"
