"""Pseudo-labels: unlabeled real eyes labeled with the mean answer of trained gaze models
(``synthloop pseudo-label``), written as a folder the readers and ``train --real-labeled``
take, atomically, without reading a real label."""

import json

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.registry import create_model
from realdata.eye_folder_writer import write_eye_folder
from realdata.eyes import EyeImages, read_eye_folder
from synthloop.cli import main
from synthloop.gaze.few_labels import FewLabels
from synthloop.gaze.pseudo_label import PSEUDO_NOTE, SPREAD_COLUMN
from tests.test_gaze_mirror_eye import _with_sides
from tests.test_loop_real import _eyes


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_written_folder_reads_back_as_it_was(tmp_path):
    rng = np.random.default_rng(3)
    eyes = EyeImages(rng.integers(0, 256, (5, 36, 60), dtype=np.uint8),
                     rng.uniform(-0.3, 0.3, (5, 2)).astype(np.float32),
                     tuple(f"orig/{i}.jpg" for i in range(5)), "somewhere",
                     headpose=rng.uniform(-0.5, 0.5, (5, 2)).astype(np.float32),
                     groups=("a", "a", "b", "c", "c"), meta={"head_deg": np.arange(5.0) * 15},
                     sides=("L", "R", "L", "R", "L"))
    back = read_eye_folder(write_eye_folder(tmp_path / "out", eyes, extra_files={"NOTE.md": "x"}))
    np.testing.assert_array_equal(back.images, eyes.images)
    np.testing.assert_array_equal(back.pitchyaw, eyes.pitchyaw)
    np.testing.assert_array_equal(back.headpose, eyes.headpose)
    assert back.groups == eyes.groups and back.sides == eyes.sides
    # the source path is text, so it is provenance rather than a slicing column
    assert list(back.meta) == ["head_deg"]
    np.testing.assert_array_equal(back.meta["head_deg"], eyes.meta["head_deg"])
    assert (tmp_path / "out" / "NOTE.md").read_text() == "x"
    bare = EyeImages(eyes.images[:2], None, eyes.paths[:2], "s")
    unlabeled = read_eye_folder(write_eye_folder(tmp_path / "bare", bare))
    assert unlabeled.pitchyaw is None and unlabeled.groups is None
    assert not (tmp_path / "bare" / "labels.csv").exists()


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    eyes = EyeImages(np.zeros((2, 36, 60), np.uint8), None, ("a", "b"), "s")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        write_eye_folder(tmp_path / "taken", eyes)
    assert _listing(tmp_path / "taken") == ["keep.txt"]
    with pytest.raises(FileNotFoundError):  # fails after the images are written
        write_eye_folder(tmp_path / "new", eyes, extra_files={"no/such/dir.txt": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no folder, no temp left


def _teacher(out, side, seed):
    torch.manual_seed(seed)
    net = create_model("gaze_resnet_s", widths=(8,), depths=(1,), feature_dim=16)
    config = {"model": "gaze_resnet_s", "task": "gaze",
              **({"task_kwargs": {"mirror_eye": side}} if side else {})}
    save_checkpoint(out / "best.pt", net, None, None, 3, config)
    return net.eval()


def _predict(net, images, mirrored):
    x = images.copy()
    x[mirrored] = x[mirrored][:, :, ::-1]
    with torch.no_grad():
        pred = net(torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)).pitchyaw.double().numpy()
    pred[mirrored, 1] *= -1
    return pred


def test_pseudo_labels_are_the_teachers_mean_in_the_data_s_frame(tmp_path, capsys):
    data = _with_sides(_eyes(tmp_path / "real", n=12, subjects=3), sides="LLR")
    plain, mirrored_r = _teacher(tmp_path / "a", None, 0), _teacher(tmp_path / "b", "R", 1)
    out = tmp_path / "pseudo"
    assert main(["pseudo-label", "--model", str(tmp_path / "a"), "--model", str(tmp_path / "b"),
                 "--data", str(data), "--out", str(out), "--tta-shift", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    real = read_eye_folder(data)
    right = np.array([s == "R" for s in real.sides])
    want = 0.5 * (_predict(plain, real.images, np.zeros(12, bool))
                  + _predict(mirrored_r, real.images, right))
    got = read_eye_folder(out)
    np.testing.assert_allclose(got.pitchyaw, want, atol=1e-5)
    assert not np.allclose(got.pitchyaw, real.pitchyaw, atol=1e-3)  # the real labels are not used
    np.testing.assert_array_equal(got.images, real.images)
    assert got.groups == real.groups and got.sides == real.sides
    assert got.meta[SPREAD_COLUMN].shape == (12,) and (got.meta[SPREAD_COLUMN] > 0).all()
    note = json.loads((out / PSEUDO_NOTE).read_text())
    assert note == {k: res[k] for k in note} and note["data_labels_ignored"] is True
    assert note["n"] == 12 and len(note["teachers"]) == 2
    # the student's reader takes the folder as labeled real eyes, people and all
    few = FewLabels.read(str(out), None, 0.5, 8, seed=0, mirror_eye="R")
    assert sorted(few.people) == ["p0", "p1", "p2"] and few.val is not None


def test_bad_teachers_or_folders_fail_cleanly(tmp_path, capsys):
    data = _eyes(tmp_path / "real", n=6, subjects=3)  # no eye column
    _teacher(tmp_path / "m", "R", 0)
    _teacher(tmp_path / "plain", None, 0)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    cases = [
        (["--model", str(tmp_path / "plain"), "--out", str(taken)], "taken"),
        (["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o1")], "nope"),
        (["--model", str(tmp_path / "m"), "--out", str(tmp_path / "o2")], "eye"),
    ]
    for extra, named in cases:
        assert main(["pseudo-label", "--data", str(data), *extra]) == 2
        assert named in capsys.readouterr().err
    assert _listing(taken) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "plain", "real", "taken"]
