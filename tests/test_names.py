"""One source of truth for names and defaults: the command line's choices, the flows'
forms and the tuning search spaces offer exactly what the registries hold, and the
loop's defaults are written once (LoopConfig)."""

import argparse
import typing

import pytest

from models.names import METHODS
from models.registry import create_method, list_methods, list_tasks, method_needs_target
from synthloop.cli.parser import build_parser
from synthloop.loop.config import LOOP_DEFAULTS, LoopConfig
from synthloop.taskspec import TASK_NAMES, get_task
from synthloop.tuning.space import OBJECTIVE_NAMES, OBJECTIVES, SEARCH_SPACES


def _literal(model, field: str) -> set[str]:
    """The values a form's ``Literal`` field (or ``Literal | None``) offers."""
    ann = model.model_fields[field].annotation
    parts = [ann] if typing.get_origin(ann) is typing.Literal else typing.get_args(ann)
    return {v for p in parts if typing.get_origin(p) is typing.Literal for v in typing.get_args(p)}


def _options(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {opt: a for a in sub.choices[command]._actions for opt in a.option_strings}


def test_method_names_equal_the_registry():
    assert sorted(METHODS) == list_methods()
    assert set(SEARCH_SPACES) == set(METHODS)
    for name in METHODS:  # the registration tag says what an instance does
        assert method_needs_target(name) == create_method(name, feature_dim=8).needs_target


def test_task_names_equal_every_registry():
    from expectations.validate import TASK_SUITES

    assert sorted(TASK_NAMES) == list_tasks() == sorted(TASK_SUITES)
    for name in TASK_NAMES:
        spec = get_task(name)
        assert spec.name == name and spec.default_model and spec.error_unit
    with pytest.raises(ValueError, match="unknown task 'pose'; known: gaze, landmarks"):
        get_task("pose")


def test_flow_forms_offer_the_registered_names():
    from flows.feedback_loop import LoopParams
    from flows.generate_batch import GenerateParams
    from flows.train_gaze import TrainParams
    from flows.tune import TuneParams

    for form in (LoopParams, TrainParams, TuneParams):
        assert _literal(form, "method") == set(METHODS), form.__name__
    assert _literal(LoopParams, "task") == _literal(GenerateParams, "task") == set(TASK_NAMES)
    assert _literal(TuneParams, "objective") - {"auto"} == set(OBJECTIVE_NAMES) == set(OBJECTIVES)


@pytest.mark.parametrize("command", ["train", "tune", "loop"])
def test_cli_method_choices_are_the_registry(command):
    assert set(_options(command)["--method"].choices) == set(METHODS)


@pytest.mark.parametrize("command", ["generate", "train", "evaluate", "loop", "distribution"])
def test_cli_task_choices_are_the_registry(command):
    assert set(_options(command)["--task"].choices) == set(TASK_NAMES)


def test_cli_objectives_are_the_tuning_objectives():
    assert set(_options("tune")["--objective"].choices) == set(OBJECTIVES)


def test_loop_defaults_are_written_once():
    from flows.feedback_loop import LoopParams

    cfg = LoopConfig(task="gaze", real="x")
    loop = _options("loop")
    for field in ("rounds", "seed", "n_per_round", "steps_per_round", "method", "patience",
                  "min_improvement", "holdout_frac", "open_loop"):
        assert LoopParams.model_fields[field].default == LOOP_DEFAULTS[field] == getattr(cfg, field)
        flag = "--" + field.replace("_", "-")
        if flag in loop and field != "open_loop":
            assert loop[flag].default == LOOP_DEFAULTS[field], flag
    assert cfg.model == get_task("gaze").default_model
    assert LoopConfig(task="landmarks", real="x").batch_size == get_task("landmarks").default_batch_size
