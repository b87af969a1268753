"""`synthloop loop` end to end in subprocesses: the JSON contract, and a loop killed
(SIGKILL, the loop's process alone, as a user or an OOM killer does) in the middle of a
round, or at a random moment, that leaves no server behind and, run again, completes with
exactly the lineage of a loop that was never interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import random
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


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc: the loop's Prefect server and the
    server's workers)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parents.items() if p in frontier]
        found += kids
        frontier = kids
    return found


def _assert_gone(pids: list[int], timeout: float = 30.0) -> None:
    """Every process in ``pids`` has exited (signal 0 probes without killing; a zombie
    waiting for init counts as exited)."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive:
        alive = [p for p in alive if _alive(p)]
        if alive and time.monotonic() > deadline:
            for p in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)  # fail, but leave nothing running
            raise AssertionError(f"processes {alive} outlived the loop's kill -9")
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_loop_alone(proc: subprocess.Popen) -> None:
    """SIGKILL the loop's own process, not its group: its children must not need help."""
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _assert_gone(kids)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, sim_target) -> dict:
    """The loop run once, uninterrupted: what every interrupted run must end with."""
    t0 = time.monotonic()
    res = _finish(tmp_path_factory.mktemp("whole"), sim_target)
    res["_seconds"] = time.monotonic() - t0
    return res


def _assert_same_lineage(resumed: dict, whole: dict) -> None:
    for key in ("loop_id", "final_real_error"):
        assert resumed[key] == whole[key]
    keys = ("round", "distribution_id", "batch_id", "real_error")
    assert [{k: r[k] for k in keys} for r in resumed["rounds"]] == \
        [{k: r[k] for k in keys} for r in whole["rounds"]]


def _start(home: Path, target: Path) -> subprocess.Popen:
    return subprocess.Popen(_cmd(target), env=_env(home), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_killed_loop_resumes_with_the_same_lineage(tmp_path, sim_target, whole):
    assert [r["round"] for r in whole["rounds"]] == [0, 1]
    assert whole["final_real_error"] == whole["rounds"][-1]["real_error"]
    assert whole["mode"] == "closed"

    home = tmp_path / "b"
    proc = _start(home, sim_target)
    deadline = time.monotonic() + 400
    try:
        # mid-round: round 1 has a checkpoint on disk but has not finished training
        while not list(home.glob("loops/*/round-01/model/last.pt")):
            assert proc.poll() is None, "the loop ended before it could be interrupted"
            assert time.monotonic() < deadline, "round 1 never started training"
            time.sleep(0.2)
        assert _children(proc.pid), "the loop runs its Prefect server as its child"
    finally:
        _kill_loop_alone(proc)
    _assert_same_lineage(_finish(home, sim_target), whole)


def test_a_loop_killed_at_a_random_moment_resumes_with_the_same_lineage(tmp_path, sim_target, whole):
    """The moment is drawn from the uninterrupted run's duration; the seed is printed
    (and can be set with SYNTHLOOP_KILL_SEED) so a failure can be replayed."""
    seed = int(os.environ.get("SYNTHLOOP_KILL_SEED", random.SystemRandom().randrange(10**6)))
    moment = random.Random(seed).uniform(0.05, 0.95) * whole["_seconds"]
    print(f"SYNTHLOOP_KILL_SEED={seed}: kill -9 after {moment:.1f} s of ~{whole['_seconds']:.0f} s")
    home = tmp_path / "c"
    proc = _start(home, sim_target)
    try:
        time.sleep(moment)
    finally:
        if proc.poll() is None:
            _kill_loop_alone(proc)
    _assert_same_lineage(_finish(home, sim_target), whole)
