"""Addresses in the MLflow UI, for the links in dashboard artifacts and command output.

With a tracking server the UI is the server itself. With the embedded (SQLite) store
there is no server until ``synthloop ui`` starts one, on :data:`DEFAULT_UI` unless told
otherwise (``SYNTHLOOP_MLFLOW_UI``), so the links point there.

**The UI's two modes.** MLflow 3.17's UI has a GenAI mode (an experiment lands on a
Traces overview, runs are "Evaluations", no model registry in the sidebar) and a
model-training mode, and a fresh browser starts in GenAI mode. The UI reads the mode from
the ``workflowType`` query parameter of an experiment page's address first and from the
browser's localStorage (``mlflow.workflowType``, written only by the "GenAI" / "Model
training" switch at the top of the sidebar) otherwise; the ``mlflow.experimentKind``
experiment tag is not consulted, and no server setting chooses it (mlflow/mlflow#24498).
So the experiment and run links here carry ``workflowType=machine_learning``
(:data:`TRAINING_MODE`). Links the UI builds itself (a run clicked in the table, the
registered models page) drop it, hence :data:`MODE_HINT`: one click on the switch, and
the browser remembers it.

The run list is addressed as ``#/experiments/<id>/runs``: without it an experiment lands
on its default tab, the GenAI overview (traces, token usage) in GenAI mode.
"""

from __future__ import annotations

import os
from urllib.parse import quote

__all__ = ["DEFAULT_UI", "MODE_HINT", "TRAINING_MODE", "artifact_url", "experiments_url",
           "models_url", "run_url", "training_runs_url", "ui_base", "ui_guide"]

DEFAULT_UI = "http://127.0.0.1:5000"

#: the query parameter that opens a UI page in model-training mode
TRAINING_MODE = "workflowType=machine_learning"

MODE_HINT = ("MLflow 3 opens in its GenAI mode in a new browser; the experiment links above open "
             "the training view, and one click on \"Model training\" at the top of the sidebar "
             "keeps it (the browser remembers).")


def ui_base(tracking_uri: str) -> str:
    """The MLflow UI's address for a tracking URI (no trailing slash)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return os.environ.get("SYNTHLOOP_MLFLOW_UI", DEFAULT_UI).rstrip("/")


def _page(base: str, route: str) -> str:
    # the UI routes inside the fragment, and reads the query string after the route
    return f"{base}/#{route}?{TRAINING_MODE}"


def training_runs_url(base: str, experiment_id: str) -> str:
    """The experiment's list of training runs."""
    return _page(base, f"/experiments/{experiment_id}/runs")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page."""
    return _page(base, f"/experiments/{experiment_id}/runs/{run_id}")


def experiments_url(base: str) -> str:
    """The list of experiments."""
    return _page(base, "/experiments")


def models_url(base: str) -> str:
    """The registered models. The page is the same in both modes, and it ignores
    ``workflowType`` (only the sidebar around it follows the stored mode)."""
    return f"{base}/#/models"


def artifact_url(base: str, run_id: str, path: str) -> str:
    """One artifact file of a run, served by the tracking server (an image opens as one);
    the route the UI itself uses to show an artifact."""
    return f"{base}/get-artifact?path={quote(path, safe='/')}&run_uuid={quote(run_id, safe='')}"


def ui_guide(base: str, experiments: dict[str, str | None]) -> list[str]:
    """The lines ``synthloop ui`` prints about the MLflow UI: each experiment's training
    runs (``experiments``: name -> id, None for one that does not exist yet), the
    registered models, and how to keep the UI in training mode."""
    width = max(len(n) for n in [*experiments, "registered models"])
    lines = [f"  {name:<{width}}  {training_runs_url(base, eid)}"
             for name, eid in experiments.items() if eid is not None]
    missing = [name for name, eid in experiments.items() if eid is None]
    later = ""
    if missing:
        names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
        later = (f"  ({names} appear{'s' if len(missing) == 1 else ''} here after "
                 f"{'its' if len(missing) == 1 else 'their'} first run)")
    lines.append(f"  {'experiments':<{width}}  {experiments_url(base)}{later}")
    lines.append(f"  {'registered models':<{width}}  {models_url(base)}")
    lines.append(MODE_HINT)
    return lines
