"""Two processes on a fresh home at once (audit D7): the first open of each embedded
store (Optuna's, MLflow's, Prefect's) is serialised, so neither fails on, or has to retry
past, the other's half-created schema. Unguarded, the MLflow and Optuna races failed in
about 2 of every 3 tries ("table latest_metrics already exists", a duplicate Alembic row).

The workers are this file run as a script: real processes, importing their libraries
first and then lined up by a file barrier for each of several fresh stores, so their
first uses really overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _open_optuna(workdir: Path, i: int) -> None:
    from synthloop.settings import Settings
    from synthloop.tuning.study import open_study

    open_study(Settings(home=workdir / f"home-{i}"), "s", "minimize", seed=0)


def _open_mlflow(workdir: Path, i: int) -> None:
    from synthloop import tracking

    tracking.configure(f"sqlite:///{workdir / f'mlflow-{i}.db'}", "gaze", workdir / "art")


STORES = {"optuna": (_open_optuna, 5), "mlflow": (_open_mlflow, 3)}  # opener, fresh stores


def _worker(store: str, workdir: Path, tag: str) -> None:
    opener, rounds = STORES[store]
    opener(workdir, -1)  # the imports, outside the race
    outcomes = []
    for i in range(rounds):
        (workdir / f"ready-{i}-{tag}").touch()
        while not (workdir / f"go-{i}").exists():
            time.sleep(0.001)
        try:
            opener(workdir, i)
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 (the report says what failed)
            outcomes.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    print(json.dumps(outcomes))


@pytest.mark.parametrize("store", ["optuna", pytest.param("mlflow", marks=pytest.mark.slow)])
def test_two_processes_open_one_fresh_store_at_once(store, tmp_path):
    rounds = STORES[store][1]
    procs = [subprocess.Popen([sys.executable, __file__, store, str(tmp_path), tag], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for tag in "ab"]
    for i in range(rounds):
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
    assert reports == [["ok"] * rounds] * 2
    if store == "mlflow":
        import mlflow

        try:  # each store holds the experiment once, and works
            for i in range(rounds):
                client = mlflow.MlflowClient(f"sqlite:///{tmp_path / f'mlflow-{i}.db'}")
                assert [e.name for e in client.search_experiments()].count("synthloop-gaze") == 1
        finally:
            mlflow.set_tracking_uri("")


@pytest.mark.slow
@pytest.mark.flow
def test_two_loops_start_on_one_fresh_home_at_once(tmp_path):
    """Both finish, with no task failure on the way (before: one open-loop task failed
    twice on MLflow's schema creation and passed only on its last retry)."""
    from synth.targets import write_simulated_target

    target = write_simulated_target(tmp_path / "target", 60, 5, labeled=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SYNTHLOOP_"))}
    env.update(SYNTHLOOP_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "synthloop.cli", "loop", "--real", str(target),
                               "--rounds", "1", "--n-per-round", "64", "--steps-per-round", "5",
                               "--seed", str(seed), "--json"], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for seed in (0, 1)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "Retrying" not in err, err[-3000:]
    loops = {json.loads(out.strip().splitlines()[-1])["loop_id"] for out, _ in results}
    assert len(loops) == 2


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
