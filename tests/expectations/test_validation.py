"""Validation of eye batches with Great Expectations: clean batches pass and are accepted,
each kind of defect fails under its own name, failing batches end quarantined in place."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expectations.validate import (
    COVERAGE_SUITE,
    MIN_COVERAGE_P_VALUE,
    SAMPLES_SUITE,
    load_suite_json,
    record_outcome,
    suite_parameter_names,
    suite_parameters,
    validate_batch,
)
from synth.distribution import SceneDistribution
from synth.eye_distribution import EYE_FACTORS, default_eye_distribution
from synth.eye_generator import EyeGenerator, sample_scenes
from synth.generate import eye_metadata, generate_batch
from synth.shards import BatchReader, BatchWriter, QuarantinedBatchError, open_for_training
from synthloop.errors import DataFormatError

N = 512


def write_eye_batch(
    out: Path, *, seed: int, n: int = N, scene_dist: SceneDistribution | None = None,
    manifest_dist: SceneDistribution | None = None,
    edit_images: Callable[[np.ndarray], None] | None = None,
    edit_meta: Callable[[pd.DataFrame], None] | None = None,
) -> Path:
    """A batch written with BatchWriter (valid checksums) whose content we control: scenes
    drawn from ``scene_dist`` but the manifest naming ``manifest_dist``, and whole-batch
    edits of the images and metadata before they are added."""
    manifest_dist = manifest_dist or default_eye_distribution()
    scene_dist = scene_dist or manifest_dist
    scenes = sample_scenes(scene_dist, n, seed)
    gen = EyeGenerator(scene_dist)
    images, geometry = [], []
    for chunk in gen.iter_chunks(n, seed, scenes=scenes):
        images.append(chunk.images)
        geometry.append(chunk.geometry)
    imgs = np.concatenate(images)
    meta = pd.DataFrame(eye_metadata(scenes, {k: np.concatenate([g[k] for g in geometry])
                                              for k in geometry[0]}))
    if edit_images:
        edit_images(imgs)
    if edit_meta:
        edit_meta(meta)
    with BatchWriter(out, task="gaze", dist=manifest_dist, seed=seed, n=n,
                     generator=gen.settings, shard_size=256) as w:
        w.add(imgs, meta)
    return out


@pytest.fixture(scope="module")
def clean_batch(tmp_path_factory) -> Path:
    _, path = generate_batch(tmp_path_factory.mktemp("clean") / "b", n=N, seed=0)
    return path


@pytest.fixture(scope="module")
def clean_report(clean_batch):
    return validate_batch(clean_batch, docs=True)


def assert_quarantined(batch: Path, report) -> None:
    assert not report.success
    assert record_outcome(batch, report) == "quarantined"
    assert batch.is_dir() and (batch / "manifest.json").is_file()  # kept, never deleted
    st = BatchReader(batch).status
    assert st.status == "quarantined" and list(st.failing) == report.failing
    with pytest.raises(QuarantinedBatchError, match="quarantined"):
        open_for_training(batch)


# --- suites as stored ---------------------------------------------------------------------

def test_suites_are_valid_json_with_expected_names():
    samples, coverage = load_suite_json(SAMPLES_SUITE), load_suite_json(COVERAGE_SUITE)
    assert samples["name"] == SAMPLES_SUITE and coverage["name"] == COVERAGE_SUITE
    types = {(e["type"], e["kwargs"].get("column")) for e in samples["expectations"]}
    for col in ("pitch", "yaw"):
        assert ("expect_column_values_to_not_be_null", col) in types
        assert ("expect_column_values_to_be_between", col) in types
    assert ("expect_column_values_to_be_unique", "image_hash") in types
    assert ("expect_table_row_count_to_equal", None) in types


def test_every_eye_factor_is_checked_against_its_support_from_the_batch():
    samples = load_suite_json(SAMPLES_SUITE)
    between = {e["kwargs"]["column"]: e["kwargs"] for e in samples["expectations"]
               if e["type"] == "expect_column_values_to_be_between"}
    for f in EYE_FACTORS:
        assert between[f]["min_value"] == {"$PARAMETER": f"min_{f}"}
        assert between[f]["max_value"] == {"$PARAMETER": f"max_{f}"}
    schema = next(e for e in samples["expectations"] if e["type"] == "expect_table_columns_to_match_set")
    assert set(EYE_FACTORS) <= set(schema["kwargs"]["column_set"])


def test_suite_parameters_come_from_the_batch(clean_batch):
    r = BatchReader(clean_batch)
    params = suite_parameters(r)
    needed = suite_parameter_names(load_suite_json(SAMPLES_SUITE)) | suite_parameter_names(
        load_suite_json(COVERAGE_SUITE))
    assert needed <= params.keys()
    assert params["n_samples"] == r.n == N
    lo, hi = r.distribution.factor("gaze_pitch").support
    # widened by one float32 ulp only (metadata is stored as float32)
    assert lo - 1e-6 < params["min_gaze_pitch"] < lo and hi < params["max_gaze_pitch"] < hi + 1e-6
    assert params["min_coverage_p_value"] == MIN_COVERAGE_P_VALUE


# --- clean batch ------------------------------------------------------------------------

@pytest.mark.gx
def test_clean_batch_passes_and_is_accepted(clean_batch, clean_report):
    rep = clean_report
    assert rep.success, rep.failing
    assert rep.failing == []
    assert rep.batch_id == BatchReader(clean_batch).batch_id
    assert rep.statistics[SAMPLES_SUITE]["unsuccessful_expectations"] == 0
    assert rep.statistics[SAMPLES_SUITE]["evaluated_expectations"] >= 40
    result = json.loads(rep.result_path.read_text())
    assert rep.result_path == clean_batch / "validation" / "result.json"
    assert result["success"] is True and set(result["suites"]) == {SAMPLES_SUITE, COVERAGE_SUITE}
    assert len(result["coverage"]) == len(EYE_FACTORS)
    assert rep.docs_path is not None and rep.docs_path.is_file()
    assert rep.docs_path.is_relative_to(clean_batch / "validation")
    assert "eye_batch" in rep.docs_path.read_text()
    # validation does not write the status; record_outcome does
    assert BatchReader(clean_batch).status.status == "unvalidated"
    assert record_outcome(clean_batch, rep) == "accepted"
    assert open_for_training(clean_batch).n == N


@pytest.mark.gx
def test_revalidation_replaces_the_previous_result(clean_batch, clean_report):
    again = validate_batch(clean_batch, docs=True)
    assert again.success and again.failing == [] and again.docs_path.is_file()
    runs = list((clean_batch / "validation" / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(runs) == 2  # one per suite: docs show the latest validation only


# --- defects, one at a time ---------------------------------------------------------------

@pytest.mark.gx
def test_nan_labels_fail_the_not_null_expectation_and_quarantine(tmp_path):
    def nan_pitch(meta):
        meta.loc[::37, "pitch"] = np.nan

    b = write_eye_batch(tmp_path / "nan", seed=1, edit_meta=nan_pitch)
    rep = validate_batch(b, docs=True)
    assert rep.failing == ["expect_column_values_to_not_be_null(pitch)"]
    assert rep.docs_path.is_file()
    result = json.loads(rep.result_path.read_text())  # NaN-bearing results serialise
    assert result["success"] is False and result["failing"] == rep.failing
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_blank_images_fail_on_img_std(tmp_path):
    def blank(imgs):
        for k, i in enumerate(range(0, N, 64)):
            imgs[i] = 90 + k  # constant images, each a different grey

    b = write_eye_batch(tmp_path / "blank", seed=2, edit_images=blank)
    rep = validate_batch(b, docs=False)
    assert rep.failing == ["expect_column_values_to_be_between(img_std)"]
    assert rep.docs_path is None
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_duplicated_images_fail_on_image_hash(tmp_path):
    def duplicate(imgs):
        imgs[100:110] = imgs[0:10]

    b = write_eye_batch(tmp_path / "dup", seed=3, edit_images=duplicate)
    rep = validate_batch(b, docs=False)
    assert rep.failing == ["expect_column_values_to_be_unique(image_hash)"]
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_shifted_distribution_fails_coverage_naming_the_factor(tmp_path):
    default = default_eye_distribution()
    shifted = default.reweight("gaze_pitch", [0] * 8 + [1] * 8, reason="shift", floor=0.001)
    b = write_eye_batch(tmp_path / "shift", seed=4, scene_dist=shifted, manifest_dist=default)
    rep = validate_batch(b, docs=False)
    # every sample is inside the support, so only the coverage suite can see it
    assert rep.statistics[SAMPLES_SUITE]["unsuccessful_expectations"] == 0
    assert len(rep.failing) == 1 and rep.failing[0].startswith("coverage: p_value(gaze_pitch)=")
    assert rep.failing[0].endswith(f"< {MIN_COVERAGE_P_VALUE:.3g}")
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_values_outside_the_support_fail_both_suites(tmp_path):
    def out_of_support(meta):
        meta.loc[5, "eye_openness"] = 2.0   # support is [0.55, 1.25]
        meta.loc[6, "blink"] = 0.5          # categorical: 0 or 1
        meta.loc[7, "head_roll"] = np.nan   # a NaN factor: between ignores it, coverage does not

    b = write_eye_batch(tmp_path / "oos", seed=5, edit_meta=out_of_support)
    rep = validate_batch(b, docs=False)
    assert "expect_column_values_to_be_between(eye_openness)" in rep.failing
    for f in ("eye_openness", "blink", "head_roll"):
        assert f"coverage: n_out_of_support({f})=1 > 0" in rep.failing
    assert "expect_column_values_to_be_between(blink)" not in rep.failing  # 0.5 is inside [0, 1]
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_row_count_is_the_manifests_n_passed_as_a_suite_parameter(tmp_path, clean_batch):
    b = tmp_path / "copy"
    shutil.copytree(clean_batch, b, ignore=shutil.ignore_patterns("validation"))
    rep = validate_batch(b, docs=False)
    result = json.loads(rep.result_path.read_text())
    row = next(r for r in result["suites"][SAMPLES_SUITE]["results"]
               if r["expectation_config"]["type"] == "expect_table_row_count_to_equal")
    assert row["expectation_config"]["kwargs"]["value"] == N and row["success"]
    assert row["result"]["observed_value"] == N
    assert not (b / "validation" / "gx").exists()  # docs=False writes no Data Docs


def test_truncated_shard_raises_data_format_error_naming_the_shard(tmp_path, clean_batch):
    b = tmp_path / "trunc"
    shutil.copytree(clean_batch, b, ignore=shutil.ignore_patterns("validation"))
    shard = b / "shards" / "images-00000.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="images-00000.npy") as ei:
        validate_batch(b)
    assert ei.value.path == shard
    assert not (b / "validation" / "status.json").exists()


@pytest.mark.gx
def test_missing_factor_column_fails_schema_support_and_coverage(tmp_path):
    def drop_column(meta):
        del meta["lash_mm"]

    b = write_eye_batch(tmp_path / "nocol", seed=6, edit_meta=drop_column)
    rep = validate_batch(b, docs=False)
    assert "expect_table_columns_to_match_set" in rep.failing
    assert any(x.startswith("expect_column_values_to_be_between(lash_mm): error:") for x in rep.failing)
    assert f"coverage: n_out_of_support(lash_mm)={N} > 0" in rep.failing
    assert any(x.startswith("coverage: p_value(lash_mm)=0 <") for x in rep.failing)
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_a_parameter_the_batch_cannot_fill_fails_instead_of_crashing(tmp_path, clean_batch, monkeypatch):
    import expectations.validate as v

    real = v.suite_parameters
    monkeypatch.setattr(v, "suite_parameters", lambda r: {k: x for k, x in real(r).items() if k != "min_head_roll"})
    b = tmp_path / "copy"
    shutil.copytree(clean_batch, b, ignore=shutil.ignore_patterns("validation"))
    rep = v.validate_batch(b, docs=False)
    assert not rep.success
    assert rep.failing[0].startswith("suite parameter min_head_roll: not provided")


def test_a_distribution_saved_before_the_v2_factors_still_generates_and_validates(tmp_path):
    """A version-1 eye distribution (no glasses, lid fold or lower lash line) renders those
    eyes as version 1 did: the factors are held off, and the batch passes validation."""
    from dataclasses import replace

    from synth.eye_distribution import ABSENT_MEANS_OFF

    new = default_eye_distribution()
    old = replace(new, factors=tuple(f for f in new.factors if f.name not in ABSENT_MEANS_OFF))
    _, path = generate_batch(tmp_path / "old", n=64, seed=2, dist=old)
    meta = BatchReader(path).metadata
    for name, value in ABSENT_MEANS_OFF.items():
        assert (meta[name] == value).all(), name
    report = validate_batch(path)
    assert report.success
