"""What the terminal shows of a flow's log lines when not verbose: one line per record,
no engine chatter, no traceback (the dashboard keeps it), no repeated failed-state line."""

import logging
import sys

from synthloop.cli.common import TRACEBACK_HINT, _DropEngineChatter, _OneLineFormatter


def _record(msg: str, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("/data/labels.csv: row 3: pitch is 'abc'")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("prefect.task_runs", level, __file__, 1, msg, None, exc_info)


def test_a_failing_task_is_one_line_that_says_where_the_traceback_is():
    rec = _record("Task run failed with exception: ValueError('bad row')", logging.ERROR, exc=True)
    text = _OneLineFormatter().format(rec)
    assert "\n" not in text and "Traceback" not in text
    assert text.endswith("Task run failed with exception: ValueError('bad row') " + TRACEBACK_HINT)
    # the record keeps its traceback for the dashboard's handler, which formats it itself
    assert "Traceback" in logging.Formatter().format(rec)


def test_lines_without_an_exception_carry_no_hint():
    text = _OneLineFormatter().format(_record("round 1: 12.3 deg"))
    assert text.endswith(" | round 1: 12.3 deg")


def test_the_filter_drops_chatter_and_the_repeated_failed_state_but_keeps_errors():
    keep = _DropEngineChatter().filter
    assert not keep(_record("Finished in state Completed()"))
    assert not keep(_record("Finished in state Failed('Task run encountered an exception')",
                            logging.ERROR))
    assert keep(_record("Encountered exception during execution: ValueError('x')", logging.ERROR))
    assert keep(_record("Finished in state Crashed('killed')", logging.ERROR))
    assert keep(_record("round 2 of 3: generating 3,000 eyes"))
    assert keep(_record("Executing something", logging.WARNING))
