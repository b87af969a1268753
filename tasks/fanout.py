"""Fanning a batch's shards out over a Dask cluster through Prefect (``prefect-dask``).

``dask_shard_map`` builds the ``map_shards`` that the pure batch writers take
(:func:`synth.generate.generate_batch`): a ``render-shards`` subflow whose task runner is
a :class:`prefect_dask.DaskTaskRunner`, one ``render-shard`` task per shard. By default
the runner starts a ``LocalCluster`` of single-threaded worker processes
(:mod:`synthloop.dask_cluster`); with an address it uses an
existing cluster (``dask scheduler`` + ``dask worker`` on other hosts). Each worker writes
its shard into the batch's temporary folder, so on a real cluster that folder must be on
storage every worker mounts at the same path (docs/scale-out.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from prefect import flow, task

from synth.shard_jobs import split_tail
from synthloop.dask_cluster import local_worker_count


def _resolve(ref: str) -> Callable[[Any], Any]:
    """``module:function`` -> the function. Only names inside this project's renderer and
    model packages: a flow parameter never imports arbitrary code."""
    module, _, name = ref.partition(":")
    if module.split(".")[0] not in ("synth", "models") or not name.isidentifier():
        raise ValueError(f"{ref!r} is not a shard renderer of this project")
    return getattr(importlib.import_module(module), name)


@task(name="render-shard", retries=1, retry_delay_seconds=2)
def render_shard(renderer: str, job: Any) -> Any:
    return _resolve(renderer)(job)


@flow(name="render-shards", log_prints=True)
def render_shards(renderer: str, jobs: list[Any]) -> list[Any]:
    """One task per shard on the flow's task runner; the shards as they finish."""
    futures = render_shard.map(renderer, jobs)
    return [f.result() for f in futures]


def dask_runner(workers: int = 0, address: str | None = None, preload: Sequence[str] = ()):
    """A DaskTaskRunner on ``address``, else on a LocalCluster of ``workers`` processes
    with one thread each (``workers`` 0: one per core) that import ``preload`` as they
    start."""
    from prefect_dask import DaskTaskRunner

    from synthloop.dask_cluster import cluster_kwargs

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=cluster_kwargs(workers, env=_api_env(), preload=preload))


def _api_env() -> dict[str, str]:
    """``PREFECT_API_URL`` for a local cluster's workers: the API this run reports to. A
    flow called in a plain Python process reports to a temporary server whose address is
    in no environment variable; without it every worker started a temporary server of
    its own on the same SQLite file ("database is locked"; seen)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {"PREFECT_API_URL": str(client.api_url).rstrip("/")}


def dask_shard_map(workers: int = 0, address: str | None = None):
    """A ``map_shards`` for the batch writers that renders on Dask through Prefect."""

    def map_shards(fn: Callable[[Any], Any], jobs: Sequence[Any]) -> list[Any]:
        ref = f"{fn.__module__}:{fn.__name__}"
        _resolve(ref)  # refuse before a cluster starts
        runner = dask_runner(workers, address, preload=(fn.__module__,))
        if not address:  # a cluster's size is known once connected; a local one's now
            jobs = split_tail(jobs, local_worker_count(workers))
        return render_shards.with_options(task_runner=runner)(ref, list(jobs))

    return map_shards
