"""Two processes validating one batch at once (found by re-running the audit: two `train`
runs on one unvalidated source): Great Expectations' file context under the batch's
``validation/`` is used by one validation at a time, so both succeed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthloop.taskspec import GenerateOptions, get_task

REPO = Path(__file__).resolve().parents[2]

# slow: two processes each importing Great Expectations and building Data Docs
pytestmark = [pytest.mark.slow, pytest.mark.gx]


def test_two_validations_of_one_batch_at_once_both_succeed(tmp_path):
    batch = tmp_path / "batch"
    get_task("gaze").generator(GenerateOptions(compiled=False)).write(batch, n=64, seed=3, shard_size=32)
    go = tmp_path / "go"
    script = ("import sys, time, pathlib\n"
              "from synthloop.cli import main\n"
              "import expectations.validate, great_expectations\n"  # imports outside the race
              "pathlib.Path(sys.argv[3]).touch()\n"
              "go = pathlib.Path(sys.argv[2])\n"
              "while not go.exists(): time.sleep(0.001)\n"
              "sys.exit(main(['validate', sys.argv[1]]))\n")
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(batch), str(go), str(r)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert "accepted" in out
