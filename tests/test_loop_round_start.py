"""``synthloop loop --round-start scratch``: each round trains from fresh weights instead of
the previous round's, so a round's model is the work of its own distribution at the same
budget (on real eyes the warm-started rounds got worse the more synthetic steps they had).
The command line and the form offering it: ``test_loop_update_choice``."""

from __future__ import annotations

import pytest

from synthloop.errors import UsageError
from synthloop.loop.config import LoopConfig, resolve_round_start


def test_the_default_start_keeps_a_loop_s_identity_and_scratch_changes_it():
    plain = LoopConfig(task="gaze", real="/eyes")
    assert "round_start" not in plain.to_dict()
    assert LoopConfig(task="gaze", real="/eyes", round_start="warm").to_dict() == plain.to_dict()
    scratch = LoopConfig(task="gaze", real="/eyes", round_start="scratch")
    assert scratch.to_dict()["round_start"] == "scratch"
    # both arms of a comparison carry it: an open loop trained from scratch is another loop
    assert (LoopConfig(task="gaze", real="/eyes", open_loop=True, round_start="scratch").to_dict()
            != LoopConfig(task="gaze", real="/eyes", open_loop=True).to_dict())


def test_rounds_start_from_the_previous_weights_only_when_warm():
    previous = "/home/loops/l1/round-000/model/last.pt"
    warm = LoopConfig(task="gaze", real="/eyes")
    scratch = LoopConfig(task="landmarks", real="/faces", round_start="scratch")
    assert warm.starting_weights(previous) == previous and warm.starting_weights(None) is None
    assert scratch.starting_weights(previous) is None and scratch.starting_weights(None) is None


def test_an_unknown_start_is_refused_naming_the_choices():
    with pytest.raises(UsageError, match="round_start 'cold': choose from warm, scratch"):
        LoopConfig(task="gaze", real="/eyes", round_start="cold")


def test_each_task_names_its_own_default_start():
    # gaze: more synthetic steps read real eyes worse, so a round starts fresh; landmark
    # models are far from converged after one round and live on the accumulated steps
    assert resolve_round_start("gaze", "default") == "scratch"
    assert resolve_round_start("landmarks", "default") == "warm"
    assert resolve_round_start("gaze", "warm") == "warm"
    with pytest.raises(UsageError, match="round start 'cold': choose from default, warm, scratch"):
        resolve_round_start("gaze", "cold")
