"""What a finished loop leaves in the model registry: its best round's model.

The best round is the one with the lowest error on the **analysis part** of the real
data (the loop's declared validation); the held-out part, which the loop's headline
number comes from, never chooses anything. The champion alias moves only when the new
version beats the champion on that same metric over the same analysis part (a run
scored on other data, e.g. a ``synthloop train`` run, is not comparable and keeps its
alias), or when there is no champion yet.

Registration happens once per loop: the version is recorded in the loop's parent run
(tag :data:`REGISTERED_TAG`), so a resumed or re-run loop reports it instead of
registering again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from synthloop import tracking
from synthloop.loop.config import LoopConfig
from synthloop.loop.real import RealSplit
from synthloop.runs import fingerprint
from synthloop.settings import Settings
from synthloop.taskspec import get_task

__all__ = ["REGISTERED_TAG", "best_round", "register_best_round", "validation_key"]

REGISTERED_TAG = "registered_model"
VALIDATION_TAG = "validation_data"
SELECTION_TAG = "selection_metric"


def validation_key(real: RealSplit) -> str:
    """Names the analysis part: the real data's content and which samples are in it."""
    return fingerprint([real.fingerprint, *map(int, real.analysis)])


def best_round(rounds: list[dict[str, Any]], analyses: dict[str, dict[str, Any]]
               ) -> tuple[dict[str, Any], float] | None:
    """The finished round with the lowest analysis-part error (the earliest on a tie),
    and that error; None when no round has one."""
    best = None
    for r in rounds:
        a = analyses.get(r.get("analysis_id") or "")
        if r.get("status") != "done" or a is None:
            continue
        err = a["metrics"]["evaluation"]["real_error_analysis"]
        if best is None or err < best[1]:
            best = (r, float(err))
    return best


def register_best_round(settings: Settings, catalog: Any, cfg: LoopConfig, lid: str,
                        parent_run: str, real: RealSplit,
                        log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Register the best round's model (module docstring). Returns ``round``, ``version``,
    ``uri``, ``analysis_error``, ``promoted`` and ``reason`` (why the alias moved or not)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    done = client.get_run(parent_run).data.tags.get(REGISTERED_TAG)
    if done:
        return json.loads(done)
    spec = get_task(cfg.task)
    rounds = catalog.rounds(lid)
    analyses = {r["analysis_id"]: catalog.get_analysis(r["analysis_id"])
                for r in rounds if r.get("analysis_id")}
    found = best_round(rounds, {k: v for k, v in analyses.items() if v is not None})
    if found is None:
        return None
    row, err = found
    checkpoint = catalog.get_training_run(row["run_id"])["checkpoint"]
    model = spec.round_serving_model(settings, cfg, checkpoint=checkpoint, real=real)
    if model is None:
        log(f"{cfg.task} loops do not register their rounds' models")
        return None
    run_id = row["mlflow_run_id"]
    metric = spec.validation_metric
    # what the champion rule compares: only runs validated on this same analysis part
    comparable = {VALIDATION_TAG: validation_key(real), SELECTION_TAG: metric}
    for key, value in {**comparable, "loop_id": lid, "best_round_of_loop": "true"}.items():
        tracking.set_tag(run_id, key, value)
    predictor, example, files = model
    uri, version = tracking.register_in_run(run_id, predictor, example, cfg.task, files)
    decision = tracking.maybe_promote(cfg.task, version, metric, err, higher_is_better=False,
                                      comparable_on=comparable)
    result = {"round": int(row["index"]), "version": version, "uri": uri,
              "model": f"models:/{tracking.registered_model_name(cfg.task)}/{version}",
              "analysis_error": err, "metric": metric, "promoted": bool(decision["promoted"]),
              "reason": decision.get("reason", "")}
    tracking.set_tag(parent_run, REGISTERED_TAG, json.dumps(result))
    return result
