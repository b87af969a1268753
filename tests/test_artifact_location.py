"""Where the embedded store's artifacts go: experiments are addressed through the tracking
server (``mlflow-artifacts:/<name>``), local commands reach the same folder directly, and
experiments an older synthloop pinned to a ``file://`` path are moved when the server
starts. The slow test runs it all against a real MLflow server."""

import urllib.request
from pathlib import Path

import pytest

from synthloop import tracking

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture()
def store(tmp_path):
    import mlflow

    db, root = tmp_path / "mlflow.db", tmp_path / "mlartifacts"
    yield f"sqlite:///{db}", root
    mlflow.set_tracking_uri("")


@pytest.fixture()
def png(tmp_path):
    p = tmp_path / "curve.png"
    p.write_bytes(PNG)
    return p


def _legacy_experiment(uri, root, name="synthloop-gaze"):
    """An experiment as synthloop created it before: pinned to a file:// folder."""
    import mlflow

    tracking.connect(uri)
    return mlflow.create_experiment(name, artifact_location=(root / name).resolve().as_uri())


def _log(task, png, name):
    run = tracking.create_run(task, name, {})
    tracking.log_artifact_to(run, png, "plots")
    tracking.end_run(run)
    return run


def test_location_mapping_is_the_servers(tmp_path):
    root = tmp_path / "mlartifacts"
    inside = (root / "synthloop-gaze").as_uri()
    assert tracking.proxied_location(inside, root) == "mlflow-artifacts:/synthloop-gaze"
    assert tracking.proxied_location((root / "1" / "x").as_uri(), root) == "mlflow-artifacts:/1/x"
    for other in ((tmp_path / "elsewhere").as_uri(), root.as_uri(), "s3://bucket/synthloop-gaze",
                  "mlflow-artifacts:/synthloop-gaze", (root / ".." / "x").as_uri()):
        assert tracking.proxied_location(other, root) is None, other

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking._serve_proxied_artifacts_locally(uri, root)
    assert tracking.local_artifact_uri("mlflow-artifacts:/synthloop-gaze/r1/artifacts", uri) == \
        (root.resolve() / "synthloop-gaze" / "r1" / "artifacts").as_uri()
    # a host-addressed URI, an escape, an unknown store and a server are MLflow's own business
    assert tracking.local_artifact_uri("mlflow-artifacts://host:5000/synthloop-gaze", uri) is None
    assert tracking.local_artifact_uri("mlflow-artifacts:/../etc", uri) is None
    assert tracking.local_artifact_uri("mlflow-artifacts:/x", f"sqlite:///{tmp_path / 'other.db'}") \
        is None
    assert tracking.local_artifact_uri("mlflow-artifacts:/x", "http://127.0.0.1:5000") is None


def test_a_new_experiment_is_addressed_through_the_server_and_local_runs_use_its_folder(store, png):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, root = store
    eid = tracking.configure(uri, "gaze", root)
    assert mlflow.get_experiment(eid).artifact_location == "mlflow-artifacts:/synthloop-gaze"
    run = _log("gaze", png, "local")
    assert MlflowClient().get_run(run).info.artifact_uri == \
        f"mlflow-artifacts:/synthloop-gaze/{run}/artifacts"
    assert (root / "synthloop-gaze" / run / "artifacts" / "plots" / "curve.png").read_bytes() == PNG
    got = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="plots/curve.png")
    assert Path(got).read_bytes() == PNG


def test_a_registered_model_round_trips_locally(store):
    """MLflow 3 logs a model under the experiment's location too (a logged model), and
    ``models:/`` resolves through it."""
    import mlflow
    import torch

    uri, root = store
    tracking.configure(uri, "gaze", root)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(torch.nn.Linear(2, 1), name="model",
                                        input_example=torch.zeros(2, 2).numpy(),
                                        registered_model_name="synthloop-gaze",
                                        pip_requirements=["torch"])
    location = mlflow.MlflowClient().get_logged_model(info.model_id).artifact_location
    assert location.startswith("mlflow-artifacts:/synthloop-gaze/")
    assert (root / "synthloop-gaze" / "models" / info.model_id / "artifacts" / "MLmodel").is_file()
    got = mlflow.artifacts.download_artifacts(f"models:/synthloop-gaze/{info.registered_model_version}")
    assert (Path(got) / "MLmodel").is_file()


