"""Commands for the dashboards: ui (the Prefect and MLflow servers on the embedded
stores) and deploy (work pools, the deployments of prefect.yaml, a worker)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from synthloop.cli.common import EXIT_OK, positive_int, stop_on_sigterm
from synthloop.errors import ServiceError, UsageError


def cmd_ui(a: argparse.Namespace) -> int:
    """Prefect server + MLflow server, on the embedded stores or (``--database-url``) on
    PostgreSQL, until Ctrl-C."""
    import time

    stop_on_sigterm()
    from synthloop.scaleout import PostgresStores
    from synthloop.servers import check_port_free, start_mlflow, start_prefect, wait_healthy
    from synthloop.settings import get_settings

    if a.prefect_port == a.mlflow_port:
        raise UsageError(f"--prefect-port and --mlflow-port are both {a.prefect_port}: give each its own")
    stores = PostgresStores.parse(a.database_url, a.schema_prefix) if a.database_url else None
    # both before starting either: a taken port leaves nothing started
    check_port_free(a.prefect_port, "Prefect", "--prefect-port")
    check_port_free(a.mlflow_port, "MLflow", "--mlflow-port")
    settings = get_settings()
    settings.ensure_home()
    if stores is not None:
        stores.create_schemas()  # an unreachable database fails here, before any server
    servers = []
    try:
        where = "PostgreSQL" if stores else "the embedded stores"
        print(f"starting the Prefect and MLflow servers on {where} ...", file=sys.stderr)
        servers.append(start_prefect(settings, a.prefect_port, a.host,
                                     stores.prefect_server_env() if stores else None))
        servers.append(start_mlflow(settings, a.mlflow_port, a.host,
                                    stores.service_url("mlflow") if stores else None))
        wait_healthy(servers, timeout=a.timeout)
        for s in servers:
            print(f"{s.name:<8} {s.url}")
        print("\nin the MLflow UI:")
        for line in _mlflow_guide(next(s.url for s in servers if s.name == "MLflow")):
            print(line)
        print("\nto run flows and log runs against them, in another shell (or on a worker host):")
        exports = {k: v for s in servers for k, v in s.env.items()}
        exports.update(stores.client_env() if stores else {})
        for k, v in exports.items():
            print(f"  export {k}={shlex.quote(v)}")
        print("\nCtrl-C stops both.", file=sys.stderr)
        while all(s.proc.poll() is None for s in servers):
            time.sleep(1)
        dead = [s for s in servers if s.proc.poll() is not None]
        raise ServiceError("; ".join(f"{s.name} server stopped (code {s.proc.returncode}), see {s.log}"
                                     for s in dead))
    except KeyboardInterrupt:
        print("\nstopping ...", file=sys.stderr)
        return EXIT_OK
    finally:
        for s in servers:
            s.stop()


def _mlflow_guide(url: str) -> list[str]:
    """The MLflow UI's lines for ``ui``: the task experiments that exist, asked of the
    server that was just started. A failed lookup costs the links, not the servers."""
    from synthloop.mlflow_links import MODE_HINT, experiments_url, ui_guide
    from synthloop.taskspec import TASK_NAMES
    from synthloop.tracking import experiment_name

    try:
        return ui_guide(url, {experiment_name(t): _experiment_id(url, experiment_name(t))
                              for t in TASK_NAMES})
    except (OSError, ValueError, KeyError) as e:
        return [f"  experiments  {experiments_url(url)}  (listing them failed: {e})", MODE_HINT]


def _experiment_id(url: str, name: str) -> str | None:
    """The id of the active experiment ``name`` on the MLflow server at ``url``; None if
    there is none."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"experiment_name": name})
    try:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}",
                                    timeout=30) as r:
            exp = json.load(r)["experiment"]
    except urllib.error.HTTPError as e:
        if e.code == 404:  # RESOURCE_DOES_NOT_EXIST
            return None
        raise
    return exp["experiment_id"] if exp.get("lifecycle_stage", "active") == "active" else None


def _require_api() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise UsageError("PREFECT_API_URL is not set: start the servers with `synthloop ui` and "
                         "export the PREFECT_API_URL it prints")


