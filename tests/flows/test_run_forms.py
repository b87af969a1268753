"""The run forms the Prefect dashboard shows for every deployment in prefect.yaml.

The dashboard renders a flow's parameter schema (``parameter_schema``, what `prefect deploy`
sends to the server) as the Custom run form. An optional field typed ``X | None`` becomes an
``anyOf`` with ``{"type": "null"}``, which the form shows as a type toggle ("Property is type
None") instead of a text box; descriptions are read by users, not developers.
"""

import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "prefect.yaml").read_text())

#: wording that belongs in code, not on a form: Sphinx/RST markup, notes about the form
#: itself, Python's None (a user sees an empty box, not None)
DEV_WORDING = re.compile(r"``|:class:|:func:|:meth:|~synthloop|\bRendered by\b|\brun form\b|"
                         r"\bdashboard\b|\bNone\b|\bLoopConfig\b")


def _flow(entrypoint: str):
    path, func = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)


def _nullable(node) -> list[str]:
    """Paths inside a JSON schema where a value may be null."""
    found = []

    def walk(x, path):
        if isinstance(x, dict):
            for key in ("anyOf", "oneOf"):
                if any(isinstance(o, dict) and o.get("type") == "null" for o in x.get(key, [])):
                    found.append(path)
            t = x.get("type")
            if isinstance(t, list) and "null" in t or ("default" in x and x["default"] is None):
                found.append(path)
            for k, v in x.items():
                walk(v, f"{path}/{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}/{i}")

    walk(node, "")
    return sorted(set(found))


def _forms():
    seen = {}
    for dep in SPEC["deployments"]:
        seen.setdefault(dep["entrypoint"], []).append(dep)
    return sorted(seen.items())


@pytest.mark.parametrize(("entrypoint", "deployments"), _forms(), ids=[e for e, _ in _forms()])
def test_every_deployed_form_is_plain_fields_with_user_wording(entrypoint, deployments):
    schema = parameter_schema(_flow(entrypoint)).model_dump_for_openapi()
    assert not _nullable(schema), f"{entrypoint}: fields the form shows as a None toggle"
    (model,) = schema["definitions"].values()  # one params model per flow
    texts = {"(group)": model.get("description", "")}
    for name, field in model["properties"].items():
        assert field.get("title") and field.get("description"), f"{entrypoint}: {name} is bare"
        texts[name] = f"{field['title']}: {field['description']}"
    assert texts["(group)"], f"{entrypoint}: the form has no description"
    for name, text in texts.items():
        assert not DEV_WORDING.search(text), f"{entrypoint} {name}: developer wording: {text!r}"
    form = inspect.signature(_flow(entrypoint).fn, eval_str=True).parameters["params"].annotation
    for dep in deployments:  # the deployment's own values fill the same form without error
        if "parameters" in dep:  # none: only other flows start it (train-round-gpu, by the loop)
            form(**dep["parameters"]["params"])


def test_the_nullable_check_sees_an_optional_field():
    """The check above must be able to fail: a ``str | None`` field is nullable."""
    from pydantic import BaseModel

    class Form(BaseModel):
        x: str | None = None

    assert _nullable(Form.model_json_schema()) == ["/properties/x"]


def test_empty_form_fields_mean_the_defaults():
    """An empty text box (or None from Python callers) means the built-in default."""
    from flows.feedback_loop import LoopParams
    from flows.generate_batch import GenerateParams
    from flows.tune import TuneParams

    empty = LoopParams(real="", patience=0, distribution_path="", transfer_steps=0, model_kwargs={})
    none = LoopParams(real=None, patience=None, distribution_path=None, transfer_steps=None,
                      model_kwargs=None)
    assert empty == none
    cfg = LoopParams(real="/data/eyes", patience=0, transfer_steps=0).config()
    assert cfg.patience is None and cfg.transfer_steps is None and cfg.model_kwargs is None
    assert cfg.distribution is None and cfg.real == "/data/eyes"
    cfg = LoopParams(real="/data/eyes", patience=2, transfer_steps=50, model_kwargs={"c": 1}).config()
    assert cfg.patience == 2 and cfg.transfer_steps == 50 and cfg.model_kwargs == {"c": 1}
    assert GenerateParams(out=None).out == "" and GenerateParams(landmark_set=None) == GenerateParams()
    assert TuneParams(objective=None).objective == "auto" and TuneParams(target=None).target == ""
    # one eye side to mirror: "none" (or None) is no mirroring, L / R reach the loop as given
    assert LoopParams(mirror_eye=None) == LoopParams() and TuneParams(mirror_eye=None) == TuneParams()
    assert LoopParams(real="/data/eyes", mirror_eye="none").config().mirror_eye is None
    assert LoopParams(real="/data/eyes", mirror_eye="L").config().mirror_eye == "L"


def test_the_loop_form_states_the_label_transfer_default():
    from flows.feedback_loop import LoopParams
    from synthloop.landmarks.rounds import TRANSFER_STEPS

    assert f"({TRANSFER_STEPS})" in LoopParams.model_fields["transfer_steps"].description