def test_the_move_rewrites_only_file_locations_inside_the_artifact_folder(store, png, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, root = store
    gaze = _legacy_experiment(uri, root)
    tracking.configure(uri, "gaze", root)  # a local command leaves a legacy location alone
    old_run = _log("gaze", png, "before")
    old_uri = MlflowClient().get_run(old_run).info.artifact_uri
    assert old_uri.startswith("file://")
    other = mlflow.create_experiment("mine", artifact_location=(tmp_path / "mine").as_uri())
    default = mlflow.get_experiment("0").artifact_location

    assert tracking.move_artifacts_behind_server(uri, root) == ["synthloop-gaze"]
    assert mlflow.get_experiment(gaze).artifact_location == "mlflow-artifacts:/synthloop-gaze"
    assert mlflow.get_experiment(other).artifact_location == (tmp_path / "mine").as_uri()
    assert mlflow.get_experiment("0").artifact_location == default
    assert tracking.move_artifacts_behind_server(uri, root) == []  # nothing left to move
    # the old run keeps its address, and a new local run writes into the same folder
    assert MlflowClient().get_run(old_run).info.artifact_uri == old_uri
    new_run = _log("gaze", png, "after")
    for run in (old_run, new_run):
        assert (root / "synthloop-gaze" / run / "artifacts" / "plots" / "curve.png").is_file()


def test_the_move_leaves_other_stores_and_fresh_files_alone(tmp_path):
    root = tmp_path / "mlartifacts"
    # never connected to: a database server's store is not ours to rewrite
    assert tracking.move_artifacts_behind_server("postgresql://u:p@127.0.0.1:1/x", root) == []
    assert tracking.move_artifacts_behind_server("http://127.0.0.1:1", root) == []
    missing = tmp_path / "absent.db"
    assert tracking.move_artifacts_behind_server(f"sqlite:///{missing}", root) == []
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()  # a store MLflow has not set up yet
    assert tracking.move_artifacts_behind_server(f"sqlite:///{empty}", root) == []


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


@pytest.mark.slow
def test_runs_through_the_server_and_local_runs_share_the_artifact_folder(png):
    """A local run on a legacy experiment; then the server: it moves the experiment, a run
    through it gets an ``mlflow-artifacts:`` URI and its artifact lands in
    ``<home>/mlartifacts``, every run's artifact is served at ``artifact_url``; then a local
    command still logs, into the same folder."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from synthloop.mlflow_links import artifact_url
    from synthloop.servers import free_port, start_mlflow, wait_healthy
    from synthloop.settings import get_settings

    s = get_settings()
    s.ensure_home()
    root = s.artifact_root
    gaze = _legacy_experiment(s.tracking_uri, root)
    tracking.configure(s.tracking_uri, "gaze", root)
    local_before = _log("gaze", png, "local-before")

    server = start_mlflow(s, free_port())
    try:
        wait_healthy([server], timeout=180)
        assert mlflow.get_experiment(gaze).artifact_location == "mlflow-artifacts:/synthloop-gaze"
        assert tracking.configure(server.url, "gaze") == gaze
        through = _log("gaze", png, "through-server")
        assert MlflowClient().get_run(through).info.artifact_uri == \
            f"mlflow-artifacts:/synthloop-gaze/{through}/artifacts"
        assert (root / "synthloop-gaze" / through / "artifacts" / "plots" / "curve.png").is_file()

        tracking.configure(s.tracking_uri, "gaze", root)  # a local command, the server still up
        local_after = _log("gaze", png, "local-after")
        assert MlflowClient().get_run(local_after).info.artifact_uri.startswith("mlflow-artifacts:/")
        assert (root / "synthloop-gaze" / local_after / "artifacts" / "plots" / "curve.png").is_file()

        for run in (local_before, through, local_after):
            status, kind, body = _get(artifact_url(server.url, run, "plots/curve.png"))
            assert (status, kind, body) == (200, "image/png", PNG), run
    finally:
        mlflow.set_tracking_uri("")
        server.stop()
    assert server.proc.poll() is not None
