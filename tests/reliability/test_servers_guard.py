"""Servers we start are ours (audit D8) and die with us (D12): a port another process
listens on is refused before anything starts or is printed, a health answer counts only
while our child is alive, and a child outlives a ``kill -9`` of its parent by seconds."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synthloop.cli import main
from synthloop.servers import Server, free_port

REPO = Path(__file__).resolve().parents[2]


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def stranger():
    """Someone else's server answering every health check with 200."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("which", ["--mlflow-port", "--prefect-port"])
def test_ui_refuses_a_taken_port_before_starting_or_printing(stranger, which, capsys, monkeypatch):
    ports = {"--mlflow-port": str(free_port()), "--prefect-port": str(free_port()), which: str(stranger)}
    spawned = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: spawned.append(a))
    code = main(["ui", *[x for kv in ports.items() for x in kv]])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # no URL, no export line pointing at the stranger
    last = err.strip().splitlines()[-1]
    assert f"127.0.0.1:{stranger} is already in use" in last and which in last
    assert spawned == []


def test_a_health_answer_does_not_count_once_our_child_has_exited(stranger, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    url = f"http://127.0.0.1:{stranger}"
    server = Server("MLflow", url, f"{url}/health", dead, tmp_path / "log")
    assert not server.healthy()


def _gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie (exited, not yet reaped by init) counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_server_child_dies_when_its_parent_is_killed(tmp_path):
    starter = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from synthloop.servers import _spawn\n"
        "p = _spawn([sys.executable, '-c', 'import time; time.sleep(120)'], {}, Path(sys.argv[1]))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter, str(tmp_path / "child.log")],
                              cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    child = int(parent.stdout.readline())
    try:
        assert not _gone(child, timeout=0.5)  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _gone(child), "the child outlived its parent's kill -9"
    finally:
        for pid in (child, parent.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
