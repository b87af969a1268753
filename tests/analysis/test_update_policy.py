"""The distribution update policy: moves mass where the evidence says, within its bounds."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from analysis.factor_maps import (
    EYE_HEAD_FACTORS,
    EYE_LABEL_FACTORS,
    EYE_NUISANCE,
    FACE_LABEL_FACTORS,
    FACE_NUISANCE,
)
from analysis.image_stats import IMAGE_STAT_NAMES, image_statistics_table
from analysis.update_policy import (
    NuisanceEvidence,
    UpdatePolicy,
    fit_nuisance,
    label_reweight,
    move_weights,
    update_distribution,
)
from synth.distribution import Factor, SceneDistribution
from synth.eye_distribution import default_eye_distribution


@pytest.fixture
def dist() -> SceneDistribution:
    return SceneDistribution("t", "test", (
        Factor.uniform("a", 0.0, 5.0, 5),
        Factor.shaped("p", -1.0, 1.0, 8, 0.0, 0.4),
        Factor.categorical("c", {0.0: 0.5, 1.0: 0.3, 2.0: 0.2}),
    ))


def _evidence(seed: int = 0, n: int = 2000):
    """Real samples uniform over factor a's support, errors 1 + 4 * [a in bin 3]."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.0, 5.0, n)
    errors = 1.0 + 4.0 * ((a >= 3.0) & (a < 4.0)) + rng.random(n) * 0.1
    return errors, {"a": a}


def test_mass_moves_toward_the_bins_with_the_most_error_mass(dist):
    errors, values = _evidence()
    new, ch = label_reweight(dist, errors, values)
    w0, w1 = np.array(dist.factor("a").weights), np.array(new.factor("a").weights)
    assert np.argmax(w1 - w0) == 3 and w1[3] > w0[3]
    assert np.all(w1[[0, 1, 2, 4]] < w0[[0, 1, 2, 4]])
    ev = ch["a"]["evidence"]
    assert ev["worst_bin"] == 3 and ev["counts"][3] > 300
    assert np.argmax(ev["error_mass"]) == 3
    assert ch["a"]["raised"][0]["bin"] == 3 and ch["a"]["tv"] > 0.1
    # the other factors are untouched
    assert new.factor("p") == dist.factor("p") and new.factor("c") == dist.factor("c")


def test_error_mass_is_frequency_times_error(dist):
    # bin 0 is frequent with a small error, bin 4 rare with a large one: bin 0 has more mass
    a = np.r_[np.full(900, 0.5), np.full(100, 4.5)]
    errors = np.r_[np.full(900, 1.0), np.full(100, 3.0)]  # mass 900 vs 300
    new, ch = label_reweight(dist, errors, {"a": a}, UpdatePolicy(pseudo_count=0.0))
    t = ch["a"]["evidence"]["target"]
    assert t == pytest.approx([0.75, 0, 0, 0, 0.25])
    w = new.factor("a").weights
    assert w[0] > w[4] > w[1]


def test_support_floor_and_ratio_bounds_hold_over_many_rounds(dist):
    policy = UpdatePolicy(step=1.0, floor=0.02, max_ratio=2.0)
    a = np.full(500, 3.5)  # all real mass in one bin: the others should decay to the floor
    cur = dist
    for _ in range(12):
        nxt, _ = label_reweight(cur, np.ones(500), {"a": a}, policy)
        w0, w1 = np.array(cur.factor("a").weights), np.array(nxt.factor("a").weights)
        assert np.all(w1 >= policy.floor - 1e-9)
        assert np.all(w1 / w0 <= policy.max_ratio + 1e-9)
        assert np.all(w1 / w0 >= 1 / policy.max_ratio - 1e-9)
        assert nxt.factor("a").edges == dist.factor("a").edges  # same support
        cur = nxt
    w = np.array(cur.factor("a").weights)
    assert w[3] == pytest.approx(1 - 4 * policy.floor, abs=1e-3)
    assert np.allclose(np.delete(w, 3), policy.floor, atol=1e-3)
    x = cur.factor("a").sample(np.random.default_rng(0), 10_000)
    assert x.min() >= 0.0 and x.max() <= 5.0
    assert set(np.unique(cur.factor("a").bin_index(x))) == set(range(5))  # no bin died


def test_bins_without_real_samples_decay_but_stay_above_the_floor(dist):
    a = np.random.default_rng(1).uniform(0.0, 3.0, 1000)  # bins 3, 4 see no real data
    new, _ = label_reweight(dist, np.ones(1000), {"a": a})
    w0, w1 = np.array(dist.factor("a").weights), np.array(new.factor("a").weights)
    assert np.all(w1[3:] < w0[3:]) and np.all(w1[3:] >= 0.01 - 1e-12)


