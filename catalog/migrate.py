"""Bring a catalog database to the latest schema with alembic, safely under concurrency.

The scripts live in ``catalog/migrations`` (installed with the package); the alembic
``Config`` is built here, so no ``alembic.ini`` is needed at run time. The version table
is ``catalog_alembic_version``: the catalog can share a database with MLflow or Optuna,
which keep their own ``alembic_version``.

Two processes may open a fresh database at the same moment. The upgrade runs in one
transaction that first takes a database-wide lock: ``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` (the write lock) on SQLite. Both databases have
transactional DDL, so the second process waits, then finds the schema at head and does
nothing.

Adding a migration (from a source checkout)::

    from alembic import command
    from catalog.engine import create_catalog_engine
    from catalog.migrate import make_config
    with create_catalog_engine("sqlite:////tmp/scratch.db").begin() as conn:
        command.upgrade(make_config(conn), "head")
        command.revision(make_config(conn), "what changed", rev_id="0002", autogenerate=True)

then review the generated file in ``catalog/migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from catalog.engine import WRITE
from catalog.errors import CatalogError

SCRIPTS = Path(__file__).with_name("migrations")
VERSION_TABLE = "catalog_alembic_version"
# Any fixed 64-bit number; names this lock among other advisory-lock users of the server.
_PG_LOCK_KEY = 0x5F_CA7A_10C0


def make_config(connection: Connection | None = None) -> Config:
    """An alembic Config for the catalog scripts; ``env.py`` migrates ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(make_config()).get_current_head()
    if head is None:
        raise CatalogError(f"no catalog migration scripts under {SCRIPTS} (broken install?)")
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's schema revision; None for a database the catalog never touched."""
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def upgrade(engine: Engine, where: str) -> str:
    """Migrate the database behind ``engine`` to head and return the head revision.

    ``where`` names the database in messages. A database already at head costs one read;
    one at a revision this code does not know (written by newer code) is refused.
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return head
    _check_known(current, where)
    with engine.execution_options(**{WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        # Re-read under the lock: another process may have migrated meanwhile.
        _check_known(current_revision(conn), where)
        command.upgrade(make_config(conn), "head")
    return head


def _check_known(revision: str | None, where: str) -> None:
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(make_config()).get_revision(revision)
    except CommandError:
        raise CatalogError(
            f"catalog {where} has schema revision {revision!r}, unknown to this code "
            f"(head {head_revision()!r}): it was written by a newer synthloop; upgrade "
            "synthloop to use it") from None
