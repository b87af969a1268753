"""What the Prefect dashboard shows of a loop: each round's report (Markdown) and the
tables of slices and rounds, with units, rounded numbers and links into the MLflow UI
(the round's run, its plots served by MLflow) instead of local paths and ids.

Pure text: the Prefect tasks publish it (``tasks/loop.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.update_text import describe_update
from catalog.engine import redact
from synthloop.loop.config import LoopConfig
from synthloop.mlflow_links import artifact_url, run_url

__all__ = ["MlflowLinks", "round_markdown", "slice_rows", "summary_rows"]

#: the MLflow artifact folder the round's plots are logged to (``tasks/loop.analyse_round``)
PLOTS = "plots"


@dataclass(frozen=True)
class MlflowLinks:
    """Addresses in the MLflow UI at ``base`` for runs of one experiment."""

    base: str
    experiment_id: str | None

    def run(self, run_id: str) -> str | None:
        return None if self.experiment_id is None else run_url(self.base, self.experiment_id, run_id)

    def artifact(self, run_id: str, path: str) -> str:
        return artifact_url(self.base, run_id, path)


def _md_link(text: str, url: str | None) -> str:
    return f"[{text}]({url})" if url else f"`{text}`"


def round_markdown(cfg: LoopConfig, lid: str, k: int, dist: Any, new: Any,
                   evaluation: dict[str, float], res: dict[str, Any], round_run: str,
                   links: MlflowLinks, tracking_uri: str | None = None) -> str:
    """The round's report: errors with units, what the next distribution changes (in the
    table's units), the worst slices, and links to the MLflow run and its plots."""
    unit = cfg.error_unit
    plots = {name: f"{PLOTS}/{_name(path)}" for name, path in res["plots"].items()}
    lines = [f"# Feedback loop `{lid}`, round {k} ({k + 1} of {cfg.rounds}, {cfg.mode} loop)", "",
             f"- held-out error: **{evaluation['real_error']:.2f} {unit}** "
             f"(analysis part: {evaluation['analysis_error']:.2f} {unit})",
             f"- distribution `{dist.id}`, next `{new.id}`",
             f"- MLflow: {_md_link('the round run', links.run(round_run))}"
             + (f" (store `{redact(tracking_uri)}`)" if tracking_uri else ""),
             "- plots: " + ", ".join(_md_link(name, links.artifact(round_run, path))
                                     for name, path in plots.items()),
             "", "## What the next round changes", ""]
    lines += describe_update(dist, res["report"], unit)
    lines += ["", f"## Worst slices (analysis part, mean error in {unit})", "",
              f"| variable | range | n | mean error ({unit}) | 95% interval |",
              "|---|---|---|---|---|"]
    for s in res["worst_slices"]:
        ci = s.get("ci95") or [float("nan"), float("nan")]
        lines.append(f"| {s['variable']} | {s['lo']:.3g} to {s['hi']:.3g} | {s['n']} | "
                     f"{s['mean_error']:.2f} | {ci[0]:.2f} to {ci[1]:.2f} |")
    if "slices" in plots:
        lines += ["", f"![errors by slice]({links.artifact(round_run, plots['slices'])})"]
    return "\n".join(lines)


def _name(path: Any) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


def slice_rows(slices: list[dict[str, Any]], unit: str) -> list[dict[str, Any]]:
    """The table of every slice, rounded, with the unit in the column name."""
    col = f"mean_error_{unit.replace(' ', '_').replace('%', 'pct')}"
    return [{"variable": s["variable"], "from": round(float(s["lo"]), 3),
             "to": round(float(s["hi"]), 3), "n": int(s["n"]),
             col: round(float(s["mean_error"]), 2)} for s in slices]


def summary_rows(rounds: list[dict[str, Any]], unit: str, links: MlflowLinks) -> list[dict[str, Any]]:
    """One row per round: the held-out error rounded with its unit, ids, the run's link."""
    col = f"held_out_error_{unit.replace(' ', '_').replace('%', 'pct')}"
    return [{"round": r["round"], col: round(float(r["real_error"]), 2),
             "distribution": r["distribution_id"], "batch": r["batch_id"],
             "mlflow_run": links.run(r["mlflow_run_id"]) or r["mlflow_run_id"]}
            for r in rounds]
