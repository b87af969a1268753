"""Local Prefect and MLflow servers on the embedded stores: started as child processes,
waited on until healthy, stopped cleanly. Used by ``synthloop ui`` (and the tests).

Facts from ../shared/notes/stack.md: the Prefect UI only finds its API on a non-default
port when PREFECT_SERVER_API_PORT is set (``--port`` alone leaves the UI calling 4200);
the MLflow server needs MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (2.4 GiB otherwise).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from synthloop.errors import ServiceError
from synthloop.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    health: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, escalate to SIGKILL: no orphaned workers remain."""
        if self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=timeout if sig != signal.SIGKILL else 5)
                return
            except subprocess.TimeoutExpired:
                continue


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def prefect_bin() -> str:
    return _bin("prefect")


def start_prefect(settings: Settings, port: int) -> Server:
    home = settings.prefect_dir
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)  # the server must not point at another one
    log = settings.root / "logs" / "prefect-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([_bin("prefect"), "server", "start"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    return Server("Prefect", url, f"{url}/api/health", proc, log, {"PREFECT_API_URL": f"{url}/api"})


def start_mlflow(settings: Settings, port: int) -> Server:
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = settings.root / "logs" / "mlflow-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", settings.tracking_uri,
           "--artifacts-destination", str(settings.artifact_root)]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    return Server("MLflow", url, f"{url}/health", proc, log, {"SYNTHLOOP_MLFLOW_URI": url})


def wait_healthy(servers: list[Server], timeout: float = 120.0) -> None:
    """Block until every server answers its health check; raise (naming the log) if one
    exits or the time runs out."""
    deadline = time.monotonic() + timeout
    pending = list(servers)
    while pending:
        for s in list(pending):
            if s.proc.poll() is not None:
                raise ServiceError(f"{s.name} server exited with code {s.proc.returncode}; see {s.log}")
            if s.healthy():
                pending.remove(s)
        if pending and time.monotonic() > deadline:
            names = ", ".join(f"{s.name} (log: {s.log})" for s in pending)
            raise ServiceError(f"not healthy after {timeout:.0f} s: {names}")
        if pending:
            time.sleep(0.5)
