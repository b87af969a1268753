"""An inter-process lock on a file, for the first use of the embedded SQLite stores.

Two processes that find a fresh home at once (two `train` runs, two loops, two tuning
workers) would each create the same tables in the same database file (MLflow's and
Optuna's Alembic migrations are not safe against that); one of them then fails on "table
already exists" or a duplicate Alembic row. Holding this lock around a store's first
open serialises exactly that step; later opens find the tables and pass straight
through it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | Path, *, unless_read_only: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block. The
    kernel drops it when the process dies, so a killed holder never blocks the others.
    Not re-entrant: a nested lock on the same file waits for the outer one.
    ``unless_read_only``: where the lock file cannot be created (a read-only home, which
    nobody can write a schema into either), run the block without it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not unless_read_only:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite`` URL (any driver), None for other stores and for
    an in-memory database."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    from catalog.engine import sqlite_file

    return sqlite_file(make_url(url))


@contextmanager
def first_use_lock(url: str) -> Iterator[None]:
    """Serialise the first open of a SQLite store between processes (a lock file beside
    the database); other stores (a server database) handle concurrency themselves."""
    db = sqlite_path(url)
    if db is None:
        yield
        return
    with file_lock(db.with_name(f".{db.name}.lock"), unless_read_only=True):
        yield
