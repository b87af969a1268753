"""Engines for the catalog: URL checks, SQLite settings for concurrent writers, readable errors.

SQLite is the default store and two processes (a flow and a CLI, two workers) write to it
at once. Three settings make that safe:

* WAL journal mode: readers never block the writer and the writer never blocks readers;
* ``busy_timeout`` on every connection: a writer waits up to 30 s for the lock instead of
  failing at once with "database is locked";
* write transactions start with ``BEGIN IMMEDIATE``: the write lock is taken at the start,
  so a transaction never reads, then fails to upgrade its lock halfway (SQLite answers
  that case with SQLITE_BUSY at once, whatever the timeout). pysqlite's own transaction
  handling is switched off so that the ``begin`` event below decides how to BEGIN.

Writers ask for the immediate kind with ``engine.execution_options(catalog_write=True)``.
"""

from __future__ import annotations

import random
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from catalog.errors import CatalogError

BUSY_TIMEOUT_MS = 30_000
#: Execution option that makes a transaction a write transaction (BEGIN IMMEDIATE on SQLite).
WRITE = "catalog_write"
SUPPORTED = ("sqlite", "postgresql")


def default_url(home: str | Path) -> str:
    """The catalog of a project home: ``sqlite:///<home>/catalog.db``."""
    return f"sqlite:///{Path(home).expanduser() / 'catalog.db'}"


def redact(url: str | URL) -> str:
    """The URL for messages, logs and stored records: the password replaced by ``***``,
    in the authority (``user:pw@host``) and in query parameters (``?password=pw``)."""
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    url = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))
    return re.sub(r"([?&](?:password|passwd|pwd|token|secret)=)[^&#]*", r"\1***", url,
                  flags=re.IGNORECASE)


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    return Path(db)


def create_catalog_engine(url: str | URL) -> Engine:
    """An engine for ``url``, configured for concurrent writers; CatalogError if unusable.

    Nothing is connected yet; a SQLite file's folder is created so a fresh project home
    works without a separate setup step.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogError(f"catalog URL {redact(url)!r} is not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise CatalogError(f"catalog URL {redact(parsed)!r}: backend {backend!r} is not "
                           f"supported (use one of {', '.join(SUPPORTED)})")
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise CatalogError(f"catalog URL {redact(parsed)!r}: no such driver ({exc})") from None
    except ImportError as exc:
        raise CatalogError(f"catalog URL {redact(parsed)!r}: driver not installed ({exc})"
                           ) from None


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_file(url)
    kwargs: dict[str, Any] = {}
    if path is None:
        # One connection for the process, else every new connection sees an empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        if path.is_dir():
            raise CatalogError(f"catalog database {path} is a directory, not a SQLite file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"catalog database {path}: cannot create its folder ({exc})"
                               ) from None
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # autocommit at the driver; we send BEGIN ourselves
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if path is not None:
                _ensure_wal(cur)
                cur.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        kind = "IMMEDIATE" if conn.get_execution_options().get(WRITE) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {kind}")

    return engine


def _ensure_wal(cur: sqlite3.Cursor) -> None:
    """Switch the file to WAL (a persistent setting), waiting out other processes.

    Two processes opening a fresh file race to switch it, and the loser gets "database
    is locked" at once: SQLite does not call the busy handler for this lock. So retry
    here, for as long as busy_timeout would have waited.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "busy" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))
