"""A function for tests to run on Dask workers: what the worker process had imported
before the task came (this module imports nothing of synthloop's)."""

from __future__ import annotations

import sys


def imported(names: list[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}
