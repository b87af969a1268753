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
    """Serialise the first open of a store between processes, where creating its schema
    races: a SQLite file (a lock file beside it) or a PostgreSQL database (an advisory
    lock, keyed by the URL, held on a connection of its own: two tuning workers creating
    Optuna's tables at once failed with DuplicateTable). Other URLs (an HTTP tracking
    server) serialise themselves."""
    db = sqlite_path(url)
    if db is not None:
        with file_lock(db.with_name(f".{db.name}.lock"), unless_read_only=True):
            yield
        return
    if url.startswith("postgresql"):
        with _advisory_lock(url):
            yield
        return
    yield


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    import zlib

    from sqlalchemy import create_engine, text

    key = zlib.crc32(url.encode()) - 2**31  # a signed 32-bit key, the same in every process
    engine = create_engine(url, connect_args={"connect_timeout": 30})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()
