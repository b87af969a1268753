import os

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect server (SQLite) for every flow test in the session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def assert_lineage():
    """The lineage check both loop tests make (see :func:`_assert_lineage`)."""
    return _assert_lineage


def _assert_lineage(cat, rounds: list[dict], dist0) -> None:
    """Round 1's distribution walks back to the start: distribution -> batch -> training
    run -> analysis -> next distribution, and round 0's batch is accepted and drawn from
    the start distribution."""
    chain = cat.lineage(rounds[1]["distribution_id"])
    kinds = [step["kind"] for step in chain]
    for kind in ("analysis", "training_run", "batch", "distribution"):
        assert kind in kinds, chain
    assert chain[-1]["id"] == dist0.id
    batch = cat.get_batch(rounds[0]["batch_id"])
    assert batch["status"] == "accepted" and batch["distribution_id"] == dist0.id
