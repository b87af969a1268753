"""`--fresh`: a new loop with otherwise equal settings (synthloop.loop.rounds.fresh_config),
numbered so that an interrupted fresh loop is resumed by asking again, and a finished
one never runs twice; a loop without it keeps the id it always had."""

import dataclasses

import pytest


@pytest.fixture(scope="module")
def cfg_and_real(tmp_path_factory):
    from synth.targets import write_simulated_target
    from synthloop.loop.config import LoopConfig
    from synthloop.loop.real import load_real

    target = write_simulated_target(tmp_path_factory.mktemp("t") / "sim", 60, 1, labeled=True)
    cfg = LoopConfig(task="gaze", real=str(target))
    return cfg, load_real(cfg)


def test_fresh_takes_the_first_restart_that_has_not_finished(cfg_and_real):
    from synthloop.loop.rounds import fresh_config, initial_distribution, loop_id

    cfg, real = cfg_and_real
    dist0 = initial_distribution(cfg)
    base = loop_id(cfg, real, dist0)
    finished = {base}
    first = fresh_config(cfg, real, finished.__contains__)
    assert first.restart == 1 and loop_id(first, real, dist0) != base
    finished.add(loop_id(first, real, dist0))
    second = fresh_config(cfg, real, finished.__contains__)
    assert second.restart == 2 and loop_id(second, real, dist0) not in finished
    # interrupted (not finished): asking again resumes the same fresh loop
    assert fresh_config(cfg, real, finished.__contains__) == second


def test_a_loop_without_restart_keeps_its_id(cfg_and_real):
    cfg, _ = cfg_and_real
    assert "restart" not in cfg.to_dict()  # old loops' ids and MLflow params are unchanged
    assert dataclasses.replace(cfg, restart=1).to_dict()["restart"] == 1
