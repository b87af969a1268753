"""The scaled-out stores: every service's state in one PostgreSQL database, a schema each.

One database URL is all a user gives. The Prefect server, the MLflow tracking server,
Optuna and the lineage catalog each get a schema of their own in that database, reached
by setting the connection's ``search_path``: in one schema they would collide, since all
four keep an ``alembic_version`` table. The embedded SQLite stores stay the default;
this is what ``synthloop ui --database-url`` and workers on other hosts use.

Pure configuration plus one DDL call (:meth:`PostgresStores.create_schemas`); starting
servers is :mod:`synthloop.servers`' job.

Prefect creates the ``pg_trgm`` extension in the first schema it migrates, so one
database holds one Prefect schema (tests use a database of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from catalog.engine import redact
from synthloop.errors import ServiceError, UsageError

SERVICES = ("prefect", "mlflow", "optuna", "catalog")
DEFAULT_PREFIX = "synthloop_"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}")


@dataclass(frozen=True)
class PostgresStores:
    """Where each service keeps its state: ``<prefix><service>`` schemas of one database."""

    url: URL  # the database, with the psycopg (v3) driver
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def parse(cls, text: str, prefix: str = DEFAULT_PREFIX) -> PostgresStores:
        """A ``postgresql://`` URL (any driver suffix) -> the stores; UsageError otherwise."""
        try:
            url = make_url(text)
        except ArgumentError:
            raise UsageError(f"--database-url {redact(text)!r} is not a database URL "
                             "(expected postgresql://user@host:5432/database)") from None
        if url.get_backend_name() != "postgresql":
            raise UsageError(f"--database-url {redact(text)!r}: the scaled-out stores need "
                             f"PostgreSQL, not {url.get_backend_name()} (the embedded SQLite "
                             "stores are what runs without --database-url)")
        if not url.database:
            raise UsageError(f"--database-url {redact(text)!r} names no database")
        if "options" in url.query:
            raise UsageError(f"--database-url {redact(text)!r}: drop the 'options' parameter; "
                             "each service's search_path is set from --schema-prefix")
        if not _IDENTIFIER.fullmatch(prefix):
            raise UsageError(f"--schema-prefix {prefix!r}: use lower-case letters, digits and "
                             "underscores, starting with a letter or underscore")
        return cls(url.set(drivername="postgresql+psycopg"), prefix)

    def schema(self, service: str) -> str:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of {SERVICES}")
        return f"{self.prefix}{service}"

    def service_url(self, service: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of ``service``'s schema (its password included: pass it by
        environment, never on a command line)."""
        url = self.url.set(drivername=f"postgresql+{driver}")
        if driver == "psycopg":  # libpq sets search_path per connection from 'options'
            url = url.update_query_dict({"options": f"-csearch_path={self.schema(service)}"})
        return url.render_as_string(hide_password=False)

    def prefect_server_env(self) -> dict[str, str]:
        """Environment of a Prefect server on its schema (asyncpg takes the search path as
        a connect argument, which Prefect exposes as a setting)."""
        return {"PREFECT_API_DATABASE_CONNECTION_URL": self.service_url("prefect", "asyncpg"),
                "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_SEARCH_PATH": self.schema("prefect")}

    def client_env(self) -> dict[str, str]:
        """What every process that runs flows needs besides the two server URLs."""
        return {"SYNTHLOOP_OPTUNA_URL": self.service_url("optuna"),
                "SYNTHLOOP_CATALOG_URL": self.service_url("catalog")}

    def create_schemas(self) -> list[str]:
        """Create the missing schemas; ServiceError (the URL without its password) when the
        database cannot be reached or refuses."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(self.url, isolation_level="AUTOCOMMIT",
                               connect_args={"connect_timeout": 10})
        try:
            with engine.connect() as conn:
                for s in SERVICES:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema(s)}"'))
        except SQLAlchemyError as e:
            first = str(getattr(e, "orig", e)).strip().splitlines()[0]
            raise ServiceError(f"PostgreSQL at {redact(self.url)}: {first}") from None
        finally:
            engine.dispose()
        return [self.schema(s) for s in SERVICES]
