import json
import math

import numpy as np
import pytest

from synth.distribution import Factor, SceneDistribution, coverage_pvalues
from synth.eye_distribution import EYE_FACTORS, default_eye_distribution


def test_id_is_a_content_hash_stable_across_json_round_trip():
    d = default_eye_distribution()
    again = SceneDistribution.loads(d.dumps())
    assert again == d and again.id == d.id
    assert d.id.startswith("dist-") and len(d.id) == 17
    # any change of content changes the id
    assert d.reweight("gaze_yaw", [2.0] + [1.0] * 15, reason="t").id != d.id


def test_loading_rejects_an_id_that_does_not_match_the_content():
    d = json.loads(default_eye_distribution().dumps())
    d["factors"][0]["weights"][0] *= 3
    with pytest.raises(ValueError, match="does not match"):
        SceneDistribution.from_json(d)


def test_every_eye_factor_has_bounded_support_and_samples_stay_inside():
    d = default_eye_distribution()
    assert d.factor_names == EYE_FACTORS
    s = d.sample(np.random.default_rng(0), 5000)
    for f in d.factors:
        lo, hi = f.support
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi
        assert np.all((s[f.name] >= lo) & (s[f.name] <= hi)), f.name
        assert np.all(f.bin_index(s[f.name]) >= 0)


def test_sampling_is_deterministic_given_the_seed():
    d = default_eye_distribution()
    a = d.sample(np.random.default_rng(7), 100)
    b = d.sample(np.random.default_rng(7), 100)
    c = d.sample(np.random.default_rng(8), 100)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["gaze_pitch"], c["gaze_pitch"])


def test_reweight_records_lineage_moves_mass_and_respects_the_floor():
    d = default_eye_distribution()
    m = np.ones(16)
    m[-2:] = 50.0
    child = d.reweight("gaze_pitch", m, reason="high error looking up", floor=0.01)
    assert child.parent == d.id and child.reason == "high error looking up"
    w_old, w_new = np.array(d.factor("gaze_pitch").weights), np.array(child.factor("gaze_pitch").weights)
    assert w_new[-1] > w_old[-1] * 5
    assert w_new.min() >= 0.01 - 1e-9 and abs(w_new.sum() - 1) < 1e-9
    # killing bins is impossible: zero multipliers still leave the floor
    dead = d.reweight("gaze_yaw", [0.0] * 15 + [1.0], reason="x", floor=0.02)
    assert min(dead.factor("gaze_yaw").weights) >= 0.02 - 1e-9
    # the support never changes
    assert child.factor("gaze_pitch").edges == d.factor("gaze_pitch").edges


def test_reweight_rejects_bad_multipliers():
    d = default_eye_distribution()
    with pytest.raises(ValueError):
        d.reweight("gaze_pitch", [1.0] * 3, reason="wrong length")
    with pytest.raises(ValueError):
        d.reweight("gaze_pitch", [-1.0] + [1.0] * 15, reason="negative")


def test_factor_validation():
    with pytest.raises(ValueError):
        Factor("x", "continuous", (1.0, 1.0), edges=(0.0, 1.0))  # edges/weights mismatch
    with pytest.raises(ValueError):
        Factor("x", "continuous", (1.0,), edges=(1.0, 0.0))  # decreasing
    c = Factor.categorical("flag", {0.0: 0.25, 1.0: 0.75})
    assert list(c.bin_index(np.array([0.0, 1.0, 0.5]))) == [0, 1, -1]


def test_coverage_pvalues_detect_a_shifted_histogram():
    d = default_eye_distribution()
    ok = d.sample(np.random.default_rng(1), 2000)
    p_ok = coverage_pvalues(d, ok)
    assert min(p_ok.values()) > 1e-6
    shifted = d.reweight("gaze_pitch", [0.0] * 8 + [1.0] * 8, reason="shift", floor=0.001)
    bad = shifted.sample(np.random.default_rng(1), 2000)
    p_bad = coverage_pvalues(d, bad)
    assert p_bad["gaze_pitch"] < 1e-12
    assert p_bad["gaze_yaw"] > 1e-6


def test_weights_survive_json_round_trips_exactly():
    """Normalising must be idempotent: a reloaded distribution keeps its id (a loop reads
    every derived version back from the catalog and checks it)."""
    import json

    import numpy as np

    from synth.distribution import Factor

    rng = np.random.default_rng(0)
    for _ in range(2000):
        k = int(rng.integers(2, 17))
        w = rng.random(k) ** 3 + 1e-4
        f = Factor("x", "continuous", tuple(w), tuple(np.linspace(0, 1, k + 1)))
        g = Factor.from_json(json.loads(json.dumps(f.to_json())))
        assert g.weights == f.weights
        assert Factor.from_json(g.to_json()).weights == g.weights


def test_the_patch_centre_is_part_of_the_distribution_and_old_ids_hold():
    import dataclasses

    from synth.distribution import ImageSpec, SceneDistribution

    d = default_eye_distribution()
    assert "centre" not in d.to_json()["image"]  # the eyeball: ids written before it hold
    corners = d.derive("centred on the eye corners",
                       image=dataclasses.replace(d.image, centre="corners"))
    assert corners.id != d.id and corners.to_json()["image"]["centre"] == "corners"
    assert SceneDistribution.loads(corners.dumps()).image.centre == "corners"
    with pytest.raises(ValueError, match="image centre"):
        ImageSpec(centre="nose")
