"""``synthloop train --real-fraction``: the share of each batch taken from the labeled real
data reaches the training mix and is recorded; out-of-range values and a fraction without
real data are refused before any work."""

from __future__ import annotations

import json

import mlflow
import pytest

from tests.cli_inprocess import run_cli
from tests.test_loop_real import _eyes


@pytest.fixture()
def target(tmp_path):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path / "target", 16, 0)


def _train(target, out, *extra, task="gaze"):
    return run_cli("train", "--task", task, "--method", "source_only", "--target", target,
                   "--steps", "2", "--seed", "0", "--out", out, "--n-source", "32",
                   "--batch-size", "8", "--no-register", *extra)


def test_the_fraction_sets_the_real_eyes_per_batch_and_is_recorded(target, tmp_path, one_thread):
    from synthloop.settings import get_settings

    real = _eyes(tmp_path / "real", n=24, subjects=1)
    r = _train(target, tmp_path / "ckpt", "--real-labeled", real, "--real-fraction", "0.25")
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "ckpt" / "data.json").read_text())
    assert record["real_per_batch"] == 2  # a quarter of 8
    lines = dict(line.split("\t", 1) for line in r.stdout.strip().splitlines())
    uri = get_settings().tracking_uri
    assert mlflow.MlflowClient(uri, uri).get_run(lines["mlflow_run"]).data.params["real_per_batch"] == "2"


@pytest.mark.parametrize(("task", "fraction", "says"), [
    ("gaze", "0", "strictly between 0 and 1"),
    ("gaze", "1", "strictly between 0 and 1"),
    ("landmarks", "1", "must be in [0, 1)"),
])
def test_an_impossible_fraction_is_refused_before_any_work(target, tmp_path, _isolated_home,
                                                            task, fraction, says):
    real = _eyes(tmp_path / "real", n=8, subjects=1)
    r = _train(target, tmp_path / "ckpt", "--real-labeled", real, "--real-fraction", fraction,
               task=task)
    assert r.returncode == 2 and says in r.stderr and f"--real-fraction {float(fraction)}" in r.stderr
    assert not (tmp_path / "ckpt").exists()
    batches = _isolated_home / "batches"
    assert not batches.exists() or not any(batches.iterdir())


def test_a_fraction_without_real_data_is_refused(target, tmp_path):
    r = _train(target, tmp_path / "ckpt", "--real-fraction", "0.25")
    assert r.returncode == 2 and "give --real-labeled too" in r.stderr
    r = _train(target, tmp_path / "ckpt", "--real-fraction", "-0.5")
    assert r.returncode == 2 and "must be >= 0.0" in r.stderr
