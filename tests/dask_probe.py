"""Functions for tests to run on Dask workers: what the worker process had imported
before the task came, the Dask settings it runs with and the periodic work it does (this
module imports nothing of synthloop's)."""

from __future__ import annotations

import sys


def imported(names: list[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}


def dask_settings(keys: list[str]) -> dict[str, object]:
    import dask

    return {key: dask.config.get(key) for key in keys}


def periodic_callbacks(_: object = None) -> list[str]:
    """The names of the periodic callbacks of the worker running this task."""
    from distributed import get_worker

    return sorted(get_worker().periodic_callbacks)


def render_then_imported(job_and_names: tuple) -> dict[str, bool]:
    """Render one shard job with its task's renderer, then :func:`imported`."""
    render, job, names = job_and_names
    render(job)
    return imported(names)
