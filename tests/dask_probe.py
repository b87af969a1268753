"""Functions for tests to run on Dask workers: what the worker process had imported
before the task came, and the Dask settings it runs with (this module imports nothing of
synthloop's)."""

from __future__ import annotations

import sys


def imported(names: list[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}


def dask_settings(keys: list[str]) -> dict[str, object]:
    import dask

    return {key: dask.config.get(key) for key in keys}
