"""The scaled-out configuration end to end, on the local PostgreSQL: `synthloop ui
--database-url` brings the Prefect server and the MLflow server up on it; `synthloop
deploy` and two `synthloop worker`s on the cpu pool take flow runs from the API; one run
renders its batch on a Dask cluster through Prefect and equals, byte for byte, the batch
another run rendered in one process; a feedback loop on a cpu worker sends its round's
training to the gpu pool's worker (this machine has no GPU: the test points that
deployment at the CPU, so it proves the routing, not CUDA); two `synthloop tune`
processes add trials to one Optuna study; MLflow runs, Prefect flow runs and catalog rows
are in PostgreSQL. Every process the test started is stopped."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from synthloop.scaleout import PostgresStores
from synthloop.servers import free_port
from tests.batch_digest import batch_digest

# slow: two servers, two workers, a Dask cluster and two tuning processes (minutes)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]


class _Proc:
    """A child in its own process group, its output drained into ``lines``."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path | None = None):
        self.lines: list[str] = []
        self.p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.p.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def stop(self, first: int = signal.SIGINT) -> None:
        for sig, wait in ((first, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            if self.p.poll() is not None:
                return
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue


def _api(base: str, path: str, body=None, method: str | None = None):
    req = urllib.request.Request(f"{base}{path}", method=method or ("POST" if body is not None else "GET"),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _wait_for(what: str, check, timeout: float, procs: list[_Proc]):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for p in procs:
            assert p.p.poll() is None, f"{p.p.args[:4]} exited while waiting for {what}:\n{p.text[-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(2)



def _exports(text_out: str) -> dict[str, str]:
    out = {}
    for line in text_out.splitlines():
        if line.strip().startswith("export "):
            key, _, value = line.strip()[len("export "):].partition("=")
            out[key] = shlex.split(value)[0]
    return out


def test_scaled_out_on_postgresql(tmp_path, fresh_pg_database):
    db_url = fresh_pg_database("synthloop_scale")
    stores = PostgresStores.parse(db_url)
    cli = [sys.executable, "-m", "synthloop.cli"]
    base_env = {**os.environ, "SYNTHLOOP_HOME": str(tmp_path / "home"),
                "PREFECT_HOME": str(tmp_path / "client-prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "2",  # workers poll the API every 2 s
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    base_env.pop("PREFECT_API_URL", None)
    procs: list[_Proc] = []
    try:
        ui = _Proc([*cli, "ui", "--database-url", db_url, "--prefect-port", str(free_port()),
                    "--mlflow-port", str(free_port())], base_env)
        procs.append(ui)
        exports = _wait_for("the exports of synthloop ui",
                            lambda: "SYNTHLOOP_CATALOG_URL" in ui.text and _exports(ui.text), 240, procs)
        assert set(exports) == {"PREFECT_API_URL", "SYNTHLOOP_MLFLOW_URI", "SYNTHLOOP_OPTUNA_URL",
                                "SYNTHLOOP_CATALOG_URL"}
        assert exports["SYNTHLOOP_CATALOG_URL"] == stores.service_url("catalog")
        env = {**base_env, **exports}
        api = exports["PREFECT_API_URL"]

        deploy = subprocess.run([*cli, "deploy", "--no-worker", "--cpu-pool-limit", "4"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert "cpu (4 runs at once)" in deploy.stdout
        assert _api(api, "/work_pools/cpu")["concurrency_limit"] == 4
        workers = {name: _Proc([*cli, "worker", "--pool", "cpu", "--limit", "1", "--name", name], env)
                   for name in ("cpu-a", "cpu-b")}
        procs += workers.values()

        # a "gpu" worker: the deployment it serves is pointed at the CPU (no GPU here)
        gpu_dep = _api(api, "/deployments/name/train-round/train-round-gpu")
        env_vars = {**gpu_dep["job_variables"].get("env", {}), "SYNTHLOOP_DEVICE": "cpu"}
        _api(api, f"/deployments/{gpu_dep['id']}", {"job_variables": {**gpu_dep["job_variables"],
                                                                     "env": env_vars}}, method="PATCH")
        gpu_worker = _Proc([*cli, "worker", "--pool", "gpu", "--limit", "1", "--name", "gpu-a"], env)
        procs.append(gpu_worker)
        _wait_for("the gpu worker online", lambda: any(
            w["status"] == "ONLINE" for w in _api(api, "/work_pools/gpu/workers/filter", {})), 120, procs)

        dep = _api(api, "/deployments/name/generate-batch/generate-gaze")
        runs = {}
        loop_dep = _api(api, "/deployments/name/feedback-loop/feedback-loop-gaze")
        loop_params = {"task": "gaze", "rounds": 1, "n_per_round": 256, "steps_per_round": 4,
                       "seed": 3, "train_on": "auto"}
        runs["loop"] = _api(api, f"/deployments/{loop_dep['id']}/create_flow_run",
                            {"parameters": {"params": loop_params}})["id"]
        for tag, extra in (("dask", {"dask_workers": 2}), ("small-1", {"n": 300, "seed": 1}),
                           ("small-2", {"n": 300, "seed": 2}), ("small-3", {"n": 300, "seed": 3})):
            params = {"task": "gaze", "n": 9000, "seed": 7, "out": str(tmp_path / tag), **extra}
            runs[tag] = _api(api, f"/deployments/{dep['id']}/create_flow_run",
                             {"parameters": {"params": params}})["id"]

        def finished():
            states = {t: _api(api, f"/flow_runs/{rid}")["state"]["type"] for t, rid in runs.items()}
            return states if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                                 for s in states.values()) else None

        states = _wait_for("five flow runs", finished, 900, procs)
        if set(states.values()) != {"COMPLETED"}:
            why = {t: _api(api, f"/flow_runs/{rid}")["state"]["message"] for t, rid in runs.items()}
            logs = "".join(w.text for w in [*workers.values(), gpu_worker])
            pytest.fail(f"flow runs {states}: {why}\n{logs[-6000:]}")

        # both workers executed flow runs (each logs the runs it submits)
        for name, w in workers.items():
            mine = [t for t, rid in runs.items() if rid in w.text]
            assert mine, f"worker {name} ran nothing:\n{w.text[-2000:]}"
        # the loop's round trained on the gpu pool, as a flow run the gpu worker took
        (trained,) = _api(api, "/flow_runs/filter", {"flow_runs": {
            "deployment_id": {"any_": [gpu_dep["id"]]}}})
        assert trained["state"]["type"] == "COMPLETED" and trained["work_pool_name"] == "gpu"
        assert trained["parent_task_run_id"], "not a subflow of the loop's run"
        assert trained["id"] in gpu_worker.text
        assert trained["parameters"]["params"]["round"] == 0
        # the Dask-rendered batch is the single-process batch, byte for byte (rendered here:
        # the catalog rightly refuses one batch id at two paths)
        from synth.generate import generate_batch

        generate_batch(tmp_path / "single", n=9000, seed=7)
        fanned = batch_digest(tmp_path / "dask", with_validation=False)
        assert fanned == batch_digest(tmp_path / "single", with_validation=False)
        assert len(fanned) == 3 + 3  # 3 shards, manifest, metadata, distribution

        # two tuning processes on one study in PostgreSQL
        tune = [*cli, "tune", "--method", "source_only", "--trials", "4", "--steps", "4",
                "--source", str(tmp_path / "small-1"), "--batch-size", "16", "--json"]
        tuners = [_Proc(tune, env) for _ in range(2)]
        procs += tuners
        for t in tuners:
            t.p.wait(timeout=900)
            assert t.p.returncode == 0, t.text[-3000:]
        import optuna

        (summary,) = optuna.get_all_study_summaries(stores.service_url("optuna"))
        study = optuna.load_study(study_name=summary.study_name, storage=stores.service_url("optuna"))
        ran_by = {t.user_attrs["worker"] for t in study.trials}
        assert len(study.trials) >= 4 and len(ran_by) == 2, ran_by

        # the state is in PostgreSQL: MLflow runs, Prefect flow runs, catalog batches
        engine = create_engine(stores.url)
        try:
            with engine.connect() as conn:
                def count(schema: str, table: str) -> int:
                    return conn.execute(text(f'SELECT count(*) FROM "{schema}".{table}')).scalar()

                assert count(stores.schema("mlflow"), "runs") >= 4  # a study run and its trials
                assert count(stores.schema("prefect"), "flow_run") >= 4 + 1  # + the render-shards subflow
                batches = conn.execute(text(
                    f'SELECT path, status FROM "{stores.schema("catalog")}".batches')).all()
        finally:
            engine.dispose()
        assert sum(1 for p, _ in batches if "/loop-" in p) == 1  # the loop's round batch
        assert {(Path(p).name, s) for p, s in batches} >= {
            ("dask", "accepted"), ("small-1", "accepted"), ("small-2", "accepted")}
    finally:
        for p in reversed(procs):  # workers and tuners before the servers they talk to
            p.stop()
    assert all(p.p.poll() is not None for p in procs)
