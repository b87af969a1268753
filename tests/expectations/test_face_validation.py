"""Validation of face (landmarks) batches with Great Expectations: a clean batch is
accepted, each kind of defect fails under its own name, failing batches end quarantined.
On the built-in head, so it runs anywhere and fast."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expectations.face_frame import LANDMARK_STAT_COLUMNS, face_sample_frame
from expectations.validate import (
    FACE_COVERAGE_SUITE,
    FACE_SAMPLES_SUITE,
    load_suite_json,
    record_outcome,
    suite_parameter_names,
    suite_parameters,
    validate_batch,
)
from synth.face_distribution import FACE_FACTORS
from synth.face_fallback import fallback_face_model
from synth.generate_faces import FaceBatchWriter, generate_face_batch, read_face_labels
from synth.shards import BatchReader, QuarantinedBatchError, open_for_training

N = 96
SIZE = 128


@pytest.fixture(scope="module")
def clean_face_batch(tmp_path_factory) -> Path:
    _, path = generate_face_batch(tmp_path_factory.mktemp("faces") / "b", n=N, seed=0,
                                  model=fallback_face_model())
    return path


def rewrite(src: Path, out: Path, *,
            edit_images: Callable[[np.ndarray], None] | None = None,
            edit_meta: Callable[[pd.DataFrame], None] | None = None,
            edit_labels: Callable[[dict[str, np.ndarray]], None] | None = None) -> Path:
    """A copy of a face batch with edited content but valid checksums (written by the
    same FaceBatchWriter), so only the suites can tell."""
    r = BatchReader(src)
    images = r.images()
    meta = r.metadata.drop(columns=["sample"])
    labels = {k: np.array(v) for k, v in read_face_labels(src).items()}
    dense_ids = {k.removesuffix("_vertex_ids"): labels.pop(k) for k in list(labels)
                 if k.endswith("_vertex_ids")}
    mirror = {k.removesuffix("_mirror"): labels.pop(k) for k in list(labels) if k.endswith("_mirror")}
    for edit, arg in ((edit_images, images), (edit_meta, meta), (edit_labels, labels)):
        if edit:
            edit(arg)
    doc = json.loads((src / "landmarks" / "landmarks.json").read_text())
    with FaceBatchWriter(out, task="landmarks", dist=r.distribution, seed=r.manifest["seed"], n=r.n,
                         generator=r.manifest["generator"], dense_ids=dense_ids,
                         dense_mirror=mirror, model=doc["model"]) as w:
        w.add_labeled(images, meta, labels)
    return out


def assert_quarantined(batch: Path, report) -> None:
    assert not report.success
    assert record_outcome(batch, report) == "quarantined"
    assert BatchReader(batch).status.status == "quarantined"
    with pytest.raises(QuarantinedBatchError, match="quarantined"):
        open_for_training(batch)


# --- suites as stored ---------------------------------------------------------------------

def test_face_suites_check_every_factor_pose_and_landmark_column():
    samples = load_suite_json(FACE_SAMPLES_SUITE)
    assert samples["name"] == FACE_SAMPLES_SUITE
    assert load_suite_json(FACE_COVERAGE_SUITE)["name"] == FACE_COVERAGE_SUITE
    between = {e["kwargs"]["column"]: e["kwargs"] for e in samples["expectations"]
               if e["type"] == "expect_column_values_to_be_between"}
    for f in FACE_FACTORS:
        assert between[f]["min_value"] == {"$PARAMETER": f"min_{f}"}
        assert between[f]["max_value"] == {"$PARAMETER": f"max_{f}"}
    for label, f in (("yaw", "head_yaw"), ("pitch", "head_pitch"), ("roll", "head_roll")):
        assert between[label]["max_value"] == {"$PARAMETER": f"max_{f}"}
    assert between["vis68_x_max"]["max_value"] == {"$PARAMETER": "max_landmark_x_px"}
    schema = next(e for e in samples["expectations"] if e["type"] == "expect_table_columns_to_match_set")
    assert set(FACE_FACTORS) | set(LANDMARK_STAT_COLUMNS) <= set(schema["kwargs"]["column_set"])


def test_frame_and_parameters_come_from_the_batch(clean_face_batch):
    r = BatchReader(clean_face_batch)
    df = face_sample_frame(r)
    assert len(df) == N and set(LANDMARK_STAT_COLUMNS) <= set(df.columns)
    assert (df["labels_n_visible68"] == df["n_visible68"]).all()
    assert df["vis68_x_min"].min() >= 0 and df["vis68_y_max"].max() <= SIZE - 1
    params = suite_parameters(r)
    needed = suite_parameter_names(load_suite_json(FACE_SAMPLES_SUITE)) | suite_parameter_names(
        load_suite_json(FACE_COVERAGE_SUITE))
    assert needed <= params.keys()
    assert params["max_landmark_x_px"] == params["max_landmark_y_px"] == SIZE - 1


# --- clean batch ------------------------------------------------------------------------

@pytest.mark.gx
def test_clean_face_batch_passes_and_is_accepted(clean_face_batch):
    rep = validate_batch(clean_face_batch, docs=True)
    assert rep.success, rep.failing
    assert rep.statistics[FACE_SAMPLES_SUITE]["evaluated_expectations"] >= 70
    result = json.loads(rep.result_path.read_text())
    assert set(result["suites"]) == {FACE_SAMPLES_SUITE, FACE_COVERAGE_SUITE}
    assert len(result["coverage"]) == len(FACE_FACTORS)
    assert rep.docs_path is not None and "face_batch" in rep.docs_path.read_text()
    assert record_outcome(clean_face_batch, rep) == "accepted"
    assert open_for_training(clean_face_batch).n == N


# --- defects, one at a time ---------------------------------------------------------------

@pytest.mark.gx
def test_landmarks_shifted_out_of_the_crop_fail(clean_face_batch, tmp_path):
    def shift(labels):  # a crop-offset bug: every point half a crop to the right
        for k in ("points68", "dense500"):
            labels[k][:, :, 0] += SIZE / 2

    b = rewrite(clean_face_batch, tmp_path / "shift", edit_labels=shift)
    rep = validate_batch(b, docs=False)
    assert set(rep.failing) == {"expect_column_values_to_be_between(vis68_x_max)",
                                "expect_column_values_to_be_between(dense_outside_crop)"}
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_nan_and_hidden_landmarks_fail_finiteness_and_visibility(clean_face_batch, tmp_path):
    def damage(labels):
        labels["points68"][3, 30] = np.nan      # visible, but no coordinate
        labels["dense500"][3, 30] = np.nan
        labels["visible68"][10:70] = False      # a depth-test bug hides everything
        labels["dense500_visible"][10:70, :68] = False

    def recount(meta):  # the metadata agrees with the damaged labels
        meta.loc[10:69, "n_visible68"] = 0

    b = rewrite(clean_face_batch, tmp_path / "nan", edit_labels=damage, edit_meta=recount)
    rep = validate_batch(b, docs=False)
    assert set(rep.failing) == {"expect_column_values_to_be_between(visible_nonfinite)",
                                "expect_column_values_to_be_between(vis68_frac)",
                                "expect_column_mean_to_be_between(vis68_frac)"}
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_blank_images_fail_on_img_std(clean_face_batch, tmp_path):
    def blank(imgs):
        for k, i in enumerate(range(0, N, 16)):
            imgs[i] = 90 + k  # constant images, each a different grey (not duplicates)

    b = rewrite(clean_face_batch, tmp_path / "blank", edit_images=blank)
    rep = validate_batch(b, docs=False)
    assert rep.failing == ["expect_column_values_to_be_between(img_std)"]
    assert_quarantined(b, rep)


@pytest.mark.gx
def test_duplicated_images_and_mismatched_counts_fail(clean_face_batch, tmp_path):
    def duplicate(imgs):
        imgs[50:55] = imgs[0:5]

    def miscount(meta):
        meta.loc[7, "n_visible68"] += 1
        meta.loc[8, "head_yaw"] = 3.0  # rad: far outside +-75 deg

    b = rewrite(clean_face_batch, tmp_path / "dup", edit_images=duplicate, edit_meta=miscount)
    rep = validate_batch(b, docs=False)
    assert "expect_column_values_to_be_unique(image_hash)" in rep.failing
    assert "expect_column_pair_values_to_be_equal" in rep.failing
    assert "expect_column_values_to_be_between(head_yaw)" in rep.failing
    assert "coverage: n_out_of_support(head_yaw)=1 > 0" in rep.failing
    assert_quarantined(b, rep)
