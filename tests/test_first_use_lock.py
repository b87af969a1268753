"""first_use_lock serialises the first open of a store between processes: on a SQLite
file through a lock file, on PostgreSQL through an advisory lock keyed by the URL."""

import threading
import time

import pytest

from synthloop.locks import first_use_lock


def _second_waits_for_first(url: str) -> list[str]:
    events: list[str] = []
    held = threading.Event()

    def first():
        with first_use_lock(url):
            events.append("first in")
            held.set()
            time.sleep(0.5)
            events.append("first out")

    def second():
        held.wait()
        with first_use_lock(url):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return events


def test_sqlite_first_use_is_serialised(tmp_path):
    assert _second_waits_for_first(f"sqlite:///{tmp_path / 'optuna.db'}") == [
        "first in", "first out", "second in"]


def test_postgresql_first_use_is_serialised(fresh_pg_database):
    url = fresh_pg_database("synthloop_lock")
    assert _second_waits_for_first(url) == ["first in", "first out", "second in"]


def test_other_urls_pass_straight_through():
    with first_use_lock("http://127.0.0.1:5000"):
        pass


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none"])
def test_an_unreachable_database_fails_loudly(url):
    from sqlalchemy.exc import OperationalError

    with pytest.raises(OperationalError), first_use_lock(url):
        pass
