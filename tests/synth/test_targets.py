"""The built-in simulated target: a shifted distribution, its own camera, real-data formats."""

import math

import numpy as np
import pytest

from analysis.domain_gap import image_stat_gap
from realdata.eyes import read_eye_folder, read_eye_labels, read_eye_manifest
from synth.eye_distribution import default_eye_distribution
from synth.eye_generator import EyeGenerator
from synth.targets import (
    SHIFTED_FACTORS,
    SIMULATED_TARGET_NAME,
    is_simulated,
    render_simulated_target,
    shifted_eye_distribution,
    target_camera,
    write_simulated_target,
)

D = math.radians


def test_shifted_distribution_is_a_derived_reweighting_inside_the_default_support():
    base, shifted = default_eye_distribution(), shifted_eye_distribution()
    assert shifted.parent == base.id and SIMULATED_TARGET_NAME in shifted.reason
    assert shifted.id == shifted_eye_distribution().id  # deterministic content
    assert shifted.factor_names == base.factor_names
    for f in shifted.factors:
        g = base.factor(f.name)
        assert (f.kind, f.edges, f.values) == (g.kind, g.edges, g.values), f.name  # same support
        assert (f.weights != g.weights) == (f.name in SHIFTED_FACTORS), f.name
    assert shifted.factor("histeq").weights == (0.0, 1.0)


def test_shifted_labels_look_down_and_stay_in_their_ranges():
    s = shifted_eye_distribution().sample(np.random.default_rng(0), 4000)
    d = default_eye_distribution().sample(np.random.default_rng(0), 4000)
    assert s["gaze_pitch"].min() >= D(-30) - 1e-12 and s["gaze_pitch"].max() <= D(10) + 1e-12
    assert np.abs(s["gaze_yaw"]).max() <= D(22.5) + 1e-12
    assert s["gaze_pitch"].mean() < D(-7) and abs(d["gaze_pitch"].mean()) < D(1.5)
    assert s["gaze_yaw"].std() < 0.6 * d["gaze_yaw"].std()
    assert s["light_intensity"].mean() < d["light_intensity"].mean() - 0.2
    assert s["blur_sigma_px"].mean() > d["blur_sigma_px"].mean() + 0.3
    assert s["jpeg_quality"].mean() < d["jpeg_quality"].mean() - 10


def test_target_camera_changes_images_deterministically():
    images = np.concatenate([c.images for c in EyeGenerator(default_eye_distribution()).iter_chunks(32, 0)])
    a, b = target_camera(images, seed=5), target_camera(images, seed=5)
    assert a.dtype == np.uint8 and a.shape == images.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, target_camera(images, seed=6))
    assert np.abs(a.astype(int) - images).mean() > 3.0
    # vignetting darkens the corners more than the centre
    flat = np.full((4, 36, 60), 200, np.uint8)
    out = target_camera(flat, seed=0).astype(float)
    assert out[:, :4, :4].mean() < out[:, 16:20, 28:32].mean() - 20
    assert np.allclose(out[:, 16:20, 28:32], 200, atol=2)
    rgb = target_camera(np.repeat(images[..., None], 3, -1), seed=5)
    assert rgb.shape == (*images.shape, 3) and np.array_equal(rgb[..., 0], a)


