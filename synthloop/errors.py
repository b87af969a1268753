"""Errors that reach people. Defined in :mod:`realdata.errors` (the lowest pure package,
so that pure code can raise them) and re-exported here for the app layer, with the one
kind only the app layer raises."""

from __future__ import annotations

from realdata.errors import DataFormatError, SynthloopError, UnknownNameError, UsageError

__all__ = ["BatchRejected", "DataFormatError", "ServiceError", "SynthloopError",
           "UnknownNameError", "UsageError"]


class ServiceError(SynthloopError, RuntimeError):
    """A server or external tool the command needs failed (it says which, and where its
    log is)."""


class BatchRejected(SynthloopError, RuntimeError):
    """A synthetic batch failed its Great Expectations validation (it is quarantined,
    kept for inspection, never trained on)."""
