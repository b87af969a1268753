"""The label-free recipe's two averages through the product: ``synthloop train --ema``
keeps, scores and saves a moving average of the weights, and ``synthloop evaluate
--tta-shift`` averages each answer over shifted patches; both refused clearly where they
do not apply."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import torch

from analysis.gaze_eval import angular_errors_deg
from models.checkpoint import load_checkpoint, save_checkpoint
from models.predict import predict_pitchyaw_shift_averaged
from models.registry import create_model
from tests.cli_inprocess import run_cli
from tests.test_loop_real import _eyes


@pytest.fixture()
def target(tmp_path):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path / "target", 16, 0)


def _train(target, out, *extra, task="gaze"):
    return run_cli("train", "--task", task, "--method", "source_only", "--target", target,
                   "--steps", "3", "--seed", "0", "--out", out, "--n-source", "32",
                   "--batch-size", "8", *extra)


def test_the_averaged_weights_are_what_is_saved_and_recorded(target, tmp_path, one_thread):
    from synthloop.settings import get_settings

    r = _train(target, tmp_path / "ckpt", "--ema", "0.5", "--no-register")
    assert r.returncode == 0, r.stderr
    ck = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert ck["train_config"]["ema"] == 0.5
    # the served weights are the average; the optimiser's own copy travels beside them
    served, online = ck["model_state"], ck["online_state"]
    assert served.keys() == online.keys()
    assert any(not torch.equal(served[k], online[k]) for k in served
               if served[k].is_floating_point())
    lines = dict(line.split("\t", 1) for line in r.stdout.strip().splitlines())
    uri = get_settings().tracking_uri
    assert mlflow.MlflowClient(uri, uri).get_run(lines["mlflow_run"]).data.params["ema"] == "0.5"


@pytest.mark.parametrize(("task", "decay", "says"), [
    ("gaze", "1", "must be between 0 and 1 (exclusive)"),
    ("gaze", "0", "must be between 0 and 1 (exclusive)"),
    ("gaze", "often", "is not a number"),
    ("landmarks", "0.99", "--ema applies to --task gaze"),
])
def test_an_impossible_decay_is_refused_before_any_work(target, tmp_path, _isolated_home, task,
                                                        decay, says):
    r = _train(target, tmp_path / "ckpt", "--ema", decay, "--no-register", task=task)
    assert r.returncode == 2 and says in r.stderr
    batches = _isolated_home / "batches"
    assert not (tmp_path / "ckpt").exists() and (not batches.exists() or not any(batches.iterdir()))


def _checkpoint(folder):
    torch.manual_seed(0)
    net = create_model("gaze_resnet_s", widths=(8,), depths=(1,), feature_dim=16)
    save_checkpoint(folder / "best.pt", net, None, None, 3, {"model": "gaze_resnet_s", "task": "gaze"})
    return net.eval()


def test_evaluate_averages_over_shifted_patches_and_says_so(tmp_path, _isolated_home):
    from realdata.eyes import read_eye_folder

    data = _eyes(tmp_path / "real", n=12, subjects=3)
    net = _checkpoint(tmp_path / "m")
    eyes = read_eye_folder(data)
    x = torch.from_numpy(eyes.images).unsqueeze(1)
    results = {}
    for shift in (0, 1):
        r = run_cli("evaluate", "--model", tmp_path / "m", "--data", data, "--json",
                    "--tta-shift", shift)
        assert r.returncode == 0, r.stderr
        results[shift] = json.loads(r.stdout.strip().splitlines()[-1])
        want = predict_pitchyaw_shift_averaged(net, x, shift, amp=False).double().numpy()
        assert results[shift]["mean_angular_error_deg"] == pytest.approx(
            angular_errors_deg(want, eyes.pitchyaw).mean(), abs=1e-4)
    assert "tta_shift" not in results[0] and results[1]["tta_shift"] == 1
    r = run_cli("evaluate", "--model", tmp_path / "m", "--data", data, "--tta-shift", 1)
    assert "shifted by up to 1 px per axis (9 passes)" in r.stdout
    assert results[0]["mean_angular_error_deg"] != results[1]["mean_angular_error_deg"]
    assert np.isfinite(results[1]["mean_angular_error_deg"])


@pytest.mark.parametrize(("args", "says"), [
    (["--tta-shift", "-1"], "must be >= 0"),
    (["--task", "landmarks", "--tta-shift", "1"], "--tta-shift (eye patches shifted"),
])
def test_evaluate_refuses_a_shift_it_cannot_apply(tmp_path, _isolated_home, args, says):
    data = _eyes(tmp_path / "real", n=6, subjects=3)
    _checkpoint(tmp_path / "m")
    r = run_cli("evaluate", "--model", tmp_path / "m", "--data", data, *args)
    assert r.returncode == 2 and says in r.stderr
