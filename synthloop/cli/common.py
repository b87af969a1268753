"""What the commands share: exit codes, progress bars, log lines, signal handling."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_OK, EXIT_INVALID, EXIT_ERROR, EXIT_BUG = 0, 1, 2, 3


def log(msg: str) -> None:
    """Progress for people on stderr; stdout stays machine-readable."""
    print(msg, file=sys.stderr)


def progress(total: int, label: str):
    """A rich progress bar on a terminal, nothing when piped (logs stay clean). Returns
    ``(progress context, advance(k))``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.speed} img/s"),
                    TimeRemainingColumn(), disable=not sys.stderr.isatty(), transient=False)
    tid = prog.add_task(label, total=total)
    return prog, (lambda k: prog.advance(tid, k))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def settings_with_home() -> Any:
    """The settings, with the project home's folders created."""
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    return settings


def stop_on_sigterm() -> None:
    """Treat SIGTERM (kill, systemd, a CI runner) like Ctrl-C, so the children get stopped.
    SIGINT is restored too: a shell that starts us in the background sets it to ignored."""
    import signal

    def _raise(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def embedded_prefect_env(settings: Any) -> None:
    """Embedded Prefect: its own home under the project home, no telemetry, and a start-up
    timeout that survives a busy 2-core machine. The user's own settings win."""
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
