"""What `synthloop loop` / `demo` print at the end (synthloop.cli.loop_summary): units on
every error, "simulated" when it is, whether anything ran now, the registered model, and
the exact pages to open next."""

from synthloop.cli.loop_summary import SummaryContext, next_steps, summary_lines

ROUNDS = [{"round": 0, "real_error": 12.0144, "distribution_id": "dist-a", "batch_id": "batch-a",
           "mlflow_run_id": "r0"},
          {"round": 1, "real_error": 11.5, "distribution_id": "dist-b", "batch_id": "batch-b",
           "mlflow_run_id": "r1"}]
CTX = SummaryContext(task="gaze", mode="closed", seed=0, real="/data/eyes", unit="deg",
                     home="/h", tracking="sqlite:////h/mlflow.db",
                     catalog="postgresql+psycopg://u:pw@db:5432/c",
                     mlflow_ui="http://127.0.0.1:5000", experiment_id="7")
REG = {"round": 1, "version": "3", "model": "models:/synthloop-gaze/3", "analysis_error": 10.25,
       "promoted": False, "reason": "not better than the champion"}


def _res(**kw):
    return {"loop_id": "loop-x", "rounds": ROUNDS, "stopped": "budget reached: 2 of 2 rounds done",
            "rounds_before": 0, "simulated": False, "registered": REG, "flow_run_id": "f-1",
            "mlflow_run_id": "parent-1", **kw}


def test_rounds_carry_units_and_the_registered_model():
    text = "\n".join(summary_lines(_res(), CTX))
    assert "12.01 deg" in text and "11.50 deg" in text
    assert "12.0144" not in text  # rounded
    assert "real labeled data" in text and "simulat" not in text
    assert "models:/synthloop-gaze/3" in text and "round 1" in text and "10.25 deg" in text
    assert "champion unchanged (not better than the champion)" in text
    assert "nothing ran now" not in text and "resumed" not in text
    assert "/h/loops/loop-x/real_error.png" in text and "<loop id>" not in text
    assert "u:pw" not in text and "db:5432/c" in text  # store URLs shown redacted


def test_a_simulated_target_is_called_so_on_every_error():
    text = "\n".join(summary_lines(_res(simulated=True), CTX))
    assert "simulated target (a simulation, not real data)" in text
    assert "held-out error (simulated)" in text


def test_a_finished_loop_shown_again_says_nothing_ran_and_how_to_start_fresh():
    text = "\n".join(summary_lines(_res(rounds_before=2), CTX))
    assert "nothing ran now" in text and "--fresh" in text


def test_a_resumed_loop_says_which_rounds_came_from_before():
    text = "\n".join(summary_lines(_res(rounds_before=1), CTX))
    assert "resumed: round 0 came from an earlier" in text
    text = "\n".join(summary_lines(_res(rounds=ROUNDS * 2, rounds_before=3), CTX))
    assert "resumed: rounds 0-2 came from an earlier" in text


def test_next_steps_link_this_run_in_both_dashboards():
    text = "\n".join(next_steps(_res(), CTX, [("synthloop loop --open-loop", "the baseline")]))
    assert "http://127.0.0.1:4200/runs/flow-run/f-1" in text
    assert "http://127.0.0.1:5000/#/experiments/7/runs" in text  # the training runs page
    assert "#/experiments/7/runs/parent-1" in text
    assert "synthloop loop --open-loop" in text and "the baseline" in text
    assert ("synthloop ui" in text) or ("make ui" in text)


def test_without_an_experiment_no_mlflow_link_is_made_up():
    ctx = SummaryContext(**{**CTX.__dict__, "experiment_id": None})
    text = "\n".join(next_steps(_res(), ctx))
    assert "#/experiments" not in text and "4200/runs/flow-run/f-1" in text
