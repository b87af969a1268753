"""Optuna tuning of gaze training: the search space, the study's identity, the CLI end to
end (trials in optuna.db, one MLflow run per trial under the study's run, resume adds
trials instead of redoing them), bad input, and the Prefect flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim_target(tmp_path_factory):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path_factory.mktemp("target") / "sim", 80, 4, labeled=True)


def test_suggestions_stay_inside_each_methods_space():
    import optuna

    from synthloop.tuning.space import SEARCH_SPACES, suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for method, space in SEARCH_SPACES.items():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            params = suggest(study.ask(), method)
            assert set(params) == set(space)
            for name, (_, lo, hi) in space.items():
                assert lo <= params[name] <= hi, (method, name, params[name])
    assert {"trade_off", "grl_alpha"} <= set(SEARCH_SPACES["dann"])
    with pytest.raises(ValueError, match="no search space for method 'mcd'"):
        suggest(optuna.create_study().ask(), "mcd")


def test_study_identity_and_default_objective(sim_target):
    from realdata.eyes import read_eye_folder, read_eye_manifest
    from synthloop.tuning.space import default_objective, study_name, target_fingerprint

    labeled = read_eye_folder(sim_target)
    fp = target_fingerprint(labeled)
    a = study_name("dann", "batch-1", fp, 600, "target_error", 0)
    assert a == study_name("dann", "batch-1", fp, 600, "target_error", 0, batch_size=64)
    for other in (study_name("daln", "batch-1", fp, 600, "target_error", 0),
                  study_name("dann", "batch-2", fp, 600, "target_error", 0),
                  study_name("dann", "batch-1", "f" * 16, 600, "target_error", 0),
                  study_name("dann", "batch-1", fp, 300, "target_error", 0),
                  study_name("dann", "batch-1", fp, 600, "entropy", 0),
                  study_name("dann", "batch-1", fp, 600, "target_error", 0, batch_size=32),
                  study_name("dann", "batch-1", fp, 600, "target_error", 0, mirror_eye="L")):
        assert other != a
    assert a == study_name("dann", "batch-1", fp, 600, "target_error", 0, mirror_eye=None)
    unlabeled = read_eye_manifest(sim_target)
    assert default_objective(labeled) == "target_error"
    assert default_objective(unlabeled) == "entropy"
    assert target_fingerprint(unlabeled) != fp  # the labels are part of the content


def test_local_study_fails_stale_trials_and_reseeds_by_trial_count():
    import optuna

    from synthloop.settings import get_settings
    from synthloop.tuning.space import suggest
    from synthloop.tuning.study import finished_trials, open_study

    settings = get_settings()
    settings.ensure_home()
    study = open_study(settings, "s", "minimize", seed=3)
    killed = study.ask()  # a process killed mid-trial leaves it RUNNING
    suggest(killed, "dann")
    done = study.ask()
    study.tell(done, 1.0)
    again = open_study(settings, "s", "minimize", seed=3)
    states = {t.number: t.state for t in again.trials}
    assert states == {killed.number: optuna.trial.TrialState.FAIL,
                      done.number: optuna.trial.TrialState.COMPLETE}
    assert [t.number for t in finished_trials(again)] == [done.number]  # the killed one re-runs
    # the sampler's seed follows the trial count: a resumed study does not replay trials
    a = suggest(open_study(settings, "s", "minimize", seed=3).ask(), "dann")
    b = suggest(open_study(settings, "s", "minimize", seed=3).ask(), "dann")
    assert a != b


def test_tuning_history_plot(tmp_path):
    from analysis.plots import tuning_history

    trials = [{"number": 2, "state": "COMPLETE", "value": 7.0},
              {"number": 0, "state": "COMPLETE", "value": 9.0},
              {"number": 1, "state": "PRUNED", "value": 11.0},
              {"number": 3, "state": "COMPLETE", "value": 8.0}]
    fig = tuning_history(trials, "minimize", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    best = fig.axes[0].lines[1]  # the best-so-far step line over the completed trials
    assert list(best.get_xdata()) == [0, 2, 3] and list(best.get_ydata()) == [9.0, 7.0, 7.0]
    up = tuning_history(trials, "maximize").axes[0].lines[1]
    assert list(up.get_ydata()) == [9.0, 9.0, 9.0]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SYNTHLOOP_"))}
    env.update(SYNTHLOOP_HOME=str(home), OMP_NUM_THREADS="1")
    return env


def _tune(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", "tune", *args], env=_env(home),
                          cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # two `synthloop tune` subprocesses, seven training trials
@pytest.mark.gx
def test_tune_cli_records_trials_and_resumes(tmp_path, sim_target):
    import mlflow
    import optuna

    from synthloop.tracking import PARENT_TAG

    home = tmp_path / "home"
    base = ["--method", "dann", "--target", str(sim_target), "--steps", "10", "--n-source", "256",
            "--json"]
    r = _tune(home, *base, "--trials", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    first = json.loads(r.stdout.strip().splitlines()[-1])
    assert first["objective"] == "target_error" and first["direction"] == "minimize"
    assert len(first["trials"]) == 3 and first["best"] is not None
    assert first["best"]["value"] == min(t["value"] for t in first["trials"]
                                         if t["state"] == "COMPLETE")
    assert Path(first["plot"]).is_file()

    study = optuna.load_study(study_name=first["study"], storage=f"sqlite:///{home / 'optuna.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2]

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.data.tags["kind"] == "tune" and parent.info.status == "FINISHED"
    assert parent.data.params["objective"] == "target_error"
    exp = parent.info.experiment_id
    children = client.search_runs([exp], f"tags.`{PARENT_TAG}` = '{first['mlflow_run_id']}'")
    assert sorted(c.data.tags["optuna_trial"] for c in children) == ["0", "1", "2"]
    for c in children:  # the target's labels were scored, and the run says what it was
        assert "target_angular_error_deg" in c.data.metrics
        assert c.data.params["method"] == "dann"

    r = _tune(home, *base, "--trials", "4")  # the same study: one more trial, none redone
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["study"] == first["study"] and again["mlflow_run_id"] == first["mlflow_run_id"]
    assert [t["number"] for t in again["trials"]] == [0, 1, 2, 3]
    assert again["trials"][:3] == first["trials"]
    assert again["trials"][3]["params"] != first["trials"][0]["params"]  # the sampler moved on


def test_tune_refuses_a_labelled_objective_without_labels(tmp_path):
    from synth.targets import write_simulated_target

    unlabeled = write_simulated_target(tmp_path / "u", 20, 0, labeled=False)
    r = _tune(tmp_path / "home", "--method", "dann", "--target", str(unlabeled), "--trials", "1",
              "--steps", "5", "--n-source", "128", "--objective", "target_error")
    assert r.returncode != 0
    assert str(unlabeled) in r.stderr and "labels.csv" in r.stderr
    assert not (tmp_path / "home" / "optuna.db").exists()  # refused before anything was made


def _sided_tuning(tmp_path, monkeypatch):
    from synthloop.settings import Settings
    from tests.test_gaze_mirror_eye import _with_sides
    from tests.test_loop_real import _eyes

    monkeypatch.setenv("SYNTHLOOP_HOME", str(tmp_path / "home"))
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    target = _with_sides(_eyes(tmp_path / "eyes", n=24, subjects=4), sides="LR")
    return settings, dict(method="source_only", target=str(target), trials=1, steps=2,
                          n_source=64, batch_size=8, log=lambda *_: None)


def test_tuning_refuses_to_mirror_a_target_without_eye_sides_before_making_anything(
        tmp_path, monkeypatch):
    from synthloop.errors import DataFormatError
    from synthloop.tuning.jobs import tune_gaze
    from tests.test_loop_real import _eyes

    settings, kw = _sided_tuning(tmp_path, monkeypatch)
    bare = _eyes(tmp_path / "bare", n=24, subjects=4)
    with pytest.raises(DataFormatError, match="needs an 'eye' column") as e:
        tune_gaze(settings, mirror_eye="L", **{**kw, "target": str(bare)})
    assert e.value.path == bare
    batches = settings.root / "batches"
    assert not batches.exists() or not any(batches.iterdir())


@pytest.mark.slow  # a batch validated with GX and a trial trained (~15 s)
@pytest.mark.gx
def test_tuning_with_one_eye_side_mirrored_trains_every_trial_that_way(tmp_path, monkeypatch):
    """--mirror-eye: every trial's checkpoint records the side, so its model is evaluated
    that way (the study's own identity is tested above)."""
    from models.checkpoint import load_checkpoint, resolve_checkpoint
    from synthloop.tuning.jobs import tune_gaze

    settings, kw = _sided_tuning(tmp_path, monkeypatch)
    mirrored = tune_gaze(settings, mirror_eye="L", **kw)
    (trial,) = mirrored["trials"]
    ck = load_checkpoint(resolve_checkpoint(settings.root / "tuning" / mirrored["study"]
                                            / f"trial-{trial['number']:04d}"))
    assert ck["train_config"]["task_kwargs"]["mirror_eye"] == "L"
