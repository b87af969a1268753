"""The tune-gaze flow: each Optuna trial is a task run; the study's summary comes back."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sim_target(tmp_path_factory):
    from synth.targets import write_simulated_target

    return write_simulated_target(tmp_path_factory.mktemp("target") / "sim", 60, 6, labeled=True)


@pytest.mark.slow  # an Optuna study of two training trials, each a task run
@pytest.mark.flow
@pytest.mark.gx
def test_tune_flow_runs_each_trial_as_a_task(prefect_harness, sim_target):
    from flows.tune import TuneParams, tune_gaze

    state = tune_gaze(TuneParams(method="source_only", target=str(sim_target), trials=2, steps=8,
                                 n_source=256), return_state=True)
    res = state.result()
    assert [t["number"] for t in res["trials"]] == [0, 1]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in res["trials"])
    assert set(res["trials"][0]["params"]) == {"lr", "weight_decay"}
    assert res["mlflow_run_id"] and res["best"] is not None
