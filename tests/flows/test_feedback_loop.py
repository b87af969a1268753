"""The feedback-loop flow on a tiny budget: rounds run in order, the closed loop derives a
new distribution from the analysis while the open loop keeps its start, every step is in
the lineage catalog and in MLflow (a parent run with one child per round), and running
the same loop again reads the finished rounds back instead of redoing them."""

from __future__ import annotations

import os

import pytest

# slow: flow runs against a Prefect test server (its start alone is ~25 s on 2 cores)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]

TINY = dict(rounds=2, n_per_round=256, steps_per_round=4, patience=None)


@pytest.fixture(scope="module")
def sim_target(tmp_path_factory):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path_factory.mktemp("target") / "sim", 120, 3, labeled=True)


def _first_batch_id(params) -> str:
    """The content-addressed id of the batch round 0 draws (the loop's first attempt)."""
    from synth.eye_distribution import default_eye_distribution
    from synth.generate import planned_batch_id
    from synthloop.loop.rounds import round_seed

    return planned_batch_id(n=params.n_per_round, dist=default_eye_distribution(),
                            seed=round_seed(params.config(), 0, 100), device="cpu")


def _round0_errors_and_values(params, res) -> tuple:
    """Round 0's per-sample errors on the analysis part and the samples' true label
    values, read from the round's files and the real data (not from the analysis)."""
    import numpy as np

    from synthloop.loop.real import load_real
    from synthloop.loop.rounds import ERRORS_FILE, round_dir
    from synthloop.settings import get_settings

    real = load_real(params.config())
    errors = np.load(round_dir(get_settings(), res["loop_id"], 0) / ERRORS_FILE)["errors"]
    a = real.analysis
    values = {"gaze_pitch": real.labels["pitchyaw"][a, 0], "gaze_yaw": real.labels["pitchyaw"][a, 1],
              "head_pitch": real.labels["headpose"][a, 0], "head_yaw": real.labels["headpose"][a, 1]}
    return errors[a], values


def _run(params):
    from flows.feedback_loop import feedback_loop

    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