def test_simulated_folder_round_trips_through_the_real_data_readers(tmp_path):
    out = write_simulated_target(tmp_path / "target", n=40, seed=3)
    assert out == tmp_path / "target" and is_simulated(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # no temp folder left
    labeled = read_eye_labels(out)
    unlabeled = read_eye_manifest(out)
    assert labeled.images.shape == (40, 36, 60) and labeled.paths[0] == "images/000000.png"
    assert np.array_equal(labeled.images, unlabeled.images) and unlabeled.pitchyaw is None
    images, labels = render_simulated_target(40, 3)
    assert np.array_equal(labeled.images, images)
    assert np.allclose(labeled.pitchyaw, labels, atol=1e-6)
    # the scenes' head pose is written too (MPIIGaze-style labels carry it)
    assert labeled.headpose.shape == (40, 2)
    assert labeled.headpose[:, 0].mean() < D(-5) and labeled.headpose[:, 1].mean() > D(3)
    assert labeled.pitchyaw[:, 0].mean() < D(-5)  # the default's pitch mean is ~0
    note = (out / "SIMULATION.md").read_text()
    for needle in ("SIMULATED", "not real", SIMULATED_TARGET_NAME, shifted_eye_distribution().id,
                   "seed: 3", "target_camera"):
        assert needle in note


def test_writing_is_deterministic_and_unlabeled_folders_have_no_labels(tmp_path):
    a = write_simulated_target(tmp_path / "a", n=12, seed=7)
    b = write_simulated_target(tmp_path / "b", n=12, seed=7)
    c = write_simulated_target(tmp_path / "c", n=12, seed=8, labeled=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert not (c / "labels.csv").exists() and (c / "manifest.csv").exists() and is_simulated(c)
    assert read_eye_folder(c).pitchyaw is None
    assert not np.array_equal(read_eye_manifest(a).images, read_eye_manifest(c).images)
    assert not is_simulated(tmp_path)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import synth.targets as targets

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(targets, "_simulation_note", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_simulated_target(tmp_path / "t", n=4, seed=0)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(FileExistsError):
        write_simulated_target(tmp_path / "full", n=4, seed=0)
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_shifted_target_differs_from_default_on_image_statistics():
    """A test of the test data: the simulated target must be a visible domain shift."""
    source = np.concatenate([c.images for c in EyeGenerator(default_eye_distribution()).iter_chunks(256, 0)])
    target, _ = render_simulated_target(256, 0)
    gap = image_stat_gap(source, target)
    assert gap["brightness"]["diff"] < -3  # vignetting after equalisation: darker
    assert gap["laplacian_var"]["mean_b"] < 0.3 * gap["laplacian_var"]["mean_a"]  # softer
    assert gap["laplacian_var"]["std_diff"] < -0.5
    assert gap["noise_sigma"]["wasserstein"] > 1.0


def test_appearance_only_variant_keeps_the_label_distribution():
    from synth.eye_distribution import default_eye_distribution
    from synth.targets import LABEL_FACTORS, shifted_eye_distribution

    base, app, full = default_eye_distribution(), shifted_eye_distribution(False), shifted_eye_distribution()
    for name in LABEL_FACTORS:
        assert app.factor(name) == base.factor(name)
        assert full.factor(name) != base.factor(name)
    # the appearance part of the shift is the same in both variants
    assert app.factor("noise_sigma") == full.factor("noise_sigma") != base.factor("noise_sigma")
    assert app.id != full.id and app.parent == base.id


def test_v2_skews_gaze_and_head_pose_further_with_the_same_appearance(tmp_path):
    from synth.targets import LABEL_FACTORS, TARGET_VERSIONS, target_name

    assert TARGET_VERSIONS == ("v1", "v2")
    v1, v2 = shifted_eye_distribution(), shifted_eye_distribution(version="v2")
    assert v2.id != v1.id and target_name("v2") in v2.reason and v2.name == "eyes-shifted-v2"
    for f in v2.factors:
        assert (f.weights != v1.factor(f.name).weights) == (f.name in LABEL_FACTORS), f.name
    a = v1.sample(np.random.default_rng(0), 4000)
    b = v2.sample(np.random.default_rng(0), 4000)
    assert b["gaze_pitch"].mean() < a["gaze_pitch"].mean() - D(7)
    assert b["gaze_pitch"].max() <= 1e-12 and b["gaze_yaw"].mean() > D(5)
    assert b["head_yaw"].mean() > a["head_yaw"].mean() + D(5)
    # appearance-only does not depend on the version
    assert shifted_eye_distribution(False, "v2").id == shifted_eye_distribution(False).id
    with pytest.raises(ValueError, match="unknown simulated target version 'v9'"):
        shifted_eye_distribution(version="v9")
    out = write_simulated_target(tmp_path / "t2", n=8, seed=1, version="v2")
    assert target_name("v2") in (out / "SIMULATION.md").read_text()
    assert v2.id in (out / "SIMULATION.md").read_text()
