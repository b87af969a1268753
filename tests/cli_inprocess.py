"""Run a synthloop command inside the test process.

It goes through the same parser, error handling and exit codes as the installed command
(``synthloop.cli.main``); what it saves is a fresh interpreter importing torch, MLflow and
Great Expectations, seconds per call. Tests of what only a real process shows (signals,
``python -m`` entry points, import side effects) keep using subprocesses.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, env: dict[str, str] | None = None) -> CliResult:
    """``synthloop ARGS`` with ``env`` set for the call; stdout and stderr captured."""
    from synthloop.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse refusing an option, as the process would
                code = e.code if isinstance(e.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())
