"""`synthloop ui`: both servers come up healthy on the embedded stores, the Prefect UI
knows its API's port, the MLflow lines link each task experiment's training runs (an
experiment pinned to a file:// folder is moved behind the server first), and Ctrl-C stops
both with nothing left running."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from synthloop.servers import free_port

# slow: starts (and stops) both real servers twice
pytestmark = [pytest.mark.slow, pytest.mark.flow]


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_starts_both_servers_and_stops_them(tmp_path, stop):
    import mlflow

    from synthloop import tracking
    from synthloop.mlflow_links import MODE_HINT, models_url, training_runs_url

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.connect(store)  # a gaze experiment as an older synthloop made it; no landmarks one
    gaze = mlflow.create_experiment("synthloop-gaze", artifact_location=(
        tmp_path / "mlartifacts" / "synthloop-gaze").as_uri())
    mlflow.set_tracking_uri("")
    pp, mp = free_port(), free_port()
    env = {**os.environ, "SYNTHLOOP_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "synthloop.cli", "ui", "--prefect-port", str(pp),
                             "--mlflow-port", str(mp)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 150
        while not any("export SYNTHLOOP_MLFLOW_URI" in line for line in lines):
            assert time.monotonic() < deadline, "no URLs printed"
            assert proc.poll() is None, proc.stderr.read()
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"http://127.0.0.1:{pp}" in text
        assert f"export PREFECT_API_URL=http://127.0.0.1:{pp}/api" in text
        mlflow_url = f"http://127.0.0.1:{mp}"
        assert f"export SYNTHLOOP_MLFLOW_URI={mlflow_url}" in text
        by_name = {line.split()[0]: line for line in lines if line.startswith("  synthloop-")}
        assert by_name["synthloop-gaze"].split()[-1] == training_runs_url(mlflow_url, gaze)
        assert "synthloop-landmarks" not in by_name  # none yet: named on the experiments line
        assert "synthloop-landmarks appears here after its first run" in text
        assert models_url(mlflow_url) in text and MODE_HINT in text
        assert _get(f"http://127.0.0.1:{pp}/api/health") == (200, "true")
        status, settings = _get(f"http://127.0.0.1:{pp}/ui-settings")
        assert f":{pp}/api" in settings  # the dashboard calls the right port
        assert _get(f"http://127.0.0.1:{mp}/health")[1].strip() == "OK"
        assert (tmp_path / "mlflow.db").is_file()  # the embedded store, from the project home
    finally:
        proc.send_signal(stop)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    for port in (pp, mp):
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{port}/")
    tracking.connect(store)
    try:  # runs created through the server upload through it
        assert mlflow.get_experiment(gaze).artifact_location == "mlflow-artifacts:/synthloop-gaze"
    finally:
        mlflow.set_tracking_uri("")
