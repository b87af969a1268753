import os
from contextlib import ExitStack

import numpy as np
import pytest

#: Settings the harness's server subprocess needs (a value the environment already has
#: wins). The startup timeout is also passed to the harness directly.
HARNESS_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect server (SQLite) for every flow test in the session.

    Its environment variables are set through a MonkeyPatch only while the server
    subprocess starts (it copies them) and restored before any test runs, so they do
    not leak into the tests after the first flow test (e.g. into the servers that
    tests/test_deploy.py and tests/test_ui.py start)."""
    from prefect.testing.utilities import prefect_test_harness

    with ExitStack() as harness:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in HARNESS_ENV.items():
                if key not in os.environ:
                    mp.setenv(key, value)
            harness.enter_context(prefect_test_harness(server_startup_timeout=120))
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


@pytest.fixture
def assert_moves_toward_error_mass():
    """The direction check both closed-loop tests make (see :func:`_assert_moves_toward`)."""
    return _assert_moves_toward


def _binned(f, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(bins, samples) shares: one-hot for a categorical factor; for a continuous one with
    equal bins, a triangle one bin wide on each bin's centre (a value on an edge is half
    each neighbour's), the outer bins taking all beyond their centres."""
    if f.kind != "continuous":
        return (np.arange(f.n_bins)[:, None] == idx[None, :]).astype(np.float64)
    e = np.asarray(f.edges, np.float64)
    c, h = (e[:-1] + e[1:]) / 2, e[1] - e[0]
    assert np.allclose(np.diff(e), h), "the hand computation assumes equal bins"
    share = np.clip(1.0 - np.abs(x[None, :] - c[:, None]) / h, 0.0, None)
    share[0, x <= c[0]] = share[-1, x >= c[-1]] = 1.0
    return share


def _assert_moves_toward(dist0, dist1, errors, real_values: dict, pseudo_count: float = 1.0) -> None:
    """For each factor in ``real_values``, from the analysis part's per-sample ``errors``
    and the samples' true values, the target the update policy moves toward is the error
    mass per bin (analysis.update_policy, label re-weighting), computed here by hand:
    ``t_b = (S_b + c K e w_b) / sum(...)`` with ``S_b`` the error sum in bin b (linear
    binning on continuous factors: :func:`_binned`), ``e`` the
    mean error, ``c`` the pseudo count, ``K`` the number of bins. The round must raise the
    bin whose target most exceeds its weight (largest ``t_b / w_b``) and lower the one
    that falls shortest (smallest), and end closer to the target than it started (KL)."""
    errors = np.asarray(errors, np.float64)
    for name, values in real_values.items():
        f0 = dist0.factor(name)
        w = np.asarray(f0.weights, np.float64)
        new = np.asarray(dist1.factor(name).weights, np.float64)
        x = np.asarray(values, np.float64)
        idx = f0.bin_index(x)
        keep = idx >= 0
        k = f0.n_bins
        s = _binned(f0, x[keep], idx[keep]) @ errors[keep]
        m = s + pseudo_count * k * errors[keep].mean() * w
        t = m / m.sum()
        ratio = t / w
        up, down = int(np.argmax(ratio)), int(np.argmin(ratio))
        assert ratio[up] > 1.01 > 0.99 > ratio[down], (name, t, w)  # the errors do point somewhere
        assert new[up] > w[up], (name, up, w, new, t)
        assert new[down] < w[down], (name, down, w, new, t)
        kl_new, kl_old = (float(np.sum(t * np.log(t / q))) for q in (new, w))
        assert kl_new < kl_old, (name, kl_new, kl_old)
