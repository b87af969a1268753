"""Local Prefect and MLflow servers on the embedded stores: started as child processes,
waited on until healthy, stopped cleanly. Used by ``synthloop ui`` and, for the Prefect API
alone, by ``synthloop loop`` and ``demo`` (and the tests).

Each child dies with the command that started it, even on ``kill -9`` (Linux: a
parent-death signal), and a port that something else already listens on is refused
before starting: a server only counts as ours while our child is alive.

Facts from ../shared/notes/stack.md: the Prefect UI only finds its API on a non-default
port when PREFECT_SERVER_API_PORT is set (``--port`` alone leaves the UI calling 4200);
the MLflow server needs MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (2.4 GiB otherwise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
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

LOCAL = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int, name: str, option: str) -> None:
    """Refuse a port another process listens on, so that health checks never see a
    stranger's server and nothing is printed that points at it."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise ServiceError(f"127.0.0.1:{port} is already in use ({e.strerror}); another "
                               f"{name} or other server listens there: choose a free port with "
                               f"{option}") from None


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int):
    """A ``preexec_fn``: the child gets SIGTERM when the process that started it exits,
    however it exits (Linux). Elsewhere the child is only stopped by a clean exit."""
    libc_name = ctypes.util.find_library("c")

    def preexec() -> None:
        os.setsid()  # its own process group: stopping it stops its workers too
        if libc_name:
            ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec if sys.platform.startswith("linux") else os.setsid


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent(os.getpid()))


@dataclass
class Server:
    name: str
    url: str
    health: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def healthy(self) -> bool:
        if self.proc.poll() is not None:  # whatever answers the port now is not ours
            return False
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


def _prefect_env(settings: Settings, port: int, host: str = LOCAL) -> dict[str, str]:
    home = settings.prefect_dir
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)  # the server must not point at another one
    return env


def advertised_url(host: str, port: int) -> str:
    """The address other processes reach a server on: itself, or this machine's name when
    it listens on every interface (workers on other hosts)."""
    name = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    return f"http://{name}:{port}"


def start_prefect(settings: Settings, port: int, host: str = LOCAL,
                  database_env: dict[str, str] | None = None) -> Server:
    """The Prefect server and dashboard; ``database_env`` points it at PostgreSQL
    (:meth:`synthloop.scaleout.PostgresStores.prefect_server_env`), else its SQLite file
    under the project home."""
    check_port_free(port, "Prefect", "--prefect-port")
    log = settings.root / "logs" / "prefect-server.log"
    env = {**_prefect_env(settings, port, host), **(database_env or {})}
    proc = _spawn([_bin("prefect"), "server", "start"], env, log)
    url = advertised_url(host, port)
    return Server("Prefect", url, f"http://127.0.0.1:{port}/api/health", proc, log,
                  {"PREFECT_API_URL": f"{url}/api"})


def start_prefect_api(settings: Settings) -> Server:
    """The Prefect API alone (no UI) on a free port, for one command's flow runs: what
    Prefect's own ephemeral server runs, but as our child, so that it dies with us."""
    port = free_port()
    env = {**_prefect_env(settings, port), "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1"}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    log = settings.root / "logs" / "prefect-api.log"
    proc = _spawn(cmd, env, log)
    url = f"http://127.0.0.1:{port}"
    return Server("Prefect", url, f"{url}/api/health", proc, log, {"PREFECT_API_URL": f"{url}/api"})


def start_mlflow(settings: Settings, port: int, host: str = LOCAL, backend: str | None = None) -> Server:
    """An MLflow server on ``backend`` (default: the project's store), proxying
    ``<home>/mlartifacts``: clients upload artifacts through the server and need no
    shared disk. The embedded store's experiments that still name that folder by a
    ``file://`` path get its ``mlflow-artifacts:`` address first, so that runs created
    through the server upload through it (:mod:`synthloop.tracking`)."""
    from synthloop.tracking import move_artifacts_behind_server

    check_port_free(port, "MLflow", "--mlflow-port")
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    backend = backend or settings.tracking_uri
    move_artifacts_behind_server(backend, settings.artifact_root)
    # the store URI (it may hold a password) goes by environment, not on the command line
    # that every local user can read in the process list
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "MLFLOW_BACKEND_STORE_URI": backend}
    log = settings.root / "logs" / "mlflow-server.log"
    cmd = [_bin("mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1",
           "--artifacts-destination", str(settings.artifact_root)]
    if host != LOCAL:  # MLflow's host-header check only admits localhost by default
        cmd += ["--allowed-hosts", "*"]
    proc = _spawn(cmd, env, log)
    url = advertised_url(host, port)
    return Server("MLflow", url, f"http://127.0.0.1:{port}/health", proc, log,
                  {"SYNTHLOOP_MLFLOW_URI": url})


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
