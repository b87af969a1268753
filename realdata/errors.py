"""The project's error types. They live here, in the lowest pure package, so that every
layer can raise them without importing anything above it; :mod:`synthloop.errors`
re-exports them for the app layer.

Each names what went wrong in one line. The command line shows that line (exit code 2)
for these and nothing else; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def printable(text: str, limit: int = 120) -> str:
    """``text`` fit for a one-line message: as is when it is printable (no line breaks or
    control characters), else its repr; cut to ``limit`` characters."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def shown(value: Any, limit: int = 60) -> str:
    """A value read from a user's file, for a one-line message: its repr, cut short."""
    try:
        return printable(repr(value), limit)
    except RecursionError:
        return "<a deeply nested value>"


def one_line(e: BaseException | str) -> str:
    """An error's message on one line (some libraries' messages span several)."""
    return " ".join(str(e).split())


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an error's message, cut to ``limit`` (for libraries
    whose messages go on for pages), or its type when it has none."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]


class SynthloopError(Exception):
    """Base of every error that is the user's to fix (bad input, bad option), not a bug."""


class DataFormatError(SynthloopError, ValueError):
    """Input that cannot be read or does not have the expected format: names the file
    (and the line, where there is one) and the problem."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        # the contract is one line: a library's multi-line text is folded here, once
        self.problem = problem if problem.isprintable() else one_line(problem)
        self.line = line
        where = printable(str(self.path), limit=10_000)
        where = f"{where}:{line}" if line is not None else where
        super().__init__(f"{where}: {self.problem}")


class UsageError(SynthloopError, ValueError):
    """An option, parameter or configuration value that cannot work: names the option
    and says what would."""


class UnknownNameError(UsageError, KeyError):
    """A name (model, method, task...) that no registry holds; lists the known ones. A
    KeyError too, as a lookup that failed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
