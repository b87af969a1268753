"""A round whose batches keep failing validation: each attempt's batch is rolled back into
quarantine (kept on disk, marked, and in the catalog), the next attempt draws a new seed,
and after ``MAX_BATCH_ATTEMPTS`` the flow fails with a message naming the loop and round.
Running the loop again skips the quarantined batches instead of rendering them again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# slow: flow runs against a Prefect test server (its start alone is ~25 s on 2 cores)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]


def _blind_distribution(path: Path):
    """The default eye distribution through a camera that sees nothing (no light, no
    noise): blank images, which the eye suite rejects (img_std)."""
    from synth.distribution import Factor
    from synth.eye_distribution import default_eye_distribution

    d = default_eye_distribution()
    dark = {"light_intensity", "ambient", "noise_sigma", "glint_strength"}
    factors = tuple(Factor.uniform(f.name, 0.0, 1e-6, 1) if f.name in dark else f
                    for f in d.factors)
    blind = d.derive("test: blank images", factors=factors)
    path.write_text(blind.dumps())
    return blind


def test_rejected_batches_are_quarantined_retried_with_new_seeds_then_the_round_fails(
        prefect_harness, tmp_path):
    from catalog import Catalog
    from flows.feedback_loop import MAX_BATCH_ATTEMPTS, LoopParams, feedback_loop
    from synth.shards import BatchReader
    from synth.targets import write_simulated_target
    from synthloop.loop.real import load_real
    from synthloop.loop.rounds import initial_distribution, loop_id, round_seed
    from synthloop.settings import get_settings

    blind = _blind_distribution(tmp_path / "blind.json")
    target = write_simulated_target(tmp_path / "sim", 40, 3, labeled=True)
    params = LoopParams(real=str(target), rounds=2, n_per_round=64, steps_per_round=1, seed=3,
                        patience=None, distribution_path=str(tmp_path / "blind.json"))
    cfg = params.config()
    assert initial_distribution(cfg).id == blind.id
    lid = loop_id(cfg, load_real(cfg), blind)

    state = feedback_loop(params, return_state=True)
    assert state.is_failed()
    assert f"{lid} round 0: {MAX_BATCH_ATTEMPTS} batches in a row failed validation" in state.message

    settings = get_settings()
    cat = Catalog(settings.catalog)
    rows = cat.batches()
    assert len(rows) == MAX_BATCH_ATTEMPTS  # one batch per attempt, none accepted
    seeds = [round_seed(cfg, 0, 100 + a) for a in range(MAX_BATCH_ATTEMPTS)]
    assert len(set(seeds)) == MAX_BATCH_ATTEMPTS  # a new seed per attempt
    by_seed = {r["seed"]: r for r in rows}
    assert sorted(by_seed) == sorted(seeds)
    for attempt, seed in enumerate(seeds):
        row = by_seed[seed]
        out = settings.batches_dir / lid / f"round-00-{blind.id}-a{attempt}"
        # in the catalog: quarantined, with the expectation that failed
        assert row["status"] == "quarantined" and row["distribution_id"] == blind.id
        assert row["path"] == str(out.resolve())
        assert "img_std" in json.dumps(row["status_detail"])
        # on disk: kept whole, marked quarantined
        r = BatchReader(out, verify=False)
        assert r.batch_id == row["id"] and r.n == 64 and r.manifest["seed"] == seed
        assert r.status.status == "quarantined"
        assert any("img_std" in f for f in r.status.failing)
    # the round never got a batch, so nothing was trained
    (round0,) = cat.rounds(lid)
    assert round0["index"] == 0 and round0["batch_id"] is None and round0["status"] == "started"
    assert cat.get_training_run(f"{lid}-r0") is None

    # the same loop again: the quarantined batches are found and skipped, not re-rendered
    again = feedback_loop(params, return_state=True)
    assert again.is_failed()
    assert f"{lid} round 0: {MAX_BATCH_ATTEMPTS} batches in a row failed validation" in again.message
    assert [(r["id"], r["status"]) for r in cat.batches()] == [(r["id"], r["status"]) for r in rows]
