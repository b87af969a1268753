"""The dashboard's round report (synthloop.loop.artifacts, analysis.update_text): the
distribution change in degrees like the tables beside it, numbers rounded with units,
and links to the MLflow run and to plots the MLflow server serves, not local paths."""

import math
import re

import numpy as np

from analysis.update_policy import update_distribution
from analysis.update_text import describe_update, display_value
from synth.eye_distribution import default_eye_distribution
from synthloop.loop.artifacts import MlflowLinks, round_markdown, slice_rows, summary_rows
from synthloop.loop.config import LoopConfig

LINKS = MlflowLinks("http://mlflow.example:5000", "4")


def _update():
    """A real label re-weighting: real eyes looking down have large errors."""
    dist = default_eye_distribution()
    rng = np.random.default_rng(0)
    pitch = rng.uniform(math.radians(-30), math.radians(30), 600)
    yaw = rng.uniform(math.radians(-30), math.radians(30), 600)
    errors = np.where(pitch < math.radians(-15), 20.0, 5.0) + rng.random(600)
    new, report = update_distribution(dist, errors=errors,
                                      real_values={"gaze_pitch": pitch, "gaze_yaw": yaw})
    return dist, new, report


def test_the_change_is_told_in_degrees_not_radians():
    dist, _, report = _update()
    lines = describe_update(dist, report, "deg")
    pitch = next(line for line in lines if "**gaze_pitch**" in line)
    # the worst bin is one of the real eyes looking down, given in degrees
    lo, hi = (float(x) for x in re.search(r"worst (-?[\d.]+) to (-?[\d.]+) deg", pitch).groups())
    assert hi <= -10 and lo >= -45, pitch
    assert re.search(r"mean error 2\d\.\d deg", pitch)
    assert re.search(r"\d+% to \d+% of samples", pitch)
    assert "0.5" not in pitch.split("worst")[1].split("deg")[0]  # no radian edges


def test_display_value_converts_only_angles():
    dist = default_eye_distribution()
    assert display_value(dist.factor("gaze_pitch"), math.radians(-22.5)) == "-22.5 deg"
    assert display_value(dist.factor("eye_width_mm"), 27.0) == "27 mm"


def test_round_report_links_the_run_and_its_plots_served_by_mlflow():
    dist, new, report = _update()
    cfg = LoopConfig(task="gaze", real="/r", rounds=3)
    res = {"plots": {"slices": "/home/x/loops/l/round-01/slice_errors.png",
                     "distribution": "/home/x/loops/l/round-01/distribution_change.png"},
           "report": report,
           "worst_slices": [{"variable": "gaze_pitch_deg", "lo": -10.000003977961152, "hi": 0.0,
                             "n": 414, "mean_error": 13.526236922964065,
                             "ci95": [13.080985066430522, 13.971488779497609]}]}
    md = round_markdown(cfg, "loop-l", 1, dist, new, {"real_error": 12.0144, "analysis_error": 11.5},
                        res, "run-9", LINKS, "postgresql://u:secret@db/x")
    assert "round 1 (2 of 3, closed loop)" in md
    assert "**12.01 deg**" in md and "11.50 deg" in md
    assert "[the round run](http://mlflow.example:5000/#/experiments/4/runs/run-9" in md
    assert ("(http://mlflow.example:5000/get-artifact?path=plots/slice_errors.png&run_uuid=run-9)"
            in md)
    assert "/home/x/loops" not in md  # no local paths
    assert "secret" not in md  # the store URL is redacted
    assert "| gaze_pitch_deg | -10 to 0 | 414 | 13.53 | 13.08 to 13.97 |" in md
    assert "**gaze_pitch**" in md


def test_tables_are_rounded_with_the_unit_in_the_column():
    rows = slice_rows([{"variable": "v", "lo": 0.123456, "hi": 1.98765, "n": 3,
                        "mean_error": 9.704065182213048}], "deg")
    assert rows == [{"variable": "v", "from": 0.123, "to": 1.988, "n": 3, "mean_error_deg": 9.7}]
    rows = summary_rows([{"round": 0, "real_error": 9.704065182213048, "distribution_id": "d",
                          "batch_id": "b", "mlflow_run_id": "r"}], "% NME io", LINKS)
    assert rows[0]["held_out_error_pct_NME_io"] == 9.7
    assert rows[0]["mlflow_run"].endswith("#/experiments/4/runs/r?workflowType=machine_learning") \
        or rows[0]["mlflow_run"].endswith("#/experiments/4/runs/r")