@pytest.mark.slow  # a whole two-round loop
def test_closed_loop_records_lineage_and_nested_mlflow_runs(prefect_harness, sim_target, assert_lineage,
                                                            assert_moves_toward_error_mass):
    import mlflow

    from catalog import Catalog
    from flows.feedback_loop import LoopParams
    from synth.eye_distribution import default_eye_distribution
    from synthloop.lineage import distribution_from_catalog
    from synthloop.settings import get_settings
    from synthloop.tracking import PARENT_TAG

    params = LoopParams(real=str(sim_target), seed=1, **TINY)
    res = _run(params)
    rounds = res["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert all(r["real_error"] > 0 for r in rounds)
    dist0 = default_eye_distribution()
    assert rounds[0]["distribution_id"] == dist0.id
    assert rounds[0]["batch_id"] == _first_batch_id(params)
    assert rounds[1]["distribution_id"] != dist0.id  # the analysis changed it
    assert res["final_real_error"] == rounds[-1]["real_error"]

    settings = get_settings()
    cat = Catalog(settings.catalog)
    d1 = cat.get_distribution(rounds[1]["distribution_id"])
    assert d1["parent_id"] == dist0.id and d1["reason"]
    assert_lineage(cat, rounds, dist0)
    # gaze rounds start from fresh weights unless told (the task's default)
    r0, r1 = (cat.get_training_run(f"{res['loop_id']}-r{k}") for k in (0, 1))
    assert r0["config"]["init_from"] is None and r1["config"]["init_from"] is None
    assert cat.get_loop(res["loop_id"])["config"]["round_start"] == "scratch"
    # ... and changed it in the direction round 0's errors on the real data point
    assert_moves_toward_error_mass(dist0, distribution_from_catalog(cat, d1["id"]),
                                   *_round0_errors_and_values(params, res))
    # the target's labels carry head pose: the analysis slices by it and re-weights it
    an = cat.get_analysis(f"{res['loop_id']}-r0-analysis")
    assert an["metrics"]["update"]["order"][:4] == ["gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw"]
    assert {"head_pitch_deg", "head_yaw_deg"} <= {s["variable"] for s in an["slices"]["slices"]}

    mlflow.set_tracking_uri(settings.tracking_uri)
    loop = cat.get_loop(res["loop_id"])
    parent = mlflow.get_run(loop["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mode"] == "closed" and parent.data.params["open_loop"] == "False"
    assert parent.data.params["split.n_holdout"] == "60"
    children = mlflow.search_runs(experiment_names=["synthloop-gaze"], output_format="list",
                                  filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["round"] for c in children) == ["0", "1"]
    for c in children:
        assert "real_error_heldout_deg" in c.data.metrics
        names = {a.path for a in mlflow.MlflowClient().list_artifacts(c.info.run_id, "plots")}
        assert {"plots/slice_errors.png", "plots/distribution_change.png"} <= names


@pytest.mark.slow  # a whole two-round loop
def test_open_loop_keeps_the_start_distribution(prefect_harness, sim_target):
    from flows.feedback_loop import LoopParams
    from synth.eye_distribution import default_eye_distribution

    params = LoopParams(real=str(sim_target), seed=1, open_loop=True, **TINY)
    res = _run(params)
    assert {r["distribution_id"] for r in res["rounds"]} == {default_eye_distribution().id}
    # same seed, other mode: the same first batch (round 0 is identical in both arms; the
    # closed-loop test checks its round 0 against the same id)
    closed = params.model_copy(update={"open_loop": False})
    assert res["rounds"][0]["batch_id"] == _first_batch_id(closed) == _first_batch_id(params)


@pytest.mark.slow  # a whole two-round loop
def test_warm_rounds_train_from_the_previous_round_s_weights(prefect_harness, sim_target):
    from catalog import Catalog
    from flows.feedback_loop import LoopParams
    from synthloop.settings import get_settings

    res = _run(LoopParams(real=str(sim_target), seed=4, open_loop=True, round_start="warm",
                          **TINY))
    cat = Catalog(get_settings().catalog)
    runs = [cat.get_training_run(f"{res['loop_id']}-r{k}") for k in (0, 1)]
    assert runs[0]["config"]["init_from"] is None
    assert runs[1]["config"]["init_from"] == runs[0]["checkpoint"]
    assert runs[1]["checkpoint"] != runs[0]["checkpoint"]
    assert "round_start" not in cat.get_loop(res["loop_id"])["config"]  # warm: the id it had


@pytest.mark.slow  # three whole two-round loops
def test_running_the_same_loop_again_resumes_instead_of_redoing(prefect_harness, sim_target):
    from catalog import Catalog
    from flows.feedback_loop import LoopParams
    from synthloop.settings import get_settings

    p = LoopParams(real=str(sim_target), seed=2, **TINY)
    first = _run(p)
    cat = Catalog(get_settings().catalog)
    n_batches = len(cat.batches())
    # the same data under another spelling of its path is the same loop (resumed, no conflict)
    again = _run(p.model_copy(update={"real": os.path.relpath(sim_target)}))
    assert again["loop_id"] == first["loop_id"]
    assert again["rounds"] == first["rounds"]
    assert len(cat.batches()) == n_batches  # nothing generated twice
    import mlflow

    parent = cat.get_loop(first["loop_id"])["mlflow_run_id"]
    history = mlflow.MlflowClient(get_settings().tracking_uri).get_metric_history(
        parent, "real_error_heldout_deg")
    assert sorted(m.step for m in history) == [0, 1]  # the finished loop was not logged again
    # the open arm's round 0 is the same content-addressed batch: reused, not re-rendered
    other = _run(LoopParams(real=str(sim_target), seed=2, open_loop=True, **TINY))
    assert other["loop_id"] != first["loop_id"]
    assert other["rounds"][0]["batch_id"] == first["rounds"][0]["batch_id"]
    assert len(cat.batches()) == n_batches + 1


def test_one_tiny_round_runs_every_step_and_closes_the_loop(prefect_harness, sim_target):
    """The fast tier's whole-loop check (the tests above are marked slow): one round of
    64 samples and 2 steps through generate, validate, train, evaluate, analyse, close."""
    from catalog import Catalog
    from flows.feedback_loop import LoopParams
    from synth.eye_distribution import default_eye_distribution
    from synthloop.settings import get_settings

    res = _run(LoopParams(real=str(sim_target), seed=3, rounds=1, n_per_round=64,
                          steps_per_round=2, patience=None))
    (r0,) = res["rounds"]
    assert r0["round"] == 0 and r0["real_error"] > 0
    assert res["final_real_error"] == r0["real_error"]
    assert res["stopped"] == "budget reached: 1 of 1 rounds done"
    cat = Catalog(get_settings().catalog)
    assert cat.get_loop(res["loop_id"])["status"] == "finished"
    (row,) = cat.rounds(res["loop_id"])
    assert row["status"] == "done" and row["batch_id"] == r0["batch_id"]
    assert cat.get_batch(row["batch_id"])["status"] == "accepted"
    assert cat.get_training_run(row["run_id"])["status"] == "finished"
    nxt = cat.get_distribution(cat.get_analysis(row["analysis_id"])["next_distribution_id"])
    assert nxt["parent_id"] == default_eye_distribution().id  # closed: a derived child
    # the loop leaves its best (here: only) round's model in the registry, as the champion
    # since there was none; the version is the round run's model and carries its checkpoint
    reg = res["registered"]
    assert reg["round"] == 0 and reg["promoted"] and reg["reason"] == "no champion yet"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(get_settings().tracking_uri, get_settings().tracking_uri)
    version = client.get_model_version_by_alias("synthloop-gaze", "champion")
    assert str(version.version) == reg["version"] and version.run_id == row["mlflow_run_id"]
    assert client.get_run(version.run_id).data.tags["selection_metric"] == "real_error_analysis_deg"
    from synthloop.gaze.evaluate import load_gaze_model

    assert load_gaze_model(reg["model"]) is not None  # loadable by reference, weights only


def test_loop_rejects_unlabeled_real_data(prefect_harness, tmp_path):
    from flows.feedback_loop import LoopParams, feedback_loop
    from synth.targets import write_simulated_target

    unlabeled = write_simulated_target(tmp_path / "u", 40, 0, labeled=False)
    state = feedback_loop(LoopParams(real=str(unlabeled), **TINY), return_state=True)
    assert state.is_failed()
    assert "labels.csv" in state.message or "labeled" in state.message
