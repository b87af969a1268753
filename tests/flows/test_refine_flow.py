"""The refine-batch flow: refine, validate and record in one transaction; a refined batch
whose labels moved is quarantined by the rollback and the run fails with the reason."""

import pytest

from synth.shards import BatchReader, open_for_training
from synthloop.errors import UsageError

pytestmark = [pytest.mark.flow, pytest.mark.gx, pytest.mark.slow]  # trains a refiner and a probe, twice


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from synth.generate import generate_batch
    from synth.targets import write_simulated_target

    root = tmp_path_factory.mktemp("refine-flow")
    _, parent = generate_batch(root / "parent", n=300, seed=1)  # seed 2 has a blank eye
    real = write_simulated_target(root / "real", 150, 0, labeled=False)
    return parent, real


def _params(parent, real, out, **kw):
    from flows.refine_batch import RefineParams

    return RefineParams(batch=str(parent), real=str(real), out=str(out), steps=4,
                        probe_steps=40, **kw)


def test_refined_batch_is_accepted_recorded_and_named_after_its_parent(prefect_harness, inputs,
                                                                        tmp_path):
    from flows.refine_batch import refine_batch
    from synthloop.lineage import open_catalog

    parent, real = inputs
    out = tmp_path / "child"
    state = refine_batch(_params(parent, real, out), return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    assert res["status"] == "accepted" and res["parent"] == BatchReader(parent).batch_id
    assert open_for_training(out).manifest["parent"]["batch_id"] == res["parent"]
    assert open_catalog().get_batch(res["batch_id"])["parent_id"] == res["parent"]
    assert res["label_shift"]["column"] == "label_shift_deg"


def test_a_strict_label_bound_quarantines_the_refined_batch(prefect_harness, inputs, tmp_path,
                                                            monkeypatch):
    import expectations.validate as v
    from flows.refine_batch import refine_batch

    monkeypatch.setattr(v, "MAX_MEAN_LABEL_SHIFT_DEG", -1.0)  # nothing can pass
    parent, real = inputs
    out = tmp_path / "strict"
    state = refine_batch(_params(parent, real, out), return_state=True)
    assert state.is_failed()
    assert "label_shift_deg" in state.message and "quarantined" in state.message
    r = BatchReader(out)
    assert r.status.status == "quarantined"
    assert any(f.startswith("label preservation") for f in r.status.failing)


def test_loop_rounds_train_on_batches_refined_toward_the_analysis_part(prefect_harness, tmp_path):
    """--refine-steps: each round's batch is refined (a child of the rendered one, toward
    the analysis part only) and the round trains on the child; a rerun resumes."""
    from flows.feedback_loop import LoopParams, feedback_loop
    from synth.targets import write_simulated_target
    from synthloop.lineage import open_catalog

    real = write_simulated_target(tmp_path / "sim", 120, 3, labeled=True)
    params = LoopParams(task="gaze", real=str(real), rounds=1, n_per_round=300,
                        steps_per_round=4, patience=None, refine_steps=3)
    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    lid = state.result()["loop_id"]
    cat = open_catalog()
    (rnd,) = cat.rounds(lid)
    child = cat.get_batch(rnd["batch_id"])
    assert child["parent_id"] is not None and child["status"] == "accepted"
    refiner = BatchReader(child["path"]).manifest["refiner"]
    assert refiner["real_n"] == 60  # the analysis half of 120, not the held-out half
    again = feedback_loop(params, return_state=True)  # finished: read back, nothing redone
    assert again.is_completed() and cat.rounds(lid)[0]["batch_id"] == child["id"]


def test_loop_rounds_can_train_on_the_mean_patch_of_the_analysis_part(prefect_harness, tmp_path):
    """--refine-method mean-patch: the round's batch is moved by the analysis part's mean
    image minus its own (nothing trained) and validated like any refined batch."""
    from flows.feedback_loop import LoopParams, feedback_loop
    from synth.targets import write_simulated_target
    from synthloop.lineage import open_catalog

    real = write_simulated_target(tmp_path / "sim", 120, 3, labeled=True)
    params = LoopParams(task="gaze", real=str(real), rounds=1, n_per_round=300,
                        steps_per_round=4, patience=None, refine_method="mean-patch",
                        refine_strength=0.25)
    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    (rnd,) = open_catalog().rounds(state.result()["loop_id"])
    child = BatchReader(open_catalog().get_batch(rnd["batch_id"])["path"])
    assert child.manifest["refiner"]["config"] == {"method": "mean-patch", "strength": 0.25}
    assert child.manifest["refiner"]["real_n"] == 60  # the analysis half only
    with pytest.raises(UsageError, match="trains nothing"):
        LoopParams(task="gaze", real=str(real), refine_steps=5, refine_method="mean-patch").config()


def test_a_loop_with_one_eye_side_mirrored_refines_trains_and_registers_that_way(
        prefect_harness, tmp_path):
    """--mirror-eye L: the mean patch is fitted on the mirrored analysis eyes, the round's
    checkpoint records the side (so `synthloop evaluate` mirrors too), and the registered
    version says what a caller of the served model must do."""
    import mlflow

    from flows.feedback_loop import LoopParams, feedback_loop
    from models.checkpoint import load_checkpoint
    from synth.targets import write_simulated_target
    from synthloop.lineage import open_catalog

    real = write_simulated_target(tmp_path / "sim", 120, 3, labeled=True)
    images = [ln.split(",")[0] for ln in (real / "labels.csv").read_text().splitlines()[1:]]
    (real / "meta.csv").write_text("image,eye\n" + "".join(
        f"{im},{'LR'[i % 2]}\n" for i, im in enumerate(images)))
    params = LoopParams(task="gaze", real=str(real), rounds=1, n_per_round=300,
                        steps_per_round=4, patience=None, refine_method="mean-patch",
                        refine_strength=0.25, mirror_eye="L")
    state = feedback_loop(params, return_state=True)
    assert state.is_completed(), state.message
    res = state.result()
    (rnd,) = open_catalog().rounds(res["loop_id"])
    child = BatchReader(open_catalog().get_batch(rnd["batch_id"])["path"])
    assert child.manifest["refiner"]["real_mirror_eye"] == "L"
    run = open_catalog().get_training_run(rnd["run_id"])
    ck = load_checkpoint(run["checkpoint"])
    assert ck["train_config"]["task_kwargs"]["mirror_eye"] == "L"
    version = res["registered"]["model"].rsplit("/", 1)[1]
    tags = mlflow.MlflowClient().get_model_version("synthloop-gaze", version).tags
    assert tags["mirror_eye"] == "L"
