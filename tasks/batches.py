"""Prefect tasks around synthetic batches: write, validate, mark. Each is one call into
pure code (synth, expectations) plus what orchestration adds: names, retries, hooks."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.transactions import get_transaction

from synth.distribution import SceneDistribution
from synthloop.errors import BatchRejected
from synthloop.taskspec import GenerateOptions, get_task
from tasks.retries import retry_unless_deterministic

__all__ = ["BatchRejected", "catalog_batch", "revalidate_batch", "validate_batch", "write_batch"]


@task(name="write-synthetic-batch", retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_unless_deterministic)
def write_batch(out: str, task_name: str, n: int, seed: int, distribution_json: str | None,
                device: str = "cpu", landmark_set: str | None = None, dask_workers: int = 0,
                dask_address: str | None = None) -> str:
    """Write the batch unless the folder already holds exactly that batch (its id is
    known before rendering: a retry or a re-run skips the work). With ``dask_workers``
    or ``dask_address`` its shards are rendered on Dask (:mod:`tasks.fanout`) and
    assembled here into one batch with one manifest."""
    from synth.shards import MANIFEST

    dist = SceneDistribution.loads(distribution_json) if distribution_json else None
    logger = get_run_logger()
    path = Path(out)
    generator = get_task(task_name).generator(GenerateOptions(device=device, landmark_set=landmark_set))
    expected = generator.planned_id(n=n, seed=seed, dist=dist)
    if (path / MANIFEST).is_file():
        existing = json.loads((path / MANIFEST).read_text()).get("batch_id")
        if existing != expected:
            # never replace someone's batch: it may be the one a model was trained on
            raise FileExistsError(f"{path}: holds batch {existing}, not the requested {expected}; "
                                  "choose another 'out'")
        # a retry after a crash past the rename, or a re-run: the folder is complete
        logger.info("batch %s already written at %s", existing, path)
        _remember(path)
        return str(path)
    done = {"n": 0, "next": 0.25}

    def progress(k: int) -> None:  # one log line per quarter
        done["n"] += k
        if done["n"] >= done["next"] * n:
            logger.info("rendered %s / %s", f"{done['n']:,}", f"{n:,}")
            done["next"] = (int(done["n"] * 4 / n) + 1) / 4

    map_shards = None
    if dask_workers or dask_address:
        from synth.shards import SHARD_SIZE
        from tasks.fanout import dask_shard_map

        map_shards = dask_shard_map(dask_workers, dask_address)
        where = dask_address or f"a local Dask cluster of {dask_workers} processes"
        logger.info("rendering %s shards on %s", f"{-(-n // SHARD_SIZE):,}", where)
    batch_id, path = generator.write(path, n=n, seed=seed, dist=dist, progress=progress,
                                     map_shards=map_shards)
    logger.info("wrote %s (%d samples) to %s", batch_id, n, path)
    _remember(path)
    return str(path)


def _share(**values) -> None:
    """Store values on the enclosing (flow-level) transaction. Each task runs in a child
    transaction of its own; children read their parents' values, so the write task's
    commit/rollback hooks see what the validate task found."""
    txn = get_transaction()
    if txn is None:
        return
    txn = txn.get_parent() or txn
    for k, v in values.items():
        txn.set(k, v)


def _remember(path: Path) -> None:
    _share(batch_dir=str(path))


@write_batch.on_commit
def _accept_on_commit(txn) -> None:
    from synth.shards import write_status

    write_status(txn.get("batch_dir"), "accepted", batch_id=txn.get("batch_id", None),
                 result=txn.get("result", None), docs=txn.get("docs", None))


@write_batch.on_rollback
def _quarantine_on_rollback(txn) -> None:
    """The batch is kept and marked, never deleted: people inspect what failed."""
    from synth.shards import write_status

    batch_dir = txn.get("batch_dir", None)
    if batch_dir and Path(batch_dir).is_dir():
        failing = txn.get("failing", None) or ["transaction rolled back before validation finished"]
        write_status(batch_dir, "quarantined", failing=failing, batch_id=txn.get("batch_id", None),
                     result=txn.get("result", None), docs=txn.get("docs", None))


@task(name="validate-batch-with-great-expectations")
def validate_batch(batch_dir: str) -> dict:
    """Runs the GX suites. The verdict is written by the transaction: accepted on commit,
    quarantined on rollback (this task raises BatchRejected to roll back)."""
    from expectations.validate import validate_batch as run_validation

    report = run_validation(batch_dir)
    status = "accepted" if report.success else "quarantined"
    _share(batch_id=report.batch_id, failing=list(report.failing), result=str(report.result_path),
           docs=str(report.docs_path) if report.docs_path else None)
    lines = [f"# Batch `{report.batch_id}`: **{status}**", "",
             f"- folder: `{batch_dir}`", f"- result: `{report.result_path}`",
             f"- Data Docs: `{report.docs_path}`"]
    if report.failing:
        lines += ["", "## Failing expectations", ""] + [f"- `{f}`" for f in report.failing]
    create_markdown_artifact("\n".join(lines), key="batch-validation",
                             description=f"GX validation of {report.batch_id}")
    if not report.success:
        raise BatchRejected(f"batch {report.batch_id} failed validation: {', '.join(report.failing)}")
    return {"batch_id": report.batch_id, "batch_dir": batch_dir, "status": status, "failing": [],
            "result": str(report.result_path),
            "docs": str(report.docs_path) if report.docs_path else None}


@task(name="record-batch-in-lineage-catalog", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def catalog_batch(batch_dir: str) -> dict:
    """The batch, its distribution and its verdict (accepted or quarantined) as catalog rows."""
    from synthloop.lineage import open_catalog, record_batch

    return record_batch(open_catalog(), batch_dir)


@task(name="revalidate-existing-batch")
def revalidate_batch(batch_dir: str) -> dict:
    """GX suites on a batch already on disk; writes its verdict (accepted or quarantined)."""
    from expectations.validate import record_outcome
    from expectations.validate import validate_batch as run_validation

    report = run_validation(batch_dir)
    status = record_outcome(batch_dir, report)
    return {"batch_id": report.batch_id, "status": status, "failing": list(report.failing),
            "result": str(report.result_path)}
