"""The feedback loop's stopping rule: a budget of rounds, or ``patience`` rounds in a row
without a relative gain of ``min_improvement`` on the best held-out error so far.

Every expected outcome below is worked out by hand in the comments (errors chosen so the
products are exact in binary floating point where a test sits on the boundary)."""

from __future__ import annotations

import math

import pytest

from analysis.stopping import StoppingRule, should_stop


def _rounds_run(errors: list[float], rule: StoppingRule) -> int:
    """How many rounds the loop runs when round k would score ``errors[k]``: the flow's
    own decision sequence (append the round's error, then ask)."""
    seen: list[float] = []
    for e in errors:
        seen.append(e)
        stop, _ = should_stop(seen, rule)
        if stop:
            return len(seen)
    raise AssertionError(f"never stopped after {len(seen)} rounds")


def test_defaults_are_patience_one_and_two_percent():
    rule = StoppingRule(3)
    assert (rule.max_rounds, rule.min_improvement, rule.patience) == (3, 0.02, 1)


# --------------------------------------------------------------------------- budget


def test_budget_stops_even_while_improving():
    rule = StoppingRule(max_rounds=3, min_improvement=0.1, patience=1)
    # every round halves the error (50 % >> 10 %), but 3 of 3 rounds are done
    stop, why = should_stop([8.0, 4.0, 2.0], rule)
    assert stop and why.startswith("budget reached: 3 of 3")
    assert not should_stop([8.0, 4.0], rule)[0]
    assert _rounds_run([8.0, 4.0, 2.0, 1.0, 0.5], rule) == 3


def test_budget_of_one_round_stops_after_it():
    assert should_stop([5.0], StoppingRule(max_rounds=1, patience=1)) == (
        True, "budget reached: 1 of 1 rounds done")


# --------------------------------------------------------------------------- patience = 1


def test_patience_one_never_stops_after_the_first_round():
    # k = 1 <= patience: nothing to compare with yet
    stop, why = should_stop([10.0], StoppingRule(max_rounds=5, min_improvement=0.5, patience=1))
    assert not stop and why == "1 of 5 rounds done"
    assert should_stop([], StoppingRule(max_rounds=5))[0] is False


def test_patience_one_stops_after_one_round_without_enough_improvement():
    rule = StoppingRule(max_rounds=5, min_improvement=0.1, patience=1)
    # 10 -> 9.5 is 5 % better; 10% is needed (9.5 >= 10 * 0.9 = 9): stop
    stop, why = should_stop([10.0, 9.5], rule)
    assert stop and why.startswith("no improvement beyond 10.0% in the last 1 round(s)")
    assert "9.5" in why and "10" in why
    # worse than before: stop
    assert should_stop([10.0, 12.0], rule)[0]


def test_patience_one_continues_when_the_improvement_is_enough():
    rule = StoppingRule(max_rounds=5, min_improvement=0.1, patience=1)
    # 10 -> 8 is 20 % better (8 < 9): continue
    stop, why = should_stop([10.0, 8.0], rule)
    assert not stop and why.startswith("improving: best held-out error 8")


def test_the_threshold_is_a_strict_relative_gain():
    # min_improvement 0.25: 8 * (1 - 0.25) = 6 exactly; 6 is not < 6, so it does not count
    rule = StoppingRule(max_rounds=5, min_improvement=0.25, patience=1)
    assert should_stop([8.0, 6.0], rule)[0] is True
    assert should_stop([8.0, 5.5], rule)[0] is False
    # relative, not absolute: the same rule on errors 100x smaller (an absolute gain of
    # 0.01 is 12.5 % here: too little; 0.025 is 31 %: enough)
    assert should_stop([0.08, 0.07], rule)[0] is True
    assert should_stop([0.08, 0.055], rule)[0] is False


def test_patience_one_compares_with_the_best_error_so_far_not_the_previous_one():
    rule = StoppingRule(max_rounds=10, min_improvement=0.1, patience=1)
    # best before the last round is min(10, 5) = 5; 4.6 > 5 * 0.9 = 4.5: stop (although
    # 4.6 is 8 % better than 5 and 54 % better than 10)
    assert should_stop([10.0, 5.0, 4.6], rule)[0] is True
    # 4 < 4.5: continue
    assert should_stop([10.0, 5.0, 4.0], rule)[0] is False
    # a rebound above the best stops, even though it improves on the round before it
    assert should_stop([10.0, 5.0, 7.0, 6.0], rule)[0] is True


def test_the_loop_runs_until_the_first_round_without_enough_gain():
    # defaults: patience 1, 2 %. 10 -> 8 (20 %) continue; 8 -> 7.9 (1.25 % < 2 %; 7.9 >=
    # 8 * 0.98 = 7.84) stop after round 3: round 4's 5.0 is never run
    rule = StoppingRule(max_rounds=10)
    assert _rounds_run([10.0, 8.0, 7.9, 5.0], rule) == 3
    # 10 -> 9.7 (3 %) -> 9.4 (3.1 %) -> 9.3 (1.06 %): stop after 4
    assert _rounds_run([10.0, 9.7, 9.4, 9.3, 1.0], rule) == 4


# --------------------------------------------------------------------------- patience > 1, None


def test_patience_two_waits_two_rounds():
    rule = StoppingRule(max_rounds=10, min_improvement=0.1, patience=2)
    # k = 2 <= 2: no decision yet, even without any gain
    assert should_stop([10.0, 11.0], rule)[0] is False
    # best before the last 2 = 10, best within them = 9.5 > 9: stop
    stop, why = should_stop([10.0, 11.0, 9.5], rule)
    assert stop and "last 2 round(s)" in why
    # within the last two, 8.5 < 9: continue
    assert should_stop([10.0, 8.5, 9.9], rule)[0] is False


def test_patience_none_runs_every_round():
    rule = StoppingRule(max_rounds=4, min_improvement=0.1, patience=None)
    # the error only grows, yet every round of the budget runs
    for k in range(1, 4):
        stop, why = should_stop([10.0 + i for i in range(k)], rule)
        assert not stop and why == f"{k} of 4 rounds done"
    assert should_stop([10.0, 11.0, 12.0, 13.0], rule) == (True, "budget reached: 4 of 4 rounds done")
    assert _rounds_run([10.0, 11.0, 12.0, 13.0, 14.0], rule) == 4


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_errors_raise(bad):
    with pytest.raises(ValueError, match="finite"):
        should_stop([1.0, bad], StoppingRule(5))


@pytest.mark.parametrize("kw,match", [({"max_rounds": 0}, "max_rounds"),
                                      ({"max_rounds": 3, "min_improvement": 1.0}, "min_improvement"),
                                      ({"max_rounds": 3, "min_improvement": -0.1}, "min_improvement"),
                                      ({"max_rounds": 3, "patience": 0}, "patience")])
def test_invalid_rules_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        StoppingRule(**kw)
