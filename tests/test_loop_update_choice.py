"""``synthloop loop --update labels``: a closed loop that re-weights the label factors by
the real errors and leaves the appearance factors as the start drew them (every probe on
real eyes found narrowing them toward the real images' look cost more than it bought)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.factor_maps import EYE_LABEL_FACTORS, EYE_NUISANCE
from analysis.image_stats import image_statistics_table
from synth.eye_distribution import default_eye_distribution
from synth.eye_scenes import sample_scenes
from synthloop.errors import UsageError
from synthloop.loop.analyse import next_distribution
from synthloop.loop.config import LoopConfig
from synthloop.taskspec import AnalysisEvidence


def test_the_default_update_keeps_a_loop_s_identity_and_labels_only_changes_it():
    plain = LoopConfig(task="gaze", real="/eyes")
    assert "update" not in plain.to_dict() and plain.fits_appearance
    assert LoopConfig(task="gaze", real="/eyes", update="all").to_dict() == plain.to_dict()
    labels = LoopConfig(task="gaze", real="/eyes", update="labels")
    assert labels.to_dict()["update"] == "labels" and not labels.fits_appearance
    # an open loop updates nothing, so the choice is no part of its identity
    assert (LoopConfig(task="gaze", real="/eyes", open_loop=True, update="labels").to_dict()
            == LoopConfig(task="gaze", real="/eyes", open_loop=True).to_dict())


def test_an_unknown_update_is_refused_naming_the_choices():
    with pytest.raises(UsageError, match="update 'nuisance': choose from all, labels"):
        LoopConfig(task="gaze", real="/eyes", update="nuisance")


def _round_evidence(n: int = 600):
    """Real eyes looking down fail badly; their images are brighter and noisier than any
    synthetic probe, so a nuisance fit has something to move."""
    rng = np.random.default_rng(0)
    pitch = rng.uniform(math.radians(-30), math.radians(30), n)
    yaw = rng.uniform(math.radians(-30), math.radians(30), n)
    errors = np.where(pitch < math.radians(-15), 20.0, 5.0) + rng.random(n)
    evidence = AnalysisEvidence(observed={}, real_values={"gaze_pitch": pitch, "gaze_yaw": yaw},
                                label_factors=EYE_LABEL_FACTORS, nuisance=dict(EYE_NUISANCE))
    real = rng.integers(60, 256, (n, 36, 60)).astype(np.uint8)
    return errors, evidence, image_statistics_table(real)


def _probe(dist, calls: list):
    def probe():
        calls.append(1)
        rng = np.random.default_rng(1)
        values = sample_scenes(dist, 400, 3)
        images = rng.integers(0, 200, (400, 36, 60)).astype(np.uint8)
        return images, {f: np.asarray(values[f], np.float64) for f in dist.factor_names}
    return probe


@pytest.mark.parametrize("update", ["all", "labels"])
def test_labels_only_moves_the_label_factors_and_never_draws_the_probe(update):
    dist = default_eye_distribution()
    errors, evidence, real_stats = _round_evidence()
    calls: list = []
    cfg = LoopConfig(task="gaze", real="/eyes", update=update)
    new, report = next_distribution(cfg, dist, dist, errors, evidence, real_stats,
                                    _probe(dist, calls))
    assert new.parent == dist.id and report["mode"] == "closed" and report["update"] == update
    for name in EYE_LABEL_FACTORS:  # the errors move the gaze bins either way
        assert report["factors"][name]["tv"] > 0.01
    fitted = [name for name in EYE_NUISANCE if name in report["factors"]]
    if update == "labels":
        assert calls == [] and fitted == []
        for name in EYE_NUISANCE:
            assert new.factor(name).weights == dist.factor(name).weights
    else:
        assert calls == [1] and fitted == list(EYE_NUISANCE)
        assert any(new.factor(name).weights != dist.factor(name).weights for name in EYE_NUISANCE)


def test_an_open_loop_returns_its_start_whatever_the_update():
    dist = default_eye_distribution()
    child = dist.derive("an earlier round's update", factors=dist.factors)
    errors, evidence, real_stats = _round_evidence()
    calls: list = []
    new, report = next_distribution(LoopConfig(task="gaze", real="/eyes", open_loop=True), child,
                                    dist, errors, evidence, real_stats, _probe(dist, calls))
    assert new is dist and report == {"mode": "open", "changes": {}} and calls == []


@pytest.mark.parametrize("field, names, other, other_value, default_value", [
    ("update", "UPDATE_NAMES", "labels", "labels", None),
    # gaze's rounds start from scratch unless told; warm is the field's None
    ("round_start", "ROUND_START_CHOICES", "warm", None, "scratch")])
def test_the_command_line_and_the_flow_form_offer_the_choice_and_reach_the_config(
        tmp_path, field, names, other, other_value, default_value):
    """The loop's later choices (the update's reach, where rounds start): offered on the
    command line and in the flow's form with the same names and default, reaching the
    configuration as the value that fixes the loop's id (the historical default as None,
    so loop ids keep)."""
    from flows.feedback_loop import LoopParams
    from synthloop.loop import config
    from tests.test_loop_real import _eyes
    from tests.test_names import _options

    choices = getattr(config, names)
    flag = _options("loop")["--" + field.replace("_", "-")]
    assert tuple(flag.choices) == choices and flag.default == choices[0]
    assert LoopParams.model_fields[field].default == choices[0]
    folder = _eyes(tmp_path / "eyes")
    got = getattr(LoopParams(task="gaze", real=str(folder), **{field: other}).config(), field)
    assert got == other_value
    assert getattr(LoopParams(task="gaze", real=str(folder)).config(), field) == default_value
