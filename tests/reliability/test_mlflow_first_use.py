"""Two processes opening one fresh MLflow SQLite store at once (audit D7, #91): both
``tracking.configure`` calls succeed. Before the store's first use was serialised, one of
them failed on MLflow's schema creation ("table latest_metrics already exists", or an
Alembic version row that the other had already moved).

The workers are this file run as a script: real processes, importing MLflow first and
then lined up by a file barrier for each of several fresh databases, so their first uses
really overlap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROUNDS = 3  # fresh databases; unguarded, the race failed in about 2 of every 3 rounds

# slow: two processes importing MLflow, then each round's schema creation (~2 s) twice over
pytestmark = pytest.mark.slow


def _worker(workdir: Path, tag: str) -> None:
    from synthloop import tracking

    outcomes = []
    for i in range(ROUNDS):
        (workdir / f"ready-{i}-{tag}").touch()
        while not (workdir / f"go-{i}").exists():
            time.sleep(0.001)
        try:
            tracking.configure(f"sqlite:///{workdir / f'mlflow-{i}.db'}", "gaze", workdir / "art")
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 (the report says what failed)
            outcomes.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    print(json.dumps(outcomes))


def test_two_processes_configure_one_fresh_mlflow_store_at_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, __file__, str(tmp_path), tag], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for tag in "ab"]
    for i in range(ROUNDS):
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{i}-{t}").exists() for t in "ab"):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        (tmp_path / f"go-{i}").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert reports == [["ok"] * ROUNDS] * 2

    import mlflow

    try:  # each store holds the experiment once, and works
        for i in range(ROUNDS):
            client = mlflow.MlflowClient(f"sqlite:///{tmp_path / f'mlflow-{i}.db'}")
            exps = [e.name for e in client.search_experiments()]
            assert exps.count("synthloop-gaze") == 1
    finally:
        mlflow.set_tracking_uri("")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), sys.argv[2])
