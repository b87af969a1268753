"""Alembic environment of the catalog. Alembic runs this file; catalog.migrate hands it the
connection (inside the transaction that holds the migration lock) via the Config.

Importing this file outside alembic does nothing: ``alembic.context`` only has ``config``
while alembic runs an environment.
"""

from __future__ import annotations

from alembic import context

from catalog.migrate import VERSION_TABLE
from catalog.schema import Base


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("catalog migrations run on a connection given by "
                           "catalog.migrate.make_config(connection); open a Catalog(url)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):
    if context.is_offline_mode():
        raise RuntimeError("the catalog has no offline (SQL script) migrations")
    run_migrations_online()
