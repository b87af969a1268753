"""Errors that reach people: each names the file (and line, where there is one) and the problem.

The CLI turns any of these into a one-line message and exit code 2, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Input that cannot be read or does not have the expected format."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")
