"""Deployments end to end: real Prefect + MLflow servers on free ports, `synthloop deploy`
(pools + prefect.yaml + a process worker), a run triggered through the API with custom
parameters (as the dashboard's run form does), executed by the worker; schedules deployed
paused, and active with `--schedules on`."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from catalog import Catalog
from synth.shards import BatchReader
from synth.targets import write_simulated_target
from synthloop.servers import free_port, start_mlflow, start_prefect, wait_healthy
from synthloop.settings import Settings

# slow: two real servers, a process worker and three flow runs through the API (minutes)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]


def _api(base, path, body=None, tries=5):
    """One API call; a 503 (the SQLite-backed server is busy on this 2-core box) is retried."""
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"},
                                 method="POST" if body is not None else "GET")
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == tries - 1:
                raise
            time.sleep(2)


def _wait(api, run_id, timeout):
    deadline = time.monotonic() + timeout
    while True:
        state = _api(api, f"/flow_runs/{run_id}")["state"]["type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        assert time.monotonic() < deadline, f"flow run stuck in {state}"
        time.sleep(2)


def _drain(proc, lines):
    """Keep the worker's output flowing (a full pipe would stall it) and at hand."""
    for line in proc.stdout:
        lines.append(line)


def _auto_scheduled(api, dep_id):
    runs = _api(api, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [dep_id]}}})
    return [r for r in runs if r.get("auto_scheduled")]


def test_deployment_triggered_with_parameters_runs_on_a_worker(tmp_path, monkeypatch):
    # the scheduler service looks for due schedules every 60 s by default
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "3")
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    servers = [start_prefect(settings, free_port()), start_mlflow(settings, free_port())]
    worker = None
    try:
        wait_healthy(servers, timeout=150)
        api = servers[0].env["PREFECT_API_URL"]
        env = {**os.environ, "SYNTHLOOP_HOME": str(settings.root), "PREFECT_API_URL": api,
               "PREFECT_HOME": str(settings.prefect_dir), **servers[1].env}
        worker = subprocess.Popen([sys.executable, "-m", "synthloop.cli", "deploy", "--pool", "cpu",
                                   "--limit", "1"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        output: list[str] = []
        threading.Thread(target=_drain, args=(worker, output), daemon=True).start()
        deadline = time.monotonic() + 120
        dep = None
        while dep is None:
            assert worker.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "deployment never appeared"
            try:
                dep = _api(api, "/deployments/name/generate-batch/generate-gaze")
            except urllib.error.HTTPError:
                time.sleep(1)
        out = tmp_path / "from-dashboard"
        run = _api(api, f"/deployments/{dep['id']}/create_flow_run",
                   {"parameters": {"params": {"task": "gaze", "n": 300, "seed": 5, "out": str(out)}}})
        assert _wait(api, run["id"], 240) == "COMPLETED"
        r = BatchReader(out)
        assert r.n == 300 and r.manifest["seed"] == 5 and r.status.status == "accepted"
        cat = Catalog(settings.catalog)  # the worker recorded the batch in the lineage catalog
        assert cat.get_batch(r.batch_id)["status"] == "accepted"
        assert cat.get_batch(r.batch_id)["path"] == str(out.resolve())

        # the feedback loop's deployment, with a tiny budget: the worker's run logs to the
        # same MLflow server (a parent run with the run form's parameters) and the catalog
        target = write_simulated_target(tmp_path / "target", 80, 2, labeled=True)
        # deployed paused: the nightly full-size loop is not armed, and deploy said how to arm it
        loop_dep = _api(api, "/deployments/name/feedback-loop/feedback-loop-gaze")
        (nightly,) = loop_dep["schedules"]
        assert nightly["schedule"]["cron"] == "0 2 * * *" and nightly["active"] is False
        resume = (f"prefect deployment schedule resume feedback-loop/feedback-loop-gaze "
                  f"{nightly['id']}")
        assert any("paused" in line and resume in line for line in output), "".join(output)
        run = _api(api, f"/deployments/{loop_dep['id']}/create_flow_run", {"parameters": {"params": {
            "real": str(target), "rounds": 1, "n_per_round": 200, "steps_per_round": 3, "seed": 11}}})
        assert _wait(api, run["id"], 300) == "COMPLETED"
        client = MlflowClient(tracking_uri=servers[1].url)
        exp = client.get_experiment_by_name("synthloop-gaze")
        parents = client.search_runs([exp.experiment_id], "tags.kind = 'feedback-loop'")
        assert len(parents) == 1
        params = parents[0].data.params
        assert params["n_per_round"] == "200" and params["seed"] == "11" and params["rounds"] == "1"
        loop = cat.get_loop(parents[0].data.tags["loop_id"])
        assert loop["status"] == "finished" and loop["mlflow_run_id"] == parents[0].info.run_id
        (round0,) = cat.rounds(loop["id"])
        assert cat.get_batch(round0["batch_id"])["status"] == "accepted"

        # an interval schedule: the server's scheduler must create runs that the worker
        # executes (this is what SQLAlchemy 2.1 silently breaks, see stack.md)
        sched_out = tmp_path / "scheduled"
        _api(api, f"/deployments/{dep['id']}/schedules",
             [{"schedule": {"interval": 10}, "active": True, "max_scheduled_runs": 2,
               "parameters": {"params": {"task": "gaze", "n": 128, "seed": 6, "out": str(sched_out)}}}])
        deadline = time.monotonic() + 180
        done = []
        while not done:
            assert time.monotonic() < deadline, "no scheduled run completed"
            runs = _api(api, "/flow_runs/filter", {"flow_runs": {
                "deployment_id": {"any_": [dep["id"]]}, "state": {"type": {"any_": ["COMPLETED"]}}}})
            done = [x for x in runs if x.get("auto_scheduled")]
            time.sleep(2)
        assert BatchReader(sched_out).n == 128  # the schedule's own parameters were used
        # minutes of a 3 s scheduler loop later, the paused nightly schedule has queued nothing
        assert _auto_scheduled(api, loop_dep["id"]) == []

        # --schedules on: deployed again with the nightly schedule active; the scheduler
        # queues its runs (at 02:00, long after this test)
        r = subprocess.run([sys.executable, "-m", "synthloop.cli", "deploy", "--no-worker",
                            "--schedules", "on"], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        loop_dep = _api(api, "/deployments/name/feedback-loop/feedback-loop-gaze")
        (nightly,) = loop_dep["schedules"]
        assert nightly["active"] is True
        assert (f"ACTIVE; pause it: prefect deployment schedule pause "
                f"feedback-loop/feedback-loop-gaze {nightly['id']}") in r.stdout, r.stdout
        deadline = time.monotonic() + 60
        while not _auto_scheduled(api, loop_dep["id"]):
            assert time.monotonic() < deadline, "the active nightly schedule queued no run"
            time.sleep(2)
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGINT)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        for s in servers:
            s.stop()