def cmd_deploy(a: argparse.Namespace) -> int:
    """Work pools + every deployment in prefect.yaml, its schedules paused unless
    --schedules on, then (unless --no-worker) a process worker for one pool, in the
    foreground until Ctrl-C."""
    import subprocess

    from synthloop.servers import prefect_bin
    from synthloop.settings import REPO_ROOT, get_settings

    _require_api()
    settings = get_settings()
    env = {**os.environ, "SYNTHLOOP_HOME": str(settings.root)}
    prefect = prefect_bin()
    limits = {"cpu": a.cpu_pool_limit, "gpu": a.gpu_pool_limit}
    for pool, limit in limits.items():
        r = subprocess.run([prefect, "work-pool", "create", pool, "--type", "process"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0 and "already exists" not in (r.stdout + r.stderr):
            raise ServiceError(f"creating work pool {pool!r} failed: "
                               f"{(r.stdout + r.stderr).strip()[-500:]}")
        verb = ["set-concurrency-limit", pool, str(limit)] if limit else ["clear-concurrency-limit", pool]
        r = subprocess.run([prefect, "work-pool", *verb], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise ServiceError(f"setting the concurrency limit of pool {pool!r} failed: "
                               f"{(r.stdout + r.stderr).strip()[-500:]}")
    r = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ServiceError(f"prefect deploy failed: {(r.stdout + r.stderr).strip()[-800:]}")
    from synthloop.cli.schedules import describe, project_deployments, set_schedules

    deployments = project_deployments(REPO_ROOT / "prefect.yaml")
    shown = ", ".join(f"{p} ({f'{n} runs at once' if n else 'no limit'})" for p, n in limits.items())
    print(f"deployed the {len(deployments)} deployments of prefect.yaml; pools: {shown}")
    for state in set_schedules(deployments, active=a.schedules == "on"):
        print(describe(state))
    if a.no_worker:
        return EXIT_OK
    sys.stdout.flush()  # the lines above come before the worker's own output
    return cmd_worker(a)


def cmd_worker(a: argparse.Namespace) -> int:
    """A Prefect process worker for one pool, in the foreground until Ctrl-C. Its flow
    runs inherit this environment (the exports ``synthloop ui`` prints)."""
    import subprocess

    from synthloop.servers import prefect_bin
    from synthloop.settings import REPO_ROOT, get_settings

    _require_api()
    env = {**os.environ, "SYNTHLOOP_HOME": str(get_settings().root)}
    label = f" {a.name!r}" if getattr(a, "name", None) else ""
    print(f"starting worker{label} for pool {a.pool!r} (Ctrl-C stops it)", file=sys.stderr)
    stop_on_sigterm()
    cmd = [prefect_bin(), "worker", "start", "--pool", a.pool, "--type", "process"]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    if getattr(a, "name", None):
        cmd += ["--name", a.name]
    worker = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT)
    try:
        return worker.wait()
    except KeyboardInterrupt:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        return EXIT_OK


def _worker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", choices=["cpu", "gpu"], default="cpu",
                   help="the pool the worker takes runs from (default: cpu)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="flow runs the worker runs at once (default: no limit; 1 suits a small CPU box)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="start the Prefect dashboard and the MLflow UI (embedded stores, "
                        "or PostgreSQL with --database-url)",
                        description="Start the Prefect server and the MLflow tracking server (which "
                        "proxies artifacts: clients upload through it) until Ctrl-C, and print "
                        "the exports that point flows, workers and tuning at them. Without "
                        "--database-url both keep their state in SQLite under the project home; "
                        "with it, the Prefect server, MLflow, Optuna and the lineage catalog each "
                        "get a schema of that PostgreSQL database (docs/scale-out.md).")
    ui.add_argument("--prefect-port", type=int, default=4200, help="port of the Prefect dashboard")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="port of the MLflow UI")
    ui.add_argument("--database-url", default=os.environ.get("SYNTHLOOP_DATABASE_URL"),
                    help="PostgreSQL database for every service's state, e.g. "
                    "postgresql://user@db-host:5432/synthloop (default: $SYNTHLOOP_DATABASE_URL, "
                    "else the embedded SQLite stores); a password is better given in ~/.pgpass")
    ui.add_argument("--schema-prefix", default="synthloop_",
                    help="schemas <prefix>prefect, <prefix>mlflow, <prefix>optuna, <prefix>catalog "
                    "(default: synthloop_)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface both servers listen on; 0.0.0.0 lets workers on other hosts "
                    "connect (default: 127.0.0.1, this machine only)")
    ui.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for both to be healthy")
    ui.set_defaults(func=cmd_ui)

    dp = sub.add_parser("deploy", help="deploy every flow of prefect.yaml to the Prefect server "
                        "(work pools cpu and gpu, schedules paused) and start a worker",
                        description="Create the work pools cpu and gpu, deploy every deployment of "
                        "prefect.yaml to the Prefect server that PREFECT_API_URL names (start one "
                        "with synthloop ui), print each schedule with the command that turns it "
                        "on or off, then run a worker for one pool until Ctrl-C.")
    _worker_options(dp)
    dp.add_argument("--no-worker", action="store_true",
                    help="only create the pools and deploy; start no worker")
    dp.add_argument("--cpu-pool-limit", type=positive_int, default=None,
                    help="flow runs the cpu pool runs at once over all its workers (default: no limit)")
    dp.add_argument("--gpu-pool-limit", type=positive_int, default=None,
                    help="flow runs the gpu pool runs at once over all its workers, e.g. the "
                    "number of GPUs (default: no limit)")
    dp.add_argument("--schedules", choices=["off", "on"], default="off",
                    help="off (default): every schedule is deployed paused, nothing runs unless "
                    "triggered; on: schedules are active and the scheduler queues their runs "
                    "(the nightly full-size feedback loop at 02:00 UTC)")
    dp.set_defaults(func=cmd_deploy)

    wk = sub.add_parser("worker", help="start one more Prefect worker for a pool (on this or "
                        "another host)",
                        description="A Prefect process worker for pool cpu or gpu, until Ctrl-C. "
                        "Run `synthloop deploy --no-worker` once first; on another host, export "
                        "what `synthloop ui` printed (docs/scale-out.md). Each worker needs the "
                        "repository at the same path and the batch folder on shared storage.")
    _worker_options(wk)
    wk.add_argument("--name", help="the worker's name on the dashboard (default: Prefect's)")
    wk.set_defaults(func=cmd_worker)
