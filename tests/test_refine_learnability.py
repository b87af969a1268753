"""The label check of batches refined by a patch: a patch adds the same pattern whatever an
eye shows, so it is checked by whether fresh probes still learn the labels from the refined
eyes (``write_learnability``), and validation reads that table (``learnability_frame``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from expectations.refined import LEARNABILITY_FILE, LabelCheckUnavailable, learnability_frame
from models.mean_patch import fit_mean_patch
from models.refiner import Refiner, RefinerConfig
from models.refiners import reads_image_content


def test_patches_do_not_read_the_image_and_simgan_s_refiner_does():
    images = np.full((4, 36, 60), 100, np.uint8)
    assert not reads_image_content(fit_mean_patch(images, images + 20, 1.0))
    assert reads_image_content(Refiner(RefinerConfig(channels=1, width=4, blocks=1)))


@pytest.fixture()
def parent(tmp_path):
    from synth.generate import generate_batch
    from synth.shards import BatchReader

    _, path = generate_batch(tmp_path / "parent", n=60, seed=0, compiled=False)
    return BatchReader(path)


def test_both_probes_are_scored_on_the_same_held_out_eyes(parent, tmp_path, one_thread):
    from synthloop.gaze.refining import write_learnability

    images = parent.images()
    refiner = fit_mean_patch(images, np.clip(images.astype(int) - 40, 0, 255).astype(np.uint8), 1.0)
    lines = []
    path = write_learnability(parent, refiner, None, tmp_path / "learn", seed=0, steps=3,
                              log=lines.append)
    table = pd.read_csv(path)
    assert list(table.columns) == ["sample", "parent_error_deg", "refined_error_deg"]
    assert table["sample"].tolist() == list(range(9, 60, 10))  # every tenth eye, held out
    assert np.isfinite(table.to_numpy()).all() and (table.iloc[:, 1:] >= 0).all().all()
    assert "6 held out" in lines[0] and "54 unrefined and refined eyes" in lines[0]
    # validation reads it as the refined probe's error minus the unrefined one's
    (tmp_path / "batch" / "refiner").mkdir(parents=True)
    (tmp_path / "batch" / LEARNABILITY_FILE).write_bytes(path.read_bytes())
    frame = learnability_frame(_reader(tmp_path / "batch", n=60))
    np.testing.assert_allclose(frame["relative_error_excess"],
                               (table["refined_error_deg"] - table["parent_error_deg"])
                               / table["parent_error_deg"].mean())
    assert frame["sample"].dtype == np.int64


def _reader(folder, n=10, listed=True):
    return SimpleNamespace(path=folder, n=n, extra_files=[LEARNABILITY_FILE] if listed else [])


def _table(folder, text):
    (folder / "refiner").mkdir(parents=True, exist_ok=True)
    (folder / LEARNABILITY_FILE).write_text(text)
    return folder


GOOD = "sample,parent_error_deg,refined_error_deg\n9,4.0,4.5\n"


@pytest.mark.parametrize(("text", "says"), [
    ("sample,parent_error_deg\n9,4.0\n", "missing refined_error_deg"),
    ("sample,parent_error_deg,refined_error_deg\n", "needs rows with columns"),
    ("sample,parent_error_deg,refined_error_deg\n9,4.0,nan\n", "finite and >= 0"),
    ("sample,parent_error_deg,refined_error_deg\n9,4.0,-1\n", "finite and >= 0"),
    ("sample,parent_error_deg,refined_error_deg\n9,0,1\n", "not all 0"),
    ("sample,parent_error_deg,refined_error_deg\n9,4.0,five\n", "not numbers"),
    ("sample,parent_error_deg,refined_error_deg\n10,4.0,4.5\n", "distinct indices"),
    ("sample,parent_error_deg,refined_error_deg\n9,4.0,4.5\n9,4.0,4.5\n", "distinct indices"),
    ("sample,parent_error_deg,refined_error_deg\n2.5,4.0,4.5\n", "distinct indices"),
])
def test_a_damaged_table_stops_the_check_and_names_the_file(tmp_path, text, says):
    folder = _table(tmp_path / "b", text)
    with pytest.raises(LabelCheckUnavailable, match=says) as e:
        learnability_frame(_reader(folder))
    assert str(folder / LEARNABILITY_FILE) in str(e.value)


def test_a_table_the_manifest_does_not_list_is_not_read(tmp_path):
    folder = _table(tmp_path / "b", GOOD)
    assert learnability_frame(_reader(folder))["relative_error_excess"].tolist() == [0.125]
    with pytest.raises(LabelCheckUnavailable, match="not among the batch's files"):
        learnability_frame(_reader(folder, listed=False))


def test_a_mutated_table_is_read_or_refused_naming_the_file(tmp_path):
    from hypothesis import given

    from tests.reliability.test_fuzz_readers import fuzz, mutated

    good = ("sample,parent_error_deg,refined_error_deg\n"
            + "".join(f"{i},{4 + i / 10},{4.5 + i / 9}\n" for i in range(9, 60, 10))).encode()
    folder = tmp_path / "b"
    (folder / "refiner").mkdir(parents=True)

    @fuzz(200)
    @given(data=mutated(good))
    def check(data):
        (folder / LEARNABILITY_FILE).write_bytes(data)
        try:
            frame = learnability_frame(_reader(folder, n=60))
        except LabelCheckUnavailable as e:
            assert str(folder / LEARNABILITY_FILE) in str(e) and "\n" not in str(e)
            return
        assert np.isfinite(frame["relative_error_excess"]).all()
        assert frame["sample"].between(0, 59).all() and frame["sample"].is_unique

    check()
