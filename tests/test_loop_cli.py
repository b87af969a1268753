"""`synthloop loop` end to end in subprocesses: the JSON contract, and a loop killed
(SIGKILL) in the middle of a round that, run again, completes with exactly the lineage
of a loop that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# slow: three whole loops in subprocesses (minutes)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--rounds", "2", "--n-per-round", "256", "--steps-per-round", "160", "--seed", "0",
        "--no-early-stop", "--json"]


@pytest.fixture(scope="module")
def sim_target(tmp_path_factory):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path_factory.mktemp("target") / "sim", 120, 5, labeled=True)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SYNTHLOOP_"))}
    env.update(SYNTHLOOP_HOME=str(home), OMP_NUM_THREADS="1")
    return env


def _cmd(target: Path) -> list[str]:
    return [sys.executable, "-m", "synthloop.cli", "loop", "--real", str(target), *ARGS]


def _finish(home: Path, target: Path) -> dict:
    r = subprocess.run(_cmd(target), env=_env(home), cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _assert_group_gone(pgid: int, timeout: float = 30.0) -> None:
    """Every process of the killed group has exited (signal 0 probes without killing)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)  # fail, but leave nothing running
            raise AssertionError(f"processes of group {pgid} outlived the kill")
        time.sleep(0.2)


def test_killed_loop_resumes_with_the_same_lineage(tmp_path, sim_target):
    whole = _finish(tmp_path / "a", sim_target)
    assert [r["round"] for r in whole["rounds"]] == [0, 1]
    assert whole["final_real_error"] == whole["rounds"][-1]["real_error"]
    assert whole["mode"] == "closed"

    home = tmp_path / "b"
    # its own process group: the loop's ephemeral Prefect server (a uvicorn child) must
    # die with it, or it outlives the test
    proc = subprocess.Popen(_cmd(sim_target), env=_env(home), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    try:
        # mid-round: round 1 has a checkpoint on disk but has not finished training
        while not list(home.glob("loops/*/round-01/model/last.pt")):
            assert proc.poll() is None, "the loop ended before it could be interrupted"
            assert time.monotonic() < deadline, "round 1 never started training"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _assert_group_gone(proc.pid)
    resumed = _finish(home, sim_target)
    for key in ("loop_id", "final_real_error"):
        assert resumed[key] == whole[key]
    keys = ("round", "distribution_id", "batch_id", "real_error")
    assert [{k: r[k] for k in keys} for r in resumed["rounds"]] == \
        [{k: r[k] for k in keys} for r in whole["rounds"]]
