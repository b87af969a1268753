"""Flow parameters are typed: the dashboard's run form rejects bad values with a message."""

import pytest
from pydantic import ValidationError

from flows.generate_batch import GenerateParams
from flows.train_gaze import EvaluateParams, TrainParams


def test_train_params_defaults_and_rejections():
    p = TrainParams(target="t", out="o")
    assert p.method == "dann" and p.steps == 2000 and p.device == "cpu"
    with pytest.raises(ValidationError, match="method"):
        TrainParams(target="t", out="o", method="mmd")
    with pytest.raises(ValidationError, match="steps"):
        TrainParams(target="t", out="o", steps=0)
    with pytest.raises(ValidationError, match="target"):
        TrainParams(out="o")


def test_generate_and_evaluate_params():
    assert GenerateParams().n == 2048
    with pytest.raises(ValidationError, match="n"):
        GenerateParams(n=0)
    with pytest.raises(ValidationError, match="device"):
        GenerateParams(device="tpu")
    assert EvaluateParams(data="d").model == "models:/synthloop-gaze@champion"


def test_flow_signatures_expose_the_models_to_prefect():
    """Prefect builds the dashboard form from the flow's parameter schema."""
    from prefect.utilities.callables import parameter_schema

    from flows.feedback_loop import feedback_loop
    from flows.generate_batch import generate_batch, validate_existing_batch
    from flows.train_gaze import evaluate_gaze, pseudo_label_gaze, train_gaze

    for flow, name in ((generate_batch, "GenerateParams"), (train_gaze, "TrainParams"),
                       (pseudo_label_gaze, "PseudoLabelParams"),
                       (evaluate_gaze, "EvaluateParams"), (feedback_loop, "LoopParams"),
                       (validate_existing_batch, "ValidateParams")):
        schema = parameter_schema(flow.fn).model_dump_for_openapi()
        assert name in schema.get("definitions", {}), schema
        props = schema["definitions"][name]["properties"]
        missing = [k for k, v in props.items() if "description" not in v]
        assert not missing, f"{name} fields without a description (blank in the dashboard form): {missing}"


def test_loop_params_defaults_and_rejections():
    from flows.feedback_loop import LoopParams

    p = LoopParams()
    assert p.real == "" and p.rounds == 3 and p.open_loop is False and p.patience == 1
    with pytest.raises(ValidationError, match="rounds"):
        LoopParams(rounds=0)
    with pytest.raises(ValidationError, match="method"):
        LoopParams(method="mmd")
    with pytest.raises(ValidationError, match="holdout_frac"):
        LoopParams(holdout_frac=1.0)


def test_every_deployment_points_at_a_flow_and_the_loop_runs_nightly():
    import importlib
    from pathlib import Path

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    names = {}
    for dep in spec["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        names[dep["name"]] = getattr(importlib.import_module(module), func)
    flows = {f.name for f in names.values()}
    assert {"generate-batch", "validate-batch", "train-gaze", "evaluate-gaze", "feedback-loop",
            "pseudo-label-gaze"} <= flows
    loop = next(d for d in spec["deployments"] if d["name"] == "feedback-loop-gaze")
    assert loop["schedules"][0]["cron"] == "0 2 * * *"
    assert {d["work_pool"]["name"] for d in spec["deployments"]} == {"cpu", "gpu"}
