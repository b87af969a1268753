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
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block. The
    kernel drops it when the process dies, so a killed holder never blocks the others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, None for any other store."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        return None
    return Path(url[len(prefix):])


@contextmanager
def first_use_lock(url: str) -> Iterator[None]:
    """Serialise the first open of a SQLite store between processes (a lock file beside
    the database); other stores (a server database) handle concurrency themselves."""
    db = sqlite_path(url)
    if db is None:
        yield
        return
    with file_lock(db.with_name(f".{db.name}.lock")):
        yield
