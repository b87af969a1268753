"""The loop's real data: split by person when the folder names its people, by sample
otherwise, and the people are part of the data's fingerprint (the loop's identity)."""

import numpy as np
import pytest
from PIL import Image

from synthloop.loop.config import LoopConfig
from synthloop.loop.real import load_real


def _eyes(folder, n=40, subjects=8, meta=True):
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, meta_rows = [], []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (36, 60), dtype=np.uint8)).save(folder / f"images/{i}.png")
        rows.append(f"images/{i}.png,{rng.uniform(-0.2, 0.2):.4f},{rng.uniform(-0.3, 0.3):.4f}")
        meta_rows.append(f"images/{i}.png,p{i % subjects}")
    (folder / "labels.csv").write_text("image,pitch,yaw\n" + "\n".join(rows) + "\n")
    if meta:
        (folder / "meta.csv").write_text("image,subject\n" + "\n".join(meta_rows) + "\n")
    return folder


def test_the_split_keeps_every_person_on_one_side(tmp_path):
    real = load_real(LoopConfig(task="gaze", real=str(_eyes(tmp_path / "a"))))
    ana = {real.groups[i] for i in real.analysis}
    held = {real.groups[i] for i in real.holdout}
    assert ana.isdisjoint(held) and len(ana) == len(held) == 4
    d = real.describe()
    assert d["subjects_analysis"] == d["subjects_holdout"] == 4


def test_without_people_the_split_is_by_sample_and_the_people_change_the_fingerprint(tmp_path):
    plain = load_real(LoopConfig(task="gaze", real=str(_eyes(tmp_path / "b", meta=False))))
    assert plain.groups is None and "subjects_holdout" not in plain.describe()
    assert len(plain.holdout) == 20
    grouped = load_real(LoopConfig(task="gaze", real=str(_eyes(tmp_path / "c"))))
    assert grouped.fingerprint != plain.fingerprint  # same images and labels, people added


def test_one_person_cannot_be_split(tmp_path):
    from synthloop.errors import DataFormatError

    with pytest.raises(DataFormatError, match="only 1 subject"):
        load_real(LoopConfig(task="gaze", real=str(_eyes(tmp_path / "d", subjects=1))))


def test_bundled_real_data_is_what_lies_beside_the_project(tmp_path, monkeypatch):
    from synthloop.settings import get_settings
    from synthloop.taskspec import get_task

    monkeypatch.setenv("SYNTHLOOP_SHARED", str(tmp_path))
    assert get_task("gaze").bundled_real_data(get_settings()) is None  # a fresh clone
    _eyes(tmp_path / "data" / "real" / "columbia-gaze-eyes")
    assert get_task("gaze").bundled_real_data(get_settings()) == \
        tmp_path / "data" / "real" / "columbia-gaze-eyes"
    assert get_task("landmarks").bundled_real_data(get_settings()) is None
