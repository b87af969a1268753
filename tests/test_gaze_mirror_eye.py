"""One eye side mirrored onto the other through the product: ``synthloop train --mirror-eye``
mirrors the real folders, the checkpoint records it, and ``synthloop evaluate`` shows the
model the same and scores in the data's own frame."""

import json

import numpy as np
import pytest
import torch

from analysis.gaze_eval import angular_errors_deg
from models.checkpoint import save_checkpoint
from models.registry import create_model
from synthloop.cli import main
from synthloop.errors import DataFormatError
from synthloop.gaze.few_labels import FewLabels
from tests.test_loop_real import _eyes


def _with_sides(folder, sides="LR"):
    meta = (folder / "meta.csv").read_text().splitlines()
    (folder / "meta.csv").write_text("\n".join([meta[0] + ",eye"] + [
        f"{row},{sides[i % len(sides)]}" for i, row in enumerate(meta[1:])]) + "\n")
    return folder


def test_few_labels_mirror_the_named_side(tmp_path):
    folder = _with_sides(_eyes(tmp_path / "real", n=16, subjects=2), sides="LLR")
    plain = FewLabels.read(str(folder), None, 0.5, 8, seed=0)
    mirrored = FewLabels.read(str(folder), None, 0.5, 8, seed=0, mirror_eye="R")
    # the same eyes in the same order (people and selection as without mirroring)
    assert mirrored.people == plain.people and len(mirrored.images) == len(plain.images)
    flipped = np.array([not np.array_equal(a, b) for a, b in
                        zip(mirrored.images, plain.images, strict=True)])
    assert flipped.any() and not flipped.all()
    np.testing.assert_array_equal(mirrored.images[flipped], plain.images[flipped][:, :, ::-1])
    np.testing.assert_array_equal(mirrored.pitchyaw[flipped, 1], -plain.pitchyaw[flipped, 1])
    np.testing.assert_array_equal(mirrored.pitchyaw[~flipped], plain.pitchyaw[~flipped])
    np.testing.assert_array_equal(mirrored.pitchyaw[:, 0], plain.pitchyaw[:, 0])
    bare = _eyes(tmp_path / "bare", n=8, subjects=2)
    with pytest.raises(DataFormatError, match="needs an 'eye' column") as e:
        FewLabels.read(str(bare), None, 0.5, 8, seed=0, mirror_eye="L")
    assert e.value.path == bare


def _model(out, side):
    torch.manual_seed(0)
    net = create_model("gaze_resnet_s", widths=(8,), depths=(1,), feature_dim=16)
    config = {"model": "gaze_resnet_s", "task": "gaze"}
    if side:
        config["task_kwargs"] = {"mirror_eye": side}
    save_checkpoint(out / "best.pt", net, None, None, 3, config)
    return net.eval()


def test_evaluate_mirrors_the_side_the_checkpoint_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_HOME", str(tmp_path / "home"))
    data = _with_sides(_eyes(tmp_path / "real", n=12, subjects=3), sides="LLR")
    net = _model(tmp_path / "m", "R")
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["mirror_eye"] == "R" and res["n"] == 12
    # by hand: R patches (every third) mirrored in, their yaw negated back out
    from realdata.eyes import read_eye_folder

    eyes = read_eye_folder(data)
    x = eyes.images.copy()
    right = np.array([s == "R" for s in eyes.sides])
    x[right] = x[right][:, :, ::-1]
    with torch.no_grad():
        pred = net(torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)).pitchyaw.double().numpy()
    pred[right, 1] *= -1
    want = angular_errors_deg(pred, eyes.pitchyaw).mean()
    assert res["mean_angular_error_deg"] == pytest.approx(want, abs=1e-3)
    # the plain report says so too
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(data)]) == 0
    assert "eyes of side R mirrored onto the other's" in capsys.readouterr().out
    # a folder that cannot say which eye a patch is gets a clear refusal
    bare = _eyes(tmp_path / "bare", n=6, subjects=3)
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(bare), "--json"]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and "needs an 'eye' column" in err


def test_train_refuses_a_target_without_sides_before_making_a_batch(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SYNTHLOOP_HOME", str(home))
    target = _eyes(tmp_path / "target", n=8, subjects=2)
    out = tmp_path / "ckpt"
    code = main(["train", "--task", "gaze", "--method", "source_only", "--target", str(target),
                 "--mirror-eye", "L", "--steps", "1", "--seed", "0", "--n-source", "8",
                 "--out", str(out), "--no-register"])
    assert code == 2 and "needs an 'eye' column" in capsys.readouterr().err
    batches = home / "batches"
    assert not out.exists() and (not batches.exists() or not any(batches.iterdir()))
    code = main(["train", "--task", "landmarks", "--method", "source_only", "--mirror-eye", "L",
                 "--steps", "1", "--seed", "0", "--out", str(out), "--no-register"])
    assert code == 2 and "applies to --task gaze" in capsys.readouterr().err


def test_evaluate_refuses_a_checkpoint_with_a_bad_side(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_HOME", str(tmp_path / "home"))
    data = _with_sides(_eyes(tmp_path / "real", n=6, subjects=3))
    _model(tmp_path / "m", "left")
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(data), "--json"]) == 2
    err = capsys.readouterr().err
    assert "best.pt" in err and "mirror_eye must be None, 'L' or 'R'" in err