def test_categorical_and_shaped_factors_and_outside_values(dist):
    rng = np.random.default_rng(2)
    c = rng.choice([0.0, 1.0, 2.0], 600)
    p = rng.uniform(-1.5, 1.5, 600)  # a third of it outside the support
    errors = np.where(c == 2.0, 5.0, 1.0) + np.where(p > 0.5, 5.0, 0.0)
    new, ch = label_reweight(dist, errors, {"c": c, "p": p})
    assert new.factor("c").weights[2] > dist.factor("c").weights[2]
    assert ch["p"]["evidence"]["n_outside"] == int(np.sum(np.abs(p) > 1.0))
    wp0, wp1 = np.array(dist.factor("p").weights), np.array(new.factor("p").weights)
    assert np.all(wp1[6:] > wp0[6:])  # p in (0.5, 1]: the bad region gains


def test_deterministic_lineage_and_reason(dist):
    errors, values = _evidence()
    a, ra = label_reweight(dist, errors, values)
    b, rb = label_reweight(dist, errors, values)
    assert a.id == b.id and ra == rb
    assert a.parent == dist.id and a.id != dist.id
    assert "a" in a.reason and "[3,4)" in a.reason and "->" in a.reason
    assert len(a.reason) < 300


def test_too_few_samples_change_nothing_but_still_say_why(dist):
    new, ch = label_reweight(dist, [1.0, 2.0], {"a": [0.5, 1.5]})
    assert new.factor("a").weights == dist.factor("a").weights
    assert ch["a"]["skipped"] and "no change" in new.reason and new.parent == dist.id


def test_move_weights_properties():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(2, 20))
        w = rng.dirichlet(np.ones(k)) + 0.01
        w /= w.sum()
        t = rng.dirichlet(np.full(k, 0.3))
        t[rng.random(k) < 0.3] = 0.0
        t = t + (t.sum() == 0)
        p = UpdatePolicy(step=float(rng.uniform(0.1, 1.0)), floor=0.5 / k / 10,
                         max_ratio=float(rng.uniform(1.2, 5.0)))
        new = move_weights(w, t, p)
        assert new.sum() == pytest.approx(1.0)
        assert np.all(new >= np.maximum(w / p.max_ratio, p.floor) - 1e-12)
        assert np.all(new <= np.maximum(w * p.max_ratio, p.floor) + 1e-12)
    # unconstrained full step lands on the target; a half step is the geometric mean
    w, t = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    loose = UpdatePolicy(step=1.0, floor=0.0, max_ratio=100.0)
    assert move_weights(w, t, loose) == pytest.approx(t)
    half = UpdatePolicy(step=0.5, floor=0.0, max_ratio=100.0)
    g = np.sqrt(w * t)
    assert move_weights(w, t, half) == pytest.approx(g / g.sum())
    with pytest.raises(ValueError):
        UpdatePolicy(step=0.0)


# --------------------------------------------------------------------------- nuisance


