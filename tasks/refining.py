"""Prefect tasks of the refine-batch flow: refine (train or reuse the refiner, write the
child batch) and put the verdict on the refiner's MLflow run. Validation and the catalog
row are the batch tasks every batch goes through (:mod:`tasks.batches`)."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from tasks.batches import _accept_on_commit, _quarantine_on_rollback, _remember

__all__ = ["record_refinement", "write_refined"]


@task(name="refine-synthetic-batch")
def write_refined(request: dict, dask_workers: int = 0, dask_address: str | None = None) -> dict:
    """The refined batch (:func:`synthloop.refine.write_refined_batch`); its verdict is
    written by the flow's transaction, as for a generated batch. With ``dask_workers`` or
    ``dask_address`` its shards are refined on Dask (:mod:`tasks.fanout`)."""
    from synthloop.refine import RefineRequest, write_refined_batch
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    logger = get_run_logger()
    map_shards = None
    if dask_workers or dask_address:
        from tasks.fanout import dask_shard_map

        map_shards = dask_shard_map(dask_workers, dask_address)
        logger.info("refining the shards on %s",
                    dask_address or f"a local Dask cluster of {dask_workers} processes")
    batch = write_refined_batch(settings, RefineRequest(**request), log=logger.info,
                                map_shards=map_shards)
    _remember(batch.path)
    return {"batch_id": batch.batch_id, "path": str(batch.path), "parent": batch.parent_id,
            "mlflow_run": batch.run_id, "seconds": batch.seconds,
            "mean_abs_change": batch.mean_change}


write_refined.on_commit(_accept_on_commit)
write_refined.on_rollback(_quarantine_on_rollback)


@task(name="record-refinement-verdict")
def record_refinement(run_id: str, batch_dir: str) -> dict:
    """The batch's verdict and label check on the MLflow run that made it."""
    import json
    from pathlib import Path

    from expectations.validate import RESULT_FILE
    from synth.shards import BatchReader
    from synthloop.refine import record_verdict

    status = BatchReader(batch_dir, verify=False).status
    result = Path(batch_dir) / RESULT_FILE
    stats = json.loads(result.read_text())["statistics"] if result.is_file() else {}
    shift = stats.get("label_preservation", {})
    record_verdict(run_id, status.status, list(status.failing), shift)
    return {"status": status.status, "failing": list(status.failing), "label_shift": shift}
