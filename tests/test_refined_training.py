"""``synthloop train --refiner``: gaze training on synthetic eyes refined on the fly (the
GPU path, run here on the CPU), recorded in MLflow; a wrong refiner is refused first."""

from __future__ import annotations

import pytest
import torch

from tests.cli_inprocess import run_cli


@pytest.fixture()
def refiner_file(tmp_path):
    from models.checkpoint import save_checkpoint
    from models.refiner import Refiner, RefinerConfig

    torch.manual_seed(0)
    net = Refiner(RefinerConfig(width=4, blocks=1))
    torch.nn.init.normal_(net.out.weight, std=0.1)
    path = tmp_path / "refiner.pt"
    save_checkpoint(path, net, None, None, 0, {}, model_name="simgan_refiner")
    return path


@pytest.fixture()
def target(tmp_path):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path / "target", 16, 0)


def _train(target, out, *extra):
    return run_cli("train", "--method", "source_only", "--target", target, "--steps", "2",
                   "--seed", "0", "--out", out, "--n-source", "32", "--batch-size", "8",
                   "--no-register", *extra)


def test_training_refines_on_the_fly_and_records_the_refiner(refiner_file, target, tmp_path,
                                                              one_thread):
    import mlflow

    from synthloop.settings import get_settings

    r = _train(target, tmp_path / "ckpt", "--refiner", refiner_file)
    assert r.returncode == 0, r.stderr
    assert f"refining the synthetic eyes on the fly on cpu with {refiner_file}" in r.stderr
    lines = dict(line.split("\t", 1) for line in r.stdout.strip().splitlines())
    uri = get_settings().tracking_uri
    run = mlflow.MlflowClient(uri, uri).get_run(lines["mlflow_run"])
    assert run.data.params["refiner"] == str(refiner_file.resolve())
    assert (tmp_path / "ckpt" / "last.pt").is_file()


def test_a_file_that_is_not_a_refiner_is_refused_before_any_work(target, tmp_path,
                                                                 _isolated_home):
    from models.checkpoint import save_checkpoint
    from models.registry import create_model

    gaze = tmp_path / "gaze.pt"
    save_checkpoint(gaze, create_model("gaze_resnet_s"), None, None, 0, {},
                    model_name="gaze_resnet_s")
    r = _train(target, tmp_path / "ckpt", "--refiner", gaze)
    assert r.returncode == 2 and "not a refiner" in r.stderr and str(gaze) in r.stderr
    assert not (tmp_path / "ckpt").exists()
    batches = _isolated_home / "batches"
    assert not batches.exists() or not any(batches.iterdir())


def test_a_refiner_that_reads_the_head_yaw_is_refused_before_any_work(target, tmp_path,
                                                                     _isolated_home):
    from models.checkpoint import save_checkpoint
    from models.pose_mean_patch_refiner import PoseMeanPatchConfig, PoseMeanPatchRefiner

    net = PoseMeanPatchRefiner(PoseMeanPatchConfig(poses_deg=(-15.0, 15.0)))
    path = save_checkpoint(tmp_path / "pose.pt", net, None, None, 0, {}, model_name=net.model_name)
    r = _train(target, tmp_path / "ckpt", "--refiner", path)
    assert r.returncode == 2 and "'head_yaw'" in r.stderr and "synthloop refine" in r.stderr
    assert str(path) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ckpt").exists()


def test_landmark_training_points_to_the_refined_batch_instead(refiner_file, tmp_path):
    r = run_cli("train", "--task", "landmarks", "--method", "source_only", "--steps", "1",
                "--seed", "0", "--out", tmp_path / "ckpt", "--refiner", refiner_file)
    assert r.returncode == 2 and "synthloop refine" in r.stderr
    assert not (tmp_path / "ckpt").exists()
