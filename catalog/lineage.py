"""Walking the lineage graph backward from a distribution to the root.

One step back from distribution D: the analysis that proposed D, the training run that
analysis evaluated, the batches that run trained on, and the distribution that made those
batches; then the same from there. A distribution no analysis proposed (the first one, or
a hand edit) steps back through ``parent_id`` alone; one without a parent is the root.

An open loop may "propose" the distribution it already had (no update); such an analysis
leads back to a distribution already on the path and is not taken, so every walk ends.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import CatalogNotFound
from catalog.schema import Analysis, Batch, Distribution, TrainingRun, training_run_batches


def walk(session: Session, distribution_id: str) -> list[dict[str, Any]]:
    """Steps newest first: dicts with ``kind`` (distribution, analysis, training_run, batch),
    ``id`` and a few fields that say what the step was."""
    start = session.get(Distribution, distribution_id)
    if start is None:
        raise CatalogNotFound("distribution", distribution_id)
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    dist: Distribution | None = start
    while dist is not None and dist.id not in seen:
        seen.add(dist.id)
        steps.append({"kind": "distribution", "id": dist.id, "name": dist.name,
                      "task": dist.task, "parent_id": dist.parent_id, "reason": dist.reason})
        back = _step_back(session, dist, seen)
        if back is None:
            prev_id = dist.parent_id
        else:
            analysis, run, batches, prev_id = back
            steps.append({"kind": "analysis", "id": analysis.id, "run_id": run.id,
                          "data_ref": analysis.data_ref})
            steps.append({"kind": "training_run", "id": run.id, "task": run.task,
                          "method": run.method, "mlflow_run_id": run.mlflow_run_id,
                          "status": run.status})
            steps.extend({"kind": "batch", "id": b.id, "distribution_id": b.distribution_id,
                          "seed": b.seed, "n": b.n, "status": b.status} for b in batches)
        dist = session.get(Distribution, prev_id) if prev_id is not None else None
    return steps


def _step_back(session: Session, dist: Distribution, seen: set[str]
               ) -> tuple[Analysis, TrainingRun, list[Batch], str | None] | None:
    """The oldest analysis that proposed ``dist`` from a distribution not yet on the path."""
    analyses = session.scalars(
        select(Analysis).where(Analysis.next_distribution_id == dist.id)
        .order_by(Analysis.created_at, Analysis.id)).all()
    for analysis in analyses:
        run = session.get(TrainingRun, analysis.run_id)
        if run is None:  # the foreign key makes this impossible; be safe anyway
            continue
        batches = list(session.scalars(
            select(Batch).join(training_run_batches, training_run_batches.c.batch_id == Batch.id)
            .where(training_run_batches.c.run_id == run.id).order_by(Batch.id)).all())
        made_by = Counter(b.distribution_id for b in batches)
        if dist.parent_id is not None and (not made_by or dist.parent_id in made_by):
            prev: str | None = dist.parent_id
        elif made_by:
            prev = made_by.most_common(1)[0][0]
        else:
            prev = None
        if prev in seen:
            continue
        return analysis, run, batches, prev
    return None
