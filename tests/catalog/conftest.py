"""Catalog fixtures: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL tests need a server; the URL of a database we may CREATE DATABASE from is
``SYNTHLOOP_TEST_POSTGRES_URL`` (default: the local trust-auth server). Where none answers
they are skipped with a message saying so, so the suite still passes on a laptop or CI
machine without PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from catalog import Catalog

ADMIN_URL = os.environ.get("SYNTHLOOP_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def _pg_admin():
    """An AUTOCOMMIT engine on the admin database, or a skip when the server is unreachable."""
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        where = make_url(ADMIN_URL).render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL at {where} is unreachable ({str(exc.orig).splitlines()[0]}); "
                    "set SYNTHLOOP_TEST_POSTGRES_URL to run the PostgreSQL catalog tests")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(_pg_admin) -> Iterator[str]:
    """URL of a fresh, uniquely named PostgreSQL database, dropped after the test."""
    name = f"synthloop_cat_{uuid.uuid4().hex}"
    with _pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with _pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request) -> str:
    """Each test using this runs on a fresh SQLite file and on a fresh PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def cat(url) -> Iterator[Catalog]:
    with Catalog(url) as catalog:
        yield catalog


@pytest.fixture
def make_chain() -> Callable[[Catalog], dict[str, str]]:
    """Builds one round of lineage: dist0 -> batch -> run -> analysis -> dist1."""

    def build(c: Catalog, suffix: str = "") -> dict[str, str]:
        ids = {k: f"{k}{suffix}" for k in ("dist0", "batch", "run", "analysis", "dist1")}
        c.add_distribution(ids["dist0"], "base", "gaze", {"yaw": [-0.5, 0.5]})
        c.add_batch(ids["batch"], ids["dist0"], 7, 100, "/data/b", "a" * 64,
                    [{"path": "shards/images-00000.npy", "sha256": "b" * 64}])
        c.set_batch_status(ids["batch"], "accepted")
        c.add_training_run(ids["run"], "gaze", "dann", {"lr": 1e-3}, [ids["batch"]])
        c.finish_training_run(ids["run"], checkpoint="/ckpt.pt", metrics={"val_deg": 4.2})
        c.add_distribution(ids["dist1"], "base", "gaze", {"yaw": [-0.8, 0.8]},
                           parent_id=ids["dist0"], reason="errors grow with |yaw|")
        c.add_analysis(ids["analysis"], ids["run"], "mpiigaze:p00-p04/test", {"deg": 6.1},
                       [{"variable": "yaw", "mean_error": 9.0}],
                       next_distribution_id=ids["dist1"])
        return ids

    return build
