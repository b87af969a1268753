"""Catalog fixtures: a fresh SQLite file or a fresh PostgreSQL database per test (the
PostgreSQL server and its skip: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from catalog import Catalog


@pytest.fixture
def pg_url(fresh_pg_database) -> str:
    """URL of a fresh, uniquely named PostgreSQL database, dropped after the test."""
    return fresh_pg_database("synthloop_cat")


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
