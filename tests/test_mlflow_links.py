"""Links into the MLflow UI: the addresses, the lines `synthloop ui` prints, and that the
installed UI build still has the routes and the mode parameter they rely on."""

from pathlib import Path

import pytest

from synthloop.mlflow_links import (
    MODE_HINT,
    artifact_url,
    experiments_url,
    models_url,
    run_url,
    training_runs_url,
    ui_base,
    ui_guide,
)

BASE = "http://127.0.0.1:5000"


def test_pages_open_in_training_mode():
    assert training_runs_url(BASE, "3") == f"{BASE}/#/experiments/3/runs?workflowType=machine_learning"
    assert run_url(BASE, "3", "abc") == f"{BASE}/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert experiments_url(BASE) == f"{BASE}/#/experiments?workflowType=machine_learning"
    assert models_url(BASE) == f"{BASE}/#/models"


def test_artifact_url_quotes_the_path_but_keeps_folders():
    assert artifact_url(BASE, "r1", "plots/real error.png") == \
        f"{BASE}/get-artifact?path=plots/real%20error.png&run_uuid=r1"
    assert "&x" not in artifact_url(BASE, "r1", "a&x=1.png")


def test_ui_base_is_the_server_or_the_ui_address(monkeypatch):
    assert ui_base("http://host:5001/") == "http://host:5001"
    monkeypatch.delenv("SYNTHLOOP_MLFLOW_UI", raising=False)
    assert ui_base("sqlite:////tmp/mlflow.db") == BASE
    monkeypatch.setenv("SYNTHLOOP_MLFLOW_UI", "http://box:6000/")
    assert ui_base("sqlite:////tmp/mlflow.db") == "http://box:6000"


def test_ui_guide_links_what_exists_and_says_where_the_rest_appears():
    lines = ui_guide(BASE, {"synthloop-gaze": "1", "synthloop-landmarks": None})
    assert lines[0].split() == ["synthloop-gaze", training_runs_url(BASE, "1")]
    assert lines[1].split()[:2] == ["experiments", experiments_url(BASE)]
    assert "synthloop-landmarks appears here after its first run" in lines[1]
    assert lines[2].split() == ["registered", "models", models_url(BASE)]
    assert lines[3] == MODE_HINT and "Model training" in MODE_HINT
    assert len(lines) == 4

    none_yet = ui_guide(BASE, {"synthloop-gaze": None, "synthloop-landmarks": None})
    assert "/runs" not in "".join(none_yet)
    assert "synthloop-gaze and synthloop-landmarks appear here after their first run" in none_yet[0]


def _ui_bundle() -> str:
    import mlflow.server

    js = Path(mlflow.server.__file__).parent / "js" / "build" / "static" / "js"
    mains = list(js.glob("main.*.js"))
    if not mains:
        pytest.skip("this MLflow has no UI build")
    return mains[0].read_text(errors="replace")


def test_the_installed_ui_has_our_routes_and_reads_the_mode_from_the_address():
    ui = _ui_bundle()
    for route in ('"/experiments/:experimentId/runs"', '"/experiments/:experimentId/runs/:runUuid"',
                  '"/experiments"', '"/models"'):
        assert route in ui, route
    assert 'get("workflowType")' in ui and '"machine_learning"' in ui
    assert 'key:"mlflow.workflowType"' in ui  # the stored choice the hint talks about
    assert '("get-artifact")}?path=' in ui and "run_uuid=" in ui
