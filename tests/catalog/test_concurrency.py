"""Two writer processes on one catalog lose nothing, and two processes opening a fresh
database at once both succeed (the migration race), on SQLite and on PostgreSQL.

The workers are this file run as a script (``python test_concurrency.py write URL TAG
DIR``): real processes with their own connections, as two Prefect workers would be. A
start barrier made of files lines them up, so their writes really overlap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog import Catalog  # imported before any barrier: the workers race on I/O only
from catalog.migrate import head_revision

# slow: real writer processes on SQLite and PostgreSQL
pytestmark = pytest.mark.slow

N_BATCHES = 150  # per writer
RUN_EVERY = 10  # one training run per this many batches
N_SHARED_DISTS = 3
N_SHARED_BATCHES = 10


def _run_workers(mode: str, url: str, workdir: Path, tags=("a", "b")) -> list[dict]:
    """Start one worker per tag, release them together, return their JSON reports."""
    procs = [subprocess.Popen([sys.executable, __file__, mode, url, tag, str(workdir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in tags]
    deadline = time.monotonic() + 60
    while not all((workdir / f"ready-{t}").exists() for t in tags):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    (workdir / "go").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"worker failed:\n{err}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


# ---------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_open_a_fresh_database_at_once(backend, request, tmp_path):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    reports = _run_workers("open", url, tmp_path)
    assert [r["revision"] for r in reports] == [head_revision()] * 2

    with Catalog(url) as cat:  # usable, and migrated exactly once
        cat.add_distribution("d", "d", "gaze", {})
        assert cat.get_distribution("d") is not None


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_writers_lose_nothing(backend, request, tmp_path):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    Catalog(url).close()  # the migration race has its own test; here only the writes race
    a, b = _run_workers("write", url, tmp_path)
    assert a["start"] < b["end"] and b["start"] < a["end"], "the writers did not overlap"

    with Catalog(url) as cat:
        batches = {x["id"]: x for x in cat.batches()}
        assert len(batches) == 2 * N_BATCHES + N_SHARED_BATCHES
        for tag in ("a", "b"):
            for i in range(N_BATCHES):
                row = batches[f"batch-{tag}-{i:03d}"]
                assert row["distribution_id"] == _dist_for(tag, i)
                assert row["seed"] == i
                assert row["status"] == ("accepted" if i % 2 == 0 else "pending")
            for i in range(RUN_EVERY - 1, N_BATCHES, RUN_EVERY):
                run = cat.get_training_run(f"run-{tag}-{i:03d}")
                assert run["status"] == "finished"
                assert run["batch_ids"] == sorted(_run_batches(tag, i))
                assert run["metrics"] == {"i": i}
        for k in range(N_SHARED_BATCHES):
            assert batches[f"batch-shared-{k}"]["status"] == "accepted"
        shared_runs = [cat.get_training_run(f"run-shared-{k}") for k in range(N_SHARED_BATCHES)]
        assert all(r is not None and r["status"] == "finished" for r in shared_runs)
        for k in range(N_SHARED_DISTS):
            assert cat.get_distribution(f"dist-shared-{k}")["content"] == {"k": k}


# ---------------------------------------------------------------------------- the workers


def _dist_for(tag: str, i: int) -> str:
    return f"dist-shared-{i % N_SHARED_DISTS}" if i % 2 else f"dist-{tag}-{i // 50}"


def _run_batches(tag: str, i: int) -> list[str]:
    own = [f"batch-{tag}-{j:03d}" for j in range(i - RUN_EVERY + 1, i + 1) if j % 2 == 0]
    return [*own, f"batch-shared-{i % N_SHARED_BATCHES}"]


def _wait_for_go(workdir: Path, tag: str) -> None:
    (workdir / f"ready-{tag}").touch()
    deadline = time.monotonic() + 60
    while not (workdir / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal within 60 s")
        time.sleep(0.002)


def _open_worker(url: str, tag: str, workdir: Path) -> dict:
    _wait_for_go(workdir, tag)
    start = time.monotonic()
    with Catalog(url) as cat:
        return {"revision": cat.revision, "seconds": time.monotonic() - start}


def _write_worker(url: str, tag: str, workdir: Path) -> dict:
    """Interleaves distributions, batches (own and shared), statuses and runs."""
    cat = Catalog(url)
    _wait_for_go(workdir, tag)
    start = time.time()
    sha = "0" * 64
    for i in range(N_BATCHES):
        k = i % N_SHARED_DISTS
        cat.add_distribution(f"dist-shared-{k}", "shared", "gaze", {"k": k})
        if i % 50 == 0:
            cat.add_distribution(f"dist-{tag}-{i // 50}", tag, "gaze", {"tag": tag, "i": i})
        cat.add_batch(f"batch-{tag}-{i:03d}", _dist_for(tag, i), i, 10, f"/b/{tag}/{i}", sha,
                      [{"path": "shards/images-00000.npy", "sha256": sha}])
        if i % 2 == 0:
            cat.set_batch_status(f"batch-{tag}-{i:03d}", "accepted", "ok")
        s = i % N_SHARED_BATCHES
        cat.add_batch(f"batch-shared-{s}", f"dist-shared-{s % N_SHARED_DISTS}", 1000 + s, 10,
                      f"/b/shared/{s}", sha, [])
        cat.set_batch_status(f"batch-shared-{s}", "accepted", "ok")
        if i % RUN_EVERY == RUN_EVERY - 1:
            run = f"run-{tag}-{i:03d}"
            cat.add_training_run(run, "gaze", "dann", {"i": i}, _run_batches(tag, i))
            cat.finish_training_run(run, checkpoint=f"/ckpt/{run}.pt", metrics={"i": i})
            j = (i // RUN_EVERY) % N_SHARED_BATCHES
            shared = f"run-shared-{j}"
            cat.add_training_run(shared, "gaze", "daln", {"j": j}, [f"batch-shared-{j}"])
            cat.finish_training_run(shared, checkpoint=f"/ckpt/{shared}.pt", metrics={"j": j})
    end = time.time()
    cat.close()
    return {"start": start, "end": end}


if __name__ == "__main__":
    mode, url, tag, workdir = sys.argv[1:5]
    worker = {"open": _open_worker, "write": _write_worker}[mode]
    print(json.dumps(worker(url, tag, Path(workdir))))