def _images(rng: np.random.Generator, level: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """A smooth random pattern scaled by a brightness level, plus Gaussian noise."""
    p = gaussian_filter(rng.normal(size=(len(level), 36, 60)), (0, 4, 4))
    p /= p.std(axis=(1, 2), keepdims=True)
    return level[:, None, None] * (1 + 0.3 * p) + noise[:, None, None] * rng.normal(size=p.shape)


@pytest.fixture(scope="module")
def probe_case():
    dist = SceneDistribution("n", "test", (
        Factor.uniform("brightness", 0.05, 0.65, 6),  # 0.3 sits in the middle of bin 2
        Factor.uniform("noise", 0.0, 0.048, 6),  # 0.02 sits in the middle of bin 2
    ))
    rng = np.random.default_rng(0)
    scenes = dist.sample(rng, 1800)
    syn = image_statistics_table(_images(rng, scenes["brightness"], scenes["noise"]))
    real = image_statistics_table(_images(rng, np.full(300, 0.3), np.full(300, 0.02)))
    return dist, scenes, syn, real


def test_nuisance_fit_recovers_known_parameters(probe_case):
    dist, scenes, syn, real = probe_case
    mapping = {"brightness": "brightness", "noise": "noise_sigma"}
    new, ch = fit_nuisance(dist, scenes, syn, real, mapping, UpdatePolicy(step=1.0))
    for name in mapping:
        w = np.array(new.factor(name).weights)
        assert np.argmax(w) == 2 and w[2] > 0.5, (name, w)
        ev = ch[name]["evidence"]
        assert ev["fit_residual_new"] < ev["fit_residual_old"]
        assert np.argmax([x or 0 for x in ev["mixture"]]) == 2
    assert new.parent == dist.id and "brightness~brightness" in new.reason
    json.dumps(ch)


def test_a_statistic_that_cannot_see_the_factor_barely_moves_it(probe_case):
    dist, scenes, syn, real = probe_case
    rng = np.random.default_rng(4)
    blind = {"x": rng.random(len(scenes["noise"]))}
    new, ch = fit_nuisance(dist, scenes, blind, {"x": rng.random(300)}, {"noise": "x"},
                           UpdatePolicy(step=1.0))
    assert ch["noise"]["tv"] < 0.2


def test_update_distribution_makes_one_version_with_a_json_report(probe_case):
    dist, scenes, syn, real = probe_case
    rng = np.random.default_rng(5)
    level = rng.uniform(0.05, 0.65, 800)
    errors = np.where(level > 0.55, 9.0, 1.0)
    ev = NuisanceEvidence(scenes, syn, real, {"noise": "noise_sigma"})
    new, report = update_distribution(dist, errors=errors, real_values={"brightness": level},
                                      label_factors=("brightness",), nuisance=ev)
    again, report2 = update_distribution(
        dist, errors=errors, real_values={"brightness": level}, label_factors=("brightness",),
        nuisance={"syn_factor_values": scenes, "syn_stats": syn, "real_stats": real,
                  "mapping": {"noise": "noise_sigma"}})
    assert new.id == again.id and report == report2
    assert new.parent == dist.id and report["parent"] == dist.id and report["id"] == new.id
    assert report["order"] == ["brightness", "noise"]
    assert report["factors"]["brightness"]["kind"] == "label"
    assert report["factors"]["noise"]["kind"] == "nuisance"
    assert np.argmax(new.factor("brightness").weights) == 5
    assert np.argmax(new.factor("noise").weights) == 2
    assert "brightness" in new.reason and "noise" in new.reason
    json.loads(json.dumps(report))
    with pytest.raises(ValueError):
        update_distribution(dist)


def test_eye_constants_name_real_factors_and_statistics():
    d = default_eye_distribution()
    assert set(EYE_LABEL_FACTORS) <= set(d.factor_names)
    assert set(EYE_NUISANCE) <= set(d.factor_names)
    assert set(EYE_NUISANCE.values()) <= set(IMAGE_STAT_NAMES)
    assert not set(EYE_LABEL_FACTORS) & set(EYE_NUISANCE)
    assert set(EYE_HEAD_FACTORS) <= set(d.factor_names)
    assert not set(EYE_HEAD_FACTORS) & (set(EYE_NUISANCE) | set(EYE_LABEL_FACTORS))


def test_face_constants_name_real_factors_and_statistics():
    from synth.face_distribution import default_face_distribution

    d = default_face_distribution()
    assert set(FACE_LABEL_FACTORS) <= set(d.factor_names)
    assert set(FACE_NUISANCE) <= set(d.factor_names)
    assert set(FACE_NUISANCE.values()) <= set(IMAGE_STAT_NAMES)
    assert not set(FACE_LABEL_FACTORS) & set(FACE_NUISANCE)


def test_distribution_change_plot(tmp_path, dist):
    from analysis.plots import distribution_change

    errors, values = _evidence()
    new, _ = label_reweight(dist, errors, values)
    fig = distribution_change(dist, new, ["a", "c"], path=tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0
    assert len([a for a in fig.axes if a.has_data()]) == 2
    assert len(distribution_change(dist, new).axes) == 1  # default: the factors that moved


def test_distribution_change_plots_angles_in_degrees():
    from analysis.plots import distribution_change
    from synth.eye_distribution import default_eye_distribution

    d = default_eye_distribution()
    new = d.reweight("gaze_yaw", [2.0] * 8 + [1.0] * 8, "test")
    fig = distribution_change(d, new, ["gaze_yaw"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "deg"
    xs = sorted(p.get_x() + p.get_width() / 2 for p in ax.patches)
    assert -45 <= xs[0] < -40 and 40 < xs[-1] <= 45  # +-45 deg, not +-0.79 rad


def test_a_bin_the_distribution_leaves_out_stays_out():
    # a narrowed range (the Columbia distributions zero the gaze bins outside +-15 deg):
    # the floor holds on the support and never draws the excluded bins back in
    w = np.array([0.0, 0.0, 0.5, 0.3, 0.2, 0.0])
    t = np.array([0.3, 0.1, 0.0, 0.1, 0.2, 0.3])
    for policy in (UpdatePolicy(), UpdatePolicy(step=1.0, floor=0.1, max_ratio=100.0)):
        new = move_weights(w, t, policy)
        assert new.sum() == pytest.approx(1.0)
        assert np.all(new[[0, 1, 5]] == 0.0)
        assert np.all(new[2:5] >= policy.floor - 1e-12)
    # with the target on the support alone, a full unbounded step lands on it
    loose = UpdatePolicy(step=1.0, floor=0.0, max_ratio=1e9)
    assert move_weights(w, t, loose) == pytest.approx(np.array([0, 0, 0, 1, 2, 0]) / 3, abs=1e-8)
    with pytest.raises(ValueError, match="too high for 3 bins with weight"):
        move_weights(w, t, UpdatePolicy(floor=0.34))


def test_the_loop_never_draws_the_gaze_angles_a_narrowed_start_excludes():
    d = default_eye_distribution()
    pitch = d.factor("gaze_pitch")
    keep = np.abs(np.asarray(pitch.edges[:-1]) + 0.5 * np.diff(pitch.edges)) < np.radians(16)
    narrow = d.reweight("gaze_pitch", keep.astype(float), "Columbia's range", floor=0.0)
    assert np.count_nonzero(narrow.factor("gaze_pitch").weights) == keep.sum() < pitch.n_bins
    rng = np.random.default_rng(0)
    real = rng.choice([-0.175, 0.0, 0.175], 900)  # a grid of real gaze at 0 and +-10 deg
    errors = 5.0 + 10.0 * (real != 0) + rng.random(900)
    new, _ = label_reweight(narrow, errors, {"gaze_pitch": real})
    w = np.asarray(new.factor("gaze_pitch").weights)
    assert np.all(w[~keep] == 0.0) and np.all(w[keep] >= UpdatePolicy().floor - 1e-12)
    # a multiplier of zero on the support is floored there, as before
    dead = narrow.reweight("gaze_pitch", np.zeros(pitch.n_bins), "x", floor=0.02)
    assert np.all(np.asarray(dead.factor("gaze_pitch").weights)[~keep] == 0.0)
    assert np.allclose(np.asarray(dead.factor("gaze_pitch").weights)[keep], 1 / keep.sum())


def test_labels_on_bin_edges_count_on_both_sides_and_the_next_draws_centre_on_them():
    # Columbia's gaze pitch grid (-10, 0, +10 deg) sits on the edges of 5 deg bins; each
    # label's error mass goes half to each neighbour, whichever side rounding puts it on
    d = default_eye_distribution()
    pitch = d.factor("gaze_pitch")
    edges = np.asarray(pitch.edges)
    grid = np.radians([-10.0, 0.0, 10.0])
    assert all(np.isclose(edges, g).any() for g in grid)
    rng = np.random.default_rng(0)
    real = rng.choice(grid, 900) + rng.choice([-1e-12, 1e-12], 900)  # either side of the edge
    policy = UpdatePolicy(pseudo_count=0.0)
    _, ch = label_reweight(d, np.ones(900), {"gaze_pitch": real}, policy)
    target = np.asarray(ch["gaze_pitch"]["evidence"]["target"])
    for g in grid:
        b = int(np.argmin(np.abs(edges - g)))  # the bins [b-1, b] meet at g
        assert target[b - 1] == pytest.approx(target[b], abs=1e-9)
        assert target[b - 1] + target[b] == pytest.approx(np.mean(np.isclose(real, g)), abs=1e-9)
    # after a few full steps the synthetic pitch around each grid value is centred on it
    cur, loose = d, UpdatePolicy(step=1.0, pseudo_count=0.0, floor=0.0, max_ratio=1e9)
    for _ in range(3):
        cur, _ = label_reweight(cur, np.ones(900), {"gaze_pitch": real}, loose)
    x = cur.factor("gaze_pitch").sample(rng, 20_000)
    for g in grid:
        near = x[np.abs(x - g) < np.radians(5)]
        assert abs(np.degrees(near.mean() - g)) < 0.2


def test_a_value_s_share_stays_off_the_bins_a_distribution_leaves_out():
    d = SceneDistribution("t", "test", (Factor.uniform("a", 0.0, 5.0, 5),))
    narrow = d.reweight("a", [0.0, 1.0, 1.0, 1.0, 0.0], "no outer bins", floor=0.0)
    # 1.0 and 4.0 are edges to excluded bins; 2.5 is a centre; 2.0 an inner edge
    a = np.repeat([1.0, 2.0, 2.5, 4.0], 100)
    _, ch = label_reweight(narrow, np.ones(400), {"a": a}, UpdatePolicy(pseudo_count=0.0))
    ev = ch["a"]["evidence"]
    assert ev["target"] == pytest.approx([0, 0.25 + 0.125, 0.125 + 0.25, 0.25, 0])  # 4.0: bin 3
    assert ev["counts"] == [0, 150, 150, 100, 0]
