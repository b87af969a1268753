"""Local Dask clusters for rendering a batch's shards in several processes, shared by the
``generate`` command (a plain Dask client) and the flows (Prefect's DaskTaskRunner,
:mod:`tasks.fanout`).

Single-threaded worker processes, one per core by default, so that a cluster of many
cores or hosts is used without threads contending inside one interpreter. ``synthloop
generate`` starts one where it pays (:func:`default_workers`): on 2 vCPUs two worker
processes beat two threads in one process from ~80,000 eyes or ~2,000 faces on, once their
start-up overlaps the command's own (measured, docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's
#: mmap threshold: every renderer temporary above 128 KiB is then mmapped and faulted in
#: afresh, and a shard of 4,096 eyes took 2.2 s instead of 1.4 s (measured). None unsets it.
NANNY_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"

#: preloaded by every local worker: its exit skips the final garbage collection
WORKER_EXIT = "synthloop.dask_worker_exit"

#: Dask's monitors, at intervals for a cluster that lives seconds to minutes: the event
#: loop's tick (20 ms), each nanny's poll of its worker's memory (100 ms) and the system
#: monitor (500 ms) kept the generating command's process busy for ~1.2 CPU seconds per
#: 200,000 eyes, taken from the workers when there is a worker per core; at these
#: intervals 0.5 s, and two workers finish ~0.5 s sooner (docs/benchmarks.md). A worker
#: over its memory limit is now stopped within a second instead of 0.1 s. Each worker's
#: statistical profiler (a stack sample of the running task every 10 ms) feeds only the
#: dashboard, which these clusters do not serve; off, 200,000 eyes take 1-2 CPU seconds
#: less and two workers finish ~0.3 s sooner (measured, docs/benchmarks.md).
QUIET_MONITORS = {
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.profile.enabled": False,
}


def cluster_kwargs(workers: int = 0, env: dict[str, str] | None = None,
                   preload: Sequence[str] = ()) -> dict[str, Any]:
    """``LocalCluster`` arguments: ``workers`` single-threaded processes (0: one per core),
    quiet logs, no dashboard, ``env`` set in each worker process, the modules in
    ``preload`` imported as each worker starts (the shard renderer: torch and the
    renderer take ~1.4 s to import, which otherwise delays every worker's first shard);
    and the nanny setting and monitor intervals above (the nannies hand this process's
    Dask settings to their workers)."""
    import dask

    dask.config.set({NANNY_MALLOC_TRIM: None, **QUIET_MONITORS})
    kw = {"n_workers": local_worker_count(workers), "threads_per_worker": 1,
          "processes": True, "dashboard_address": None, "silence_logs": logging.WARNING,
          "preload": [*preload, WORKER_EXIT]}
    if env:
        kw["env"] = dict(env)
    return kw


def local_worker_count(workers: int = 0) -> int:
    """The processes of a local cluster asked for ``workers`` (0: one per core)."""
    return workers or os.cpu_count() or 1


def default_workers(n: int, shard_size: int, fan_out_from: int | None, cores: int | None) -> int:
    """How many worker processes ``generate`` starts when ``--workers`` is not given: one
    per core (no more than there are shards) for a batch of at least ``fan_out_from``
    samples on a machine of 2 cores or more, else 0 (render in the command's process)."""
    shards, cores = -(-n // shard_size), cores or 1
    if fan_out_from is None or n < fan_out_from or cores < 2 or shards < 2:
        return 0
    return min(cores, shards)


@contextlib.contextmanager
def client_shard_map(workers: int = 0, address: str | None = None,
                     preload: Sequence[str] = ()) -> Iterator[Callable]:
    """A ``map_shards`` for the batch writers on a Dask cluster: ``address``'s, else a
    LocalCluster of ``workers`` processes (importing ``preload`` as they start) that lives
    as long as the block. Shards are yielded as they finish, so progress moves while the
    batch renders. The shards of the last round are rendered in halves (joined by the
    writer), so that the workers finish together (:func:`synth.shard_jobs.split_tail`).

    The cluster starts in a background thread as the block is entered and the first
    ``map_shards`` call waits for it: its workers start and import the renderer while this
    process imports its own (on 2 cores a second or two of every fanned-out batch)."""
    from distributed import Client, LocalCluster, as_completed

    local_workers = local_worker_count(workers)

    def connect() -> tuple[Any, Any]:
        if address:
            return None, Client(address)
        cluster = LocalCluster(**cluster_kwargs(workers, preload=preload))
        try:
            return cluster, Client(cluster)
        except BaseException:
            cluster.close()
            raise

    with ThreadPoolExecutor(1, thread_name_prefix="dask-start") as pool:
        started = pool.submit(connect)

        def map_shards(fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Any]:
            from synth.shard_jobs import split_tail

            _, client = started.result()  # a failed start is raised here
            jobs = split_tail(jobs, sum(client.nthreads().values()) if address else local_workers)
            with warnings.catch_warnings():
                # eye jobs carry their shard's scenes by design (~1.5 MB each, ~70 MB for
                # 200,000 eyes); Dask warns about any graph over 10 MB
                # (distributed.admin.large-graph-warning-threshold)
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                futures = client.map(fn, list(jobs), pure=False)
            for future in as_completed(futures):
                result = future.result()
                future.release()  # a worker lost later must not recompute a part already joined
                yield result

        try:
            yield map_shards
        finally:
            if started.exception() is None:  # waits for a start still under way
                cluster, client = started.result()
                client.close()
                if cluster is not None:
                    cluster.close()
