"""The project's error types. They live here, in the lowest pure package, so that every
layer can raise them without importing anything above it; :mod:`synthloop.errors`
re-exports them for the app layer.

Each names what went wrong in one line. The command line shows that line (exit code 2)
for these and nothing else; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SynthloopError(Exception):
    """Base of every error that is the user's to fix (bad input, bad option), not a bug."""


class DataFormatError(SynthloopError, ValueError):
    """Input that cannot be read or does not have the expected format: names the file
    (and the line, where there is one) and the problem."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


class UsageError(SynthloopError, ValueError):
    """An option, parameter or configuration value that cannot work: names the option
    and says what would."""


class UnknownNameError(UsageError, KeyError):
    """A name (model, method, task...) that no registry holds; lists the known ones. A
    KeyError too, as a lookup that failed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
