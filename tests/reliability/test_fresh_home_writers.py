"""Two processes on a fresh home at once (audit D7): the first open of each embedded
store (Optuna's, Prefect's, MLflow's) is serialised, so neither fails on, or has to retry
past, the other's half-created schema.

The workers are this file run as a script: real processes, lined up by a file barrier
for each of several fresh databases, so their schema creations really overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 5  # fresh databases per test: the unguarded race fails about 2 times in 3


def _worker(workdir: Path, tag: str) -> None:
    from synthloop.settings import Settings
    from synthloop.tuning.study import open_study

    outcomes = []
    for i in range(ROUNDS):
        home = workdir / f"home-{i}"
        (workdir / f"ready-{i}-{tag}").touch()
        while not (workdir / f"go-{i}").exists():
            time.sleep(0.001)
        try:
            open_study(Settings(home=home), "s", "minimize", seed=0)
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 (the report says what failed)
            outcomes.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    print(json.dumps(outcomes))


def test_two_processes_open_the_optuna_store_of_a_fresh_home_at_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, __file__, str(tmp_path), tag], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for tag in "ab"]
    for i in range(ROUNDS):
        (tmp_path / f"home-{i}").mkdir()
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{i}-{t}").exists() for t in "ab"):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        (tmp_path / f"go-{i}").touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert reports == [["ok"] * ROUNDS] * 2


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
    _worker(Path(sys.argv[1]), sys.argv[2])
