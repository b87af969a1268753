"""`synthloop generate --workers`: the batch's shards rendered by a local Dask cluster are
the in-process batch, byte for byte; what cannot fan out is refused before any work; the
workers import the renderer as they start and the writer never imports it."""

import subprocess
import sys
from pathlib import Path

import pytest

from synthloop.taskspec import GenerateOptions
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


@pytest.mark.slow  # starts a Dask cluster of one process
def test_local_workers_import_the_shard_modules_before_the_first_shard():
    from synthloop.dask_cluster import WORKER_EXIT, client_shard_map
    from tests.dask_probe import imported

    names = ["synth.eye_scenes", WORKER_EXIT, "synth.face_generator"]
    with client_shard_map(1, preload=("synth.eye_scenes",)) as map_shards:
        [seen] = list(map_shards(imported, [names]))
    assert seen == {"synth.eye_scenes": True, WORKER_EXIT: True, "synth.face_generator": False}


@pytest.mark.slow  # starts a Dask cluster of one process that imports torch
def test_workers_render_eye_and_face_shards_without_importing_pandas(tmp_path):
    """Shard jobs send their metadata rows back as plain columns, so a worker never pays
    pandas' import (~0.25 s of its start-up, on the critical path of every fanned-out batch)."""
    from synth.eye_distribution import default_eye_distribution
    from synth.eye_scenes import CPU_CHUNK
    from synth.face_distribution import default_face_distribution
    from synth.face_fallback import fallback_face_model
    from synth.face_model import model_fingerprint
    from synth.generate import eye_shard_jobs, render_eye_shard
    from synth.generate_faces import FaceShardJob, render_face_shard
    from synthloop.dask_cluster import client_shard_map
    from synthloop.gaze.spec import EyeBatchGenerator
    from synthloop.landmarks.spec import FaceBatchGenerator
    from tests.dask_probe import render_then_imported

    (tmp_path / "eyes" / "shards").mkdir(parents=True)
    (tmp_path / "faces" / "shards").mkdir(parents=True)
    [eye_job] = eye_shard_jobs(str(tmp_path / "eyes"), default_eye_distribution(), 64, 1, 64,
                               "cpu", False, CPU_CHUNK)
    face_job = FaceShardJob(str(tmp_path / "faces"), default_face_distribution().dumps(), 2, 1, 2, 0,
                            model_fingerprint=model_fingerprint(fallback_face_model()))
    names = ["pandas", "synth.eye_generator", "synth.face_generator"]
    modules = (*EyeBatchGenerator.shard_modules, *FaceBatchGenerator.shard_modules)
    with client_shard_map(1, preload=modules) as map_shards:
        seen = list(map_shards(render_then_imported, [(render_eye_shard, eye_job, names),
                                                      (render_face_shard, face_job, names)]))
    assert seen == [{"pandas": False, "synth.eye_generator": True, "synth.face_generator": True}] * 2


@pytest.mark.slow  # starts a Dask cluster of one process
def test_local_workers_run_dask_monitors_at_relaxed_intervals():
    from synthloop.dask_cluster import QUIET_MONITORS, client_shard_map
    from tests.dask_probe import dask_settings

    with client_shard_map(1) as map_shards:
        [seen] = list(map_shards(dask_settings, [list(QUIET_MONITORS)]))
    assert seen == QUIET_MONITORS


@pytest.mark.slow  # starts a Dask cluster of one process
def test_local_workers_do_not_profile_their_tasks():
    from synthloop.dask_cluster import client_shard_map
    from tests.dask_probe import periodic_callbacks

    with client_shard_map(1) as map_shards:
        [seen] = list(map_shards(periodic_callbacks, [None]))
    assert "heartbeat" in seen  # the probe sees the worker's periodic work
    assert "profile" not in seen and "profile-cycle" not in seen


@pytest.mark.slow  # starts (and fails to start) Dask clusters
def test_a_cluster_that_cannot_start_fails_the_first_map_not_the_block():
    from synthloop.dask_cluster import client_shard_map

    with (pytest.raises(RuntimeError, match="failed to start"),
          client_shard_map(1, preload=("synthloop.no_such_module",)) as map_shards):
        list(map_shards(str, [1]))
    with client_shard_map(1, preload=("synthloop.no_such_module",)):
        pass  # nothing asked the cluster for work: its failed start is nobody's error


@pytest.mark.slow  # a process pool whose worker imports torch
def test_the_writer_of_a_fanned_out_batch_never_imports_torch_or_pandas(tmp_path):
    """The process that plans and assembles a fanned-out batch leaves the renderer (and
    its ~1.4 s torch import) to the processes that render the shards, and writes the
    metadata table with pyarrow alone (pandas: ~0.25 s more)."""
    code = f"""
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor
from synth.generate import generate_batch
if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        generate_batch({str(tmp_path / 'fan')!r}, n=300, seed=5, compiled=False, shard_size=128,
                       map_shards=lambda fn, jobs: pool.map(fn, jobs))
    print("torch" in sys.modules, "pandas" in sys.modules)
"""
    script = tmp_path / "fan_out.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=Path.cwd())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
    from synth.generate import generate_batch

    generate_batch(tmp_path / "stream", n=300, seed=5, compiled=False, shard_size=128)
    assert batch_digest(tmp_path / "fan") == batch_digest(tmp_path / "stream")


@pytest.mark.parametrize("n,shard_size,fan_out_from,cores,expected", [
    (100_000, 4096, 80_000, 2, 2),    # large enough: one worker per core
    (200_000, 4096, 80_000, 16, 16),
    (79_999, 4096, 80_000, 2, 0),     # below the task's threshold: in this process
    (100_000, 4096, None, 2, 0),      # the task never fans out by default (a GPU renderer)
    (100_000, 4096, 80_000, 1, 0),    # one core: nothing to gain
    (100_000, 4096, 80_000, None, 0),  # unknown core count
    (4096, 4096, 2048, 2, 0),         # one shard: nothing to share
    (5000, 4096, 2048, 8, 2),         # no more workers than shards
])
def test_default_workers_fan_out_only_where_it_pays(n, shard_size, fan_out_from, cores, expected):
    from synthloop.dask_cluster import default_workers

    assert default_workers(n, shard_size, fan_out_from, cores) == expected


def test_generate_fans_out_by_default_only_from_the_tasks_threshold(tmp_path, monkeypatch):
    from synthloop.gaze.spec import EyeBatchGenerator

    calls = []
    monkeypatch.setattr("synthloop.dask_cluster.default_workers",
                        lambda n, size, start, cores: calls.append((n, size, start)) or 0)
    r = run_cli("generate", "-n", "300", "--seed", "0", "--out", str(tmp_path / "a"))
    assert r.returncode == 0 and "worker processes" not in r.stderr
    assert calls == [(300, 4096, 80_000)]
    r = run_cli("generate", "-n", "300", "--seed", "0", "--out", str(tmp_path / "b"), "--workers", "0")
    assert r.returncode == 0 and len(calls) == 1  # an explicit count is not second-guessed
    assert EyeBatchGenerator(GenerateOptions(device="cuda")).fan_out_from is None


@pytest.mark.slow  # starts a Dask cluster of two processes
def test_a_large_face_batch_fans_out_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    r = run_cli("generate", "--task", "landmarks", "-n", "2048", "--seed", "2", "--shard-size", "1024",
                "--out", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    assert "rendering 2 shards on 2 worker processes (Dask) (the default for a batch this size" in r.stderr
