"""Which failures a task retries: what may pass on the next try (a database locked by a
concurrent writer, a server restarting), never what fails the same way every time (a
damaged file, a bad option, a conflicting catalog row). Retrying those only repeats the
traceback and delays the one line that tells the user what to fix."""

from __future__ import annotations

from typing import Any

from catalog.errors import CatalogConflict, CatalogNotFound
from realdata.errors import DataFormatError, UsageError
from synth.shards import QuarantinedBatchError
from synthloop.errors import BatchRejected

#: failures that depend only on the input: the same input fails the same way again
DETERMINISTIC = (DataFormatError, UsageError, CatalogConflict, CatalogNotFound,
                 QuarantinedBatchError, BatchRejected, FileExistsError, FileNotFoundError)


def retry_unless_deterministic(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect ``retry_condition_fn``: retry unless the failure is one of
    :data:`DETERMINISTIC`."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        exc = state.result(raise_on_failure=False)
    return not isinstance(exc, DETERMINISTIC)
