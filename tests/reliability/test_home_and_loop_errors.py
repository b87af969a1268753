"""Bad input to the loop fails at once in one line (audit D10, D11): unreadable real data
and a read-only project home are reported before any server starts, and the storage
tasks never retry a failure that depends only on the input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from synthloop.cli import main

LOOP = ["loop", "--rounds", "1", "--n-per-round", "64", "--steps-per-round", "2"]


def _no_servers(monkeypatch):
    started = []
    import synthloop.servers as servers

    monkeypatch.setattr(servers, "_spawn", lambda *a, **k: started.append(a))
    return started


def test_bad_real_data_fails_in_one_line_before_prefect_starts(tmp_path, capsys, monkeypatch):
    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    (real / "labels.csv").write_text("image,pitch,yaw\nimages/a.png,nan,0.1\n")
    started = _no_servers(monkeypatch)
    code = main([*LOOP, "--real", str(real)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert started == []
    assert err[-1].startswith("synthloop loop: error: ") and "labels.csv:2" in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.fixture
def read_only_home(tmp_path):
    """A populated home on a read-only mount (root ignores file modes, so a bind mount
    when we are root; file modes otherwise)."""
    home = tmp_path / "home"
    for sub in ("batches", "outputs", "prefect"):
        (home / sub).mkdir(parents=True)
    if os.geteuid() != 0:
        home.chmod(0o555)
        yield home
        home.chmod(0o755)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(home), str(ro)], capture_output=True)
    if r.returncode != 0 or not shutil.which("umount"):
        pytest.skip(f"cannot make a read-only mount here: {r.stderr.decode().strip()}")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_a_read_only_home_fails_in_one_line_naming_it(read_only_home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_HOME", str(read_only_home))
    started = _no_servers(monkeypatch)
    real = tmp_path / "real"
    real.mkdir()
    code = main([*LOOP, "--real", str(real)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and started == []
    assert err[-1].startswith(f"synthloop loop: error: {read_only_home}: the project home is not writable")
    assert "SYNTHLOOP_HOME" in err[-1]


@pytest.mark.parametrize("error, retried", [
    ("DataFormatError", False), ("UsageError", False), ("CatalogConflict", False),
    ("QuarantinedBatchError", False), ("CatalogError", True), ("OperationalError", True)])
def test_storage_tasks_retry_only_what_may_pass_next_time(error, retried):
    pytest.importorskip("prefect")
    from prefect.states import Failed
    from sqlalchemy.exc import OperationalError

    from catalog.errors import CatalogConflict, CatalogError
    from realdata.errors import DataFormatError, UsageError
    from synth.shards import QuarantinedBatchError
    from tasks.retries import retry_unless_deterministic

    make = {"DataFormatError": lambda: DataFormatError(Path("x.csv"), "bad"),
            "UsageError": lambda: UsageError("bad option"),
            "CatalogConflict": lambda: CatalogConflict("batch", "b", {"n": (1, 2)}),
            "QuarantinedBatchError": lambda: QuarantinedBatchError("quarantined"),
            "CatalogError": lambda: CatalogError("server closed the connection"),
            "OperationalError": lambda: OperationalError("select", {}, Exception("locked"))}
    assert retry_unless_deterministic(None, None, Failed(data=make[error]())) is retried


def test_every_storage_task_of_the_loop_uses_the_retry_rule():
    pytest.importorskip("prefect")
    import tasks.batches
    import tasks.loop
    import tasks.tuning
    from tasks.retries import retry_unless_deterministic

    retrying = [t for mod in (tasks.loop, tasks.batches, tasks.tuning) for t in vars(mod).values()
                if getattr(t, "retries", 0)]
    assert len(retrying) >= 9
    assert all(t.retry_condition_fn is retry_unless_deterministic for t in retrying), \
        [t.name for t in retrying if t.retry_condition_fn is not retry_unless_deterministic]
