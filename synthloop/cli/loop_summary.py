"""What ``synthloop loop`` and ``synthloop demo`` print when the loop ends: one line per
round with units, whether anything ran now or an earlier run's results are shown, the
registered model, where the files are, and what to type next (with the URLs).

Pure formatting: :func:`summary_lines` takes the flow's result and plain values, so it is
tested without running a loop."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

__all__ = ["SummaryContext", "next_steps", "summary_lines"]

PREFECT_UI = "http://127.0.0.1:4200"


@dataclass(frozen=True)
class SummaryContext:
    """What the summary needs besides the flow's result."""

    task: str
    mode: str  # "closed" or "open"
    seed: int
    real: str
    unit: str
    home: str
    tracking: str  # store URL (shown redacted)
    catalog: str  # store URL (shown redacted)
    mlflow_ui: str  # base URL of the MLflow UI
    experiment_id: str | None = None
    prefect_ui: str = PREFECT_UI


def _rounds_text(done: list[int]) -> str:
    if len(done) == 1:
        return f"round {done[0]}"
    return f"rounds {done[0]}-{done[-1]}"


def summary_lines(res: dict[str, Any], ctx: SummaryContext) -> list[str]:
    """The summary of one loop run (module docstring)."""
    rounds = res["rounds"]
    simulated = bool(res.get("simulated"))
    data = "the built-in simulated target (a simulation, not real data)" if simulated \
        else "real labeled data"
    lines = [f"loop {res['loop_id']} ({ctx.mode} loop, seed {ctx.seed}): {ctx.task} on {data}",
             f"  data: {ctx.real}"]
    before = int(res.get("rounds_before", 0))
    if before and before >= len(rounds):
        lines.append("  nothing ran now: a loop with these settings finished earlier; its "
                     "results below (--fresh starts a new one, --seed N another seed)")
    elif before:
        lines.append(f"  resumed: {_rounds_text(list(range(before)))} came from an earlier, "
                     f"interrupted run; the rest ran now")
    err = "held-out error" + (" (simulated)" if simulated else "")
    lines.append(f"  {'round':<6} {err:<28} {'distribution':<19} batch")
    for r in rounds:
        value = f"{r['real_error']:.2f} {ctx.unit}"
        lines.append(f"  {r['round']:<6} {value:<28} {r['distribution_id']:<19} {r['batch_id']}")
    lines.append(f"stopped: {res['stopped']}")
    reg = res.get("registered")
    if reg:
        alias = ("made the champion" if reg["promoted"]
                 else "champion unchanged")
        lines += [f"registered: {reg['model']}, the model of round {reg['round']} (lowest error "
                  f"on the analysis part: {reg['analysis_error']:.2f} {ctx.unit})",
                  f"  {alias} ({reg['reason']})"]
    # imported here: the catalog package (SQLAlchemy, alembic) is half a second of start-up
    # that every other command would pay for this module
    from catalog.engine import redact

    loop_dir = f"{ctx.home}/loops/{res['loop_id']}"
    lines += ["",
              f"files    {loop_dir}/real_error.png, round-*/slice_errors.png, "
              "round-*/distribution_change.png",
              f"stores   MLflow {redact(ctx.tracking)}; catalog {redact(ctx.catalog)}; "
              f"home {ctx.home} "
              "(SYNTHLOOP_HOME)"]
    return lines


def next_steps(res: dict[str, Any], ctx: SummaryContext,
               also: list[tuple[str, str]] = ()) -> list[str]:
    """What to type next and which pages to open: the dashboards, this run in each, then
    the ``also`` commands, each ``(command, what it is for)``."""
    on_path = shutil.which("synthloop") is not None
    ui = "synthloop ui" if on_path else "make ui"
    lines = ["", "next:",
             f"  {ui:<22}  start the dashboards (Prefect :4200, MLflow :5000); then open"]
    if res.get("flow_run_id"):
        lines.append(f"    {ctx.prefect_ui}/runs/flow-run/{res['flow_run_id']}  this run in the "
                     "Prefect dashboard")
    if ctx.experiment_id is not None:
        from synthloop.mlflow_links import run_url, training_runs_url

        lines.append(f"    {training_runs_url(ctx.mlflow_ui, ctx.experiment_id)}  the training "
                     "runs in MLflow (rounds nested under the loop)")
        if res.get("mlflow_run_id"):
            lines.append(f"    {run_url(ctx.mlflow_ui, ctx.experiment_id, res['mlflow_run_id'])}"
                         "  this loop's run")
    for command, why in also:
        lines += [f"  {command}", f"      {why}"]
    if not on_path:
        lines.append("  (`source .venv/bin/activate` once puts `synthloop` on the PATH; `make ui` "
                     "needs no activation)")
    return lines
