"""`synthloop generate --workers`: the batch's shards rendered by a local Dask cluster are
the in-process batch, byte for byte; what cannot fan out is refused before any work."""


import pytest

from tests.batch_digest import batch_digest
from tests.cli_inprocess import run_cli


def test_a_task_that_cannot_fan_out_refuses_workers_before_rendering(tmp_path, monkeypatch):
    from synthloop.landmarks.spec import FaceBatchGenerator

    monkeypatch.setattr(FaceBatchGenerator, "fans_out", False)
    r = run_cli("generate", "--task", "landmarks", "-n", "4", "--seed", "0", "--out",
                str(tmp_path / "f"), "--workers", "2")
    assert r.returncode == 2 and "renders in one process" in r.stderr
    assert not (tmp_path / "f").exists()


def test_a_negative_worker_count_is_a_usage_error(tmp_path):
    r = run_cli("generate", "-n", "4", "--seed", "0", "--out", str(tmp_path / "g"), "--workers", "-1")
    assert r.returncode == 2 and "--workers" in r.stderr


@pytest.mark.slow  # starts a Dask cluster of two processes that import torch
def test_two_dask_workers_write_the_in_process_batch(tmp_path):
    one = run_cli("generate", "-n", "5000", "--seed", "4", "--out", str(tmp_path / "one"),
                  "--shard-size", "1024", "--workers", "0")
    two = run_cli("generate", "-n", "5000", "--seed", "4", "--out", str(tmp_path / "two"),
                  "--shard-size", "1024", "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert "rendering 5 shards on 2 worker processes (Dask)" in two.stderr
    assert one.stdout.split()[0] == two.stdout.split()[0]  # the same batch id
    assert batch_digest(tmp_path / "one") == batch_digest(tmp_path / "two")


@pytest.mark.slow  # a Dask cluster of two processes that load the face model
def test_two_dask_workers_write_the_in_process_face_batch(tmp_path):
    args = ("generate", "--task", "landmarks", "-n", "90", "--seed", "2", "--shard-size", "40")
    one = run_cli(*args, "--out", str(tmp_path / "one"))
    two = run_cli(*args, "--out", str(tmp_path / "two"), "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert "rendering 3 shards on 2 worker processes (Dask)" in two.stderr
    assert one.stdout.split()[0] == two.stdout.split()[0]
    digest = batch_digest(tmp_path / "two")
    assert "landmarks/points68.npy" in digest and batch_digest(tmp_path / "one") == digest
