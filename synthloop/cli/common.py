"""What the commands share: exit codes, progress bars, log lines, signal handling."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_INVALID, EXIT_ERROR, EXIT_BUG = 0, 1, 2, 3


class _Log:
    """``log(msg)``: progress for people on stderr; stdout stays machine-readable.
    ``log.bar(total, label)``: on a terminal, a training progress bar (a
    :func:`models.train.train` callback, see :mod:`synthloop.progress`); None elsewhere,
    so logs get concise lines instead."""

    def __call__(self, msg: str) -> None:
        print(msg, file=sys.stderr)

    def bar(self, total: int, label: str):
        if not sys.stderr.isatty():
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
        tid = prog.add_task(label, total=total, loss="-")

        def update(step: int, metrics: dict[str, float]) -> None:
            if not prog.live.is_started:
                prog.start()
            loss = metrics.get("loss")
            prog.update(tid, completed=step, loss=f"{loss:.4g}" if isinstance(loss, float) else "-")
            if step >= total:
                prog.stop()

        return update


log = _Log()


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


def decay(text: str) -> float:
    """argparse type: a moving-average decay, strictly between 0 and 1."""
    value = at_least(0.0, float)(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """argparse type: a number of ``kind`` (int or float) no smaller than ``minimum``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


#: argparse type: an integer >= 1
positive_int = at_least(1)


def settings_with_home() -> Any:
    """The settings, with the project home's folders created."""
    from synthloop.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    return settings


def stop_on_sigterm() -> None:
    """Treat SIGTERM (kill, systemd, a CI runner) like Ctrl-C, so the children get stopped.
    SIGINT is restored too: a shell that starts us in the background sets it to ignored.

    A stop that arrives while a garbage-collector callback or a finaliser runs is sent
    again a moment later: raised there, the interpreter would print it as "Exception
    ignored" and drop it, and the command would run on (seen: the in-process Dask
    scheduler of ``generate --workers`` installs such a callback)."""
    import signal
    import threading

    def _raise(signum, frame):
        if _in_unraisable_code(frame):
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


def _in_unraisable_code(frame: Any) -> bool:
    """Whether ``frame`` is inside code whose exceptions the interpreter drops: a garbage
    collector callback (``gc.callbacks``) or a ``__del__``."""
    import gc

    callbacks = {getattr(getattr(cb, "__func__", cb), "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def embedded_prefect_env(settings: Any) -> None:
    """Embedded Prefect: its own home under the project home, no telemetry, and a start-up
    timeout that survives a busy 2-core machine. The user's own settings win."""
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


#: what Prefect's engine says about every task and flow run at INFO; the dashboard keeps it
ENGINE_CHATTER = ("Finished in state", "Beginning flow run", "View at ", "Running commit hook",
                  "Commit hook ", "Created task run", "Submitting task run", "Executing ")


#: the engine's line for a failed run; the exception line just before it says the same
FAILED_STATE = "Finished in state Failed("

TRACEBACK_HINT = "(traceback: the run's logs in the Prefect dashboard, or run again with -v)"


class _DropEngineChatter:
    """A logging filter for the terminal: warnings and errors pass, except the failed-state
    line that repeats the exception line before it; INFO lines of the engine
    (:data:`ENGINE_CHATTER`) do not."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not message.startswith(FAILED_STATE)
        return not message.startswith(ENGINE_CHATTER)


class _OneLineFormatter(logging.Formatter):
    """``time | message`` for the terminal, one line per record: a failing task or flow
    logs its traceback with the exception, which the command then states in one line of
    its own; the traceback stays in the Prefect dashboard (its handler formats the
    record separately) and with ``-v``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s | %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record, self.datefmt)} | {record.getMessage()}"
        return f"{line} {TRACEBACK_HINT}" if record.exc_info else line


def quiet_mlflow() -> None:
    """MLflow's own INFO lines (database set-up, artifact progress bars, run URLs) off the
    terminal; each is a default, so the environment can bring them back
    (``MLFLOW_LOGGING_LEVEL=INFO``). MLflow sets its logger's level when imported: the
    environment reaches it either way."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])


def quiet_terminal_logs(verbose: bool) -> None:
    """The terminal shows what matters while flows run in this process: our own lines (each
    round's progress and results), warnings and errors, as ``time | message``. The
    Prefect dashboard still receives every line. ``verbose`` keeps Prefect's own format
    and every engine line."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    if verbose:
        return
    ensure_logging_setup()  # the handlers exist from here on; later set-ups are incremental
    quiet_mlflow()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(_DropEngineChatter())
            handler.setFormatter(_OneLineFormatter())


@contextmanager
def prefect_api(settings: Any) -> Iterator[str]:
    """The Prefect API this command's flow runs report to: the user's (``PREFECT_API_URL``)
    or, by default, our own child server on the project home's Prefect database. Ours, not
    Prefect's ephemeral one, because ours dies with this process even on ``kill -9`` and
    is stopped before the command prints its last line. Yields the API URL."""
    embedded_prefect_env(settings)
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from synthloop.locks import file_lock
    from synthloop.servers import start_prefect_api, wait_healthy

    timeout = float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    # two commands starting on a fresh home would both migrate the same Prefect database
    with file_lock(settings.prefect_dir / ".prefect-db.lock"):
        server = start_prefect_api(settings)
        try:
            wait_healthy([server], timeout=timeout)
        except BaseException:
            server.stop()
            raise
    try:
        with temporary_settings({PREFECT_API_URL: server.env["PREFECT_API_URL"]}):
            yield server.env["PREFECT_API_URL"]
            _flush_prefect_logs()
    finally:
        server.stop()


def _flush_prefect_logs() -> None:
    """Send the buffered run logs before the server goes away."""
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
