"""`synthloop train` / `synthloop evaluate` end to end on a tiny budget: MLflow run with
params, a registered model with the champion alias, evaluation from the checkpoint folder
and from the registry, labeled and unlabeled."""

import json
import re
import subprocess
import sys

import pytest

# slow: `synthloop simulate-target`, `train` (with MLflow registration) and `evaluate` in
# subprocesses (~45 s on 2 busy cores)
pytestmark = [pytest.mark.slow, pytest.mark.gx]


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "SYNTHLOOP_HOME": str(home)}
    tgt = tmp_path_factory.mktemp("t") / "target"
    r = run("simulate-target", "--out", str(tgt), "-n", "160", "--seed", "3", env=env)
    assert r.returncode == 0, r.stderr
    ckpt = home / "ckpt"
    cwd = tmp_path_factory.mktemp("cwd")
    r = run("train", "--task", "gaze", "--method", "dann", "--target", str(tgt), "--steps", "12",
            "--seed", "0", "--out", str(ckpt), "--n-source", "256", "--batch-size", "16", env=env,
            cwd=cwd)
    assert r.returncode == 0, r.stderr
    # artifacts live in the project home, not in whatever folder the command ran from
    assert list(cwd.iterdir()) == []
    assert any((home / "mlartifacts").rglob("best.pt"))
    lines = dict(line.split("\t", 1) for line in r.stdout.strip().splitlines())
    lines["progress shown"] = r.stderr  # not on a terminal: concise lines
    return env, home, tgt, ckpt, lines


def test_train_shows_its_progress_in_lines(trained):
    shown = trained[4]["progress shown"]
    steps = re.findall(r"step (\d+)/12", shown)
    assert steps and steps[-1] == "12" and len(steps) <= 12, shown
    assert re.search(r"step 12/12  loss [0-9.]+  [0-9,]+ img/s  done", shown), shown


def test_train_prints_checkpoint_and_run_and_logs_to_mlflow(trained):
    env, home, tgt, ckpt, lines = trained
    assert (ckpt / "last.pt").is_file()
    from mlflow.tracking import MlflowClient

    from synthloop import tracking

    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking.connect(uri, artifact_root=home / "mlartifacts")  # its mlflow-artifacts: URIs
    # explicit registry too: other tests in this process may have pointed MLflow's global
    # registry URI at their own store
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = c.get_run(lines["mlflow_run"])
    assert run.data.params["method"] == "dann" and run.data.params["steps"] == "12"
    assert run.data.tags["target_kind"] == "simulated"
    assert "target_entropy_best" in run.data.metrics
    hist = c.get_metric_history(run.info.run_id, "loss_total") or c.get_metric_history(run.info.run_id, "loss")
    assert len(hist) >= 2  # per-step curve, not one number
    arts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"distribution.json", "plots", "checkpoint", "samples"} <= arts
    v = c.get_model_version_by_alias("synthloop-gaze", "champion")
    assert v.run_id == run.info.run_id


def test_evaluate_labeled_from_checkpoint_and_registry(trained):
    env, home, tgt, ckpt, lines = trained
    for model in (str(ckpt), "models:/synthloop-gaze@champion"):
        r = run("evaluate", "--task", "gaze", "--model", model, "--data", str(tgt), "--json", env=env)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout.strip().splitlines()[-1])
        assert res["n"] == 160 and res["data_kind"] == "simulated"
        assert 0 < res["mean_angular_error_deg"] < 180 and res["median_angular_error_deg"] > 0
        # simulated targets carry head pose in labels.csv, so it is sliced by too
        assert {s["axis"] for s in res["slices"]} == {"pitch", "yaw", "head_pitch_deg",
                                                      "head_yaw_deg"}


def test_evaluate_unlabeled_reports_domain_gap(trained, tmp_path):
    env, home, tgt, ckpt, lines = trained
    import shutil

    unl = tmp_path / "unlabeled"
    shutil.copytree(tgt, unl)
    (unl / "labels.csv").unlink()
    r = run("evaluate", "--model", str(ckpt), "--data", str(unl), "--json", env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["labeled"] is False
    assert res["mmd_rbf"] >= 0 and res["frechet_distance"] >= 0 and res["mean_prediction_entropy"] > 0


def test_evaluate_bad_model_path_is_one_line(trained, tmp_path):
    env, home, tgt, ckpt, lines = trained
    r = run("evaluate", "--model", str(tmp_path / "nope"), "--data", str(tgt), env=env)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_pseudo_labels_from_the_registry_match_the_checkpoint(trained, tmp_path):
    env, home, tgt, ckpt, lines = trained
    from realdata.eyes import read_eye_folder

    labels = {}
    for name, model in (("ckpt", str(ckpt)), ("registry", "models:/synthloop-gaze@champion")):
        r = run("pseudo-label", "--model", model, "--data", str(tgt), "--out",
                str(tmp_path / name), "--tta-shift", "0", "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.strip().splitlines()[-1])["teachers"] == [
            model if name == "registry" else str(ckpt.resolve())]
        labels[name] = read_eye_folder(tmp_path / name).pitchyaw
    assert (labels["ckpt"] == labels["registry"]).all()
    # a home with no store has nothing registered to label with
    r = run("pseudo-label", "--model", "models:/synthloop-gaze@champion", "--data", str(tgt),
            "--out", str(tmp_path / "none"),
            env={**env, "SYNTHLOOP_HOME": str(tmp_path / "empty-home")})
    assert r.returncode == 2 and "no MLflow store" in r.stderr
    assert not (tmp_path / "none").exists()
