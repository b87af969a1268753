"""The scaled-out stores' configuration: one PostgreSQL URL -> a schema per service, each
reached through its own search_path; anything else is refused with the reason."""

import pytest
from sqlalchemy.engine import make_url

from synthloop.errors import UsageError
from synthloop.scaleout import SERVICES, PostgresStores


def test_each_service_gets_its_own_schema_of_the_one_database():
    s = PostgresStores.parse("postgresql://ml@db.example:5433/loop", prefix="team_")
    urls = {svc: make_url(s.service_url(svc)) for svc in SERVICES}
    for svc, url in urls.items():
        assert (url.host, url.port, url.database, url.username) == ("db.example", 5433, "loop", "ml")
        assert url.drivername == "postgresql+psycopg"
        assert url.query["options"] == f"-csearch_path=team_{svc}"
    assert len({u.query["options"] for u in urls.values()}) == 4  # no two share alembic_version


def test_prefect_server_gets_asyncpg_and_its_search_path_as_a_setting():
    env = PostgresStores.parse("postgresql+psycopg://ml:pw@h/loop").prefect_server_env()
    url = make_url(env["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert url.drivername == "postgresql+asyncpg" and url.password == "pw"
    assert "options" not in url.query  # asyncpg would refuse it
    assert env["PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_SEARCH_PATH"] == "synthloop_prefect"


def test_clients_get_the_optuna_and_catalog_schemas():
    env = PostgresStores.parse("postgresql://h/loop").client_env()
    assert make_url(env["SYNTHLOOP_OPTUNA_URL"]).query["options"] == "-csearch_path=synthloop_optuna"
    assert make_url(env["SYNTHLOOP_CATALOG_URL"]).query["options"] == "-csearch_path=synthloop_catalog"


@pytest.mark.parametrize("url, reason", [
    ("sqlite:///x.db", "need PostgreSQL, not sqlite"),
    ("not a url", "not a database URL"),
    ("postgresql://h", "names no database"),
    ("postgresql://h/db?options=-csearch_path%3Dx", "drop the 'options' parameter"),
])
def test_unusable_urls_are_refused_with_the_reason(url, reason):
    with pytest.raises(UsageError, match=reason):
        PostgresStores.parse(url)


def test_a_password_never_appears_in_the_error():
    with pytest.raises(UsageError) as e:
        PostgresStores.parse("mysql://ml:s3cret@h/db")
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize("prefix", ["Bad", "x-y_", "1x_", 'a"; drop'])
def test_schema_prefixes_are_plain_identifiers(prefix):
    with pytest.raises(UsageError, match="--schema-prefix"):
        PostgresStores.parse("postgresql://h/db", prefix=prefix)
