"""The frames GX validates: per-image statistics and per-factor coverage (no GX here)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expectations.frame import (
    COVERAGE_COLUMNS,
    IMAGE_STAT_COLUMNS,
    coverage_frame,
    image_stats,
    sample_frame,
)
from synth.distribution import Factor, SceneDistribution
from synth.eye_distribution import default_eye_distribution
from synth.generate import generate_batch
from synth.shards import BatchReader


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    _, path = generate_batch(tmp_path_factory.mktemp("frame") / "b", n=300, seed=7, shard_size=128)
    return path


def test_image_stats_match_a_naive_computation():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(9, 36, 60), dtype=np.uint8)
    imgs[1] = 0
    imgs[2] = 255
    imgs[3] = 77
    s = image_stats(imgs)
    for i, im in enumerate(imgs):
        x = im.astype(np.float64)
        assert s["img_mean"][i] == pytest.approx(x.mean(), abs=1e-9)
        assert s["img_std"][i] == pytest.approx(x.std(), abs=1e-6)
        assert s["frac_dark"][i] == pytest.approx((im <= 5).mean())
        assert s["frac_bright"][i] == pytest.approx((im >= 250).mean())
    assert s["img_std"][1] == s["img_std"][2] == s["img_std"][3] == 0.0
    assert s["frac_dark"][1] == 1.0 and s["frac_bright"][2] == 1.0
    assert len(set(s["image_hash"])) == 9


def test_image_hash_sees_identical_bytes_only():
    a = np.full((3, 4, 5), 10, np.uint8)
    a[2, 0, 0] = 11
    h = image_stats(a)["image_hash"]
    assert h[0] == h[1] != h[2]
    rgb = image_stats(np.zeros((2, 4, 5, 3), np.uint8))  # colour images work too
    assert rgb["img_std"].tolist() == [0.0, 0.0]


def test_sample_frame_is_metadata_plus_statistics_in_order(batch):
    r = BatchReader(batch)
    df = sample_frame(r, chunk=50)  # chunks smaller than shards
    meta = r.metadata
    assert len(df) == r.n
    assert list(df.columns) == list(meta.columns) + list(IMAGE_STAT_COLUMNS)
    pd.testing.assert_frame_equal(df[list(meta.columns)], meta)
    imgs = r.images([0, 150, 299])
    direct = image_stats(imgs)
    for j, i in enumerate([0, 150, 299]):
        assert df["img_mean"].iloc[i] == pytest.approx(direct["img_mean"][j])
        assert df["image_hash"].iloc[i] == direct["image_hash"][j]
    for c in ("img_mean", "img_std", "frac_dark", "frac_bright"):
        assert df[c].dtype == np.float64
    assert df["image_hash"].is_unique


def test_coverage_frame_of_a_clean_batch(batch):
    r = BatchReader(batch)
    cov = coverage_frame(r)
    assert list(cov.columns) == list(COVERAGE_COLUMNS)
    assert list(cov["factor"]) == list(r.distribution.factor_names)
    assert (cov["n_out_of_support"] == 0).all()
    assert cov["p_value"].min() > 1e-4
    assert ((cov["tv_distance"] >= 0) & (cov["tv_distance"] < 0.3)).all()


@dataclass
class FakeReader:
    """coverage_frame needs only a distribution and a metadata table."""
    distribution: SceneDistribution
    metadata: pd.DataFrame


def _dist() -> SceneDistribution:
    return SceneDistribution("t", "gaze", (
        Factor.uniform("u", 0.0, 4.0, 4),
        Factor.categorical("c", {0.0: 0.5, 1.0: 0.5}),
        Factor.uniform("r", 5.6, 6.4, 4),  # 5.6 and 6.4 are not float32-exact
    ))


def test_coverage_frame_counts_out_of_support_and_nan_and_tv():
    n = 400
    u = np.repeat([0.5, 1.5, 2.5, 3.5], n // 4)
    meta = pd.DataFrame({"u": u, "c": np.tile([0.0, 1.0], n // 2), "r": np.repeat([5.7, 5.9, 6.1, 6.3], n // 4)})
    cov = coverage_frame(FakeReader(_dist(), meta)).set_index("factor")
    assert cov.loc["u", "p_value"] == pytest.approx(1.0) and cov.loc["u", "tv_distance"] == pytest.approx(0.0)

    bad = meta.copy()
    bad.loc[0, "u"] = 4.5
    bad.loc[1, "u"] = np.nan
    bad.loc[2, "c"] = 0.5
    bad["r"] = 6.0  # everything in one bin: total variation 0.75
    cov = coverage_frame(FakeReader(_dist(), bad)).set_index("factor")
    assert cov.loc["u", "n_out_of_support"] == 2 and cov.loc["u", "p_value"] == 0.0
    assert cov.loc["c", "n_out_of_support"] == 1
    assert cov.loc["r", "n_out_of_support"] == 0 and cov.loc["r", "p_value"] < 1e-50
    assert cov.loc["r", "tv_distance"] == pytest.approx(0.75)
    assert cov.loc["u", "tv_distance"] == pytest.approx(0.5 * (2 / n + 2 / n), abs=1e-12)


def test_coverage_frame_forgives_float32_rounding_at_the_support_edges():
    d = _dist()
    lo, hi = d.factor("r").support
    lo32, hi32 = float(np.float32(lo)), float(np.float32(hi))
    assert lo32 < lo and hi32 > hi  # the stored values really lie outside in float64
    n = 400
    meta = pd.DataFrame({"u": np.repeat([0.5, 1.5, 2.5, 3.5], n // 4),
                         "c": np.tile([0.0, 1.0], n // 2),
                         "r": np.repeat(np.array([lo32, 5.9, 6.1, hi32], np.float32), n // 4)})
    cov = coverage_frame(FakeReader(d, meta)).set_index("factor")
    assert cov.loc["r", "n_out_of_support"] == 0 and cov.loc["r", "p_value"] > 0.5
    meta["r"] = np.float32(lo - 1e-4)  # a real excursion is still caught
    assert coverage_frame(FakeReader(d, meta)).set_index("factor").loc["r", "n_out_of_support"] == n


def test_missing_factor_column_is_all_out_of_support():
    meta = pd.DataFrame({"u": [0.5, 1.5], "c": [0.0, 1.0]})  # no "r"
    cov = coverage_frame(FakeReader(_dist(), meta)).set_index("factor")
    assert cov.loc["r", "n_out_of_support"] == 2 and cov.loc["r", "p_value"] == 0.0


def test_shifted_samples_give_a_tiny_p_value_for_that_factor_only():
    from synth.eye_generator import sample_scenes

    default = default_eye_distribution()
    shifted = default.reweight("gaze_pitch", [0] * 8 + [1] * 8, reason="shift", floor=0.001)
    meta = pd.DataFrame({k: v.astype(np.float32) for k, v in sample_scenes(shifted, 512, 0).items()})
    cov = coverage_frame(FakeReader(default, meta)).set_index("factor")
    assert cov.loc["gaze_pitch", "p_value"] < 1e-20
    assert cov.loc["gaze_pitch", "tv_distance"] > 0.4
    assert cov.drop("gaze_pitch")["p_value"].min() > 1e-6


def test_frame_module_does_not_import_great_expectations():
    code = "import sys, expectations.frame; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0
