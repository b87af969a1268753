"""The generate-batch flow: write then validate inside one Prefect transaction; a batch that
fails validation is rolled back into quarantine (kept, marked), and the run fails loudly."""

import json

import pytest

from synth.distribution import Factor
from synth.eye_distribution import default_eye_distribution
from synth.shards import BatchReader, QuarantinedBatchError, open_for_training

# slow: flow runs against a Prefect test server (its start alone is ~25 s on 2 cores)
pytestmark = [pytest.mark.slow, pytest.mark.flow, pytest.mark.gx]


def test_good_batch_is_written_validated_and_accepted(prefect_harness, tmp_path):
    from flows.generate_batch import GenerateParams, generate_batch

    out = tmp_path / "good"
    state = generate_batch(GenerateParams(n=512, seed=4, out=str(out)), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["status"] == "accepted" and summary["failing"] == []
    assert open_for_training(out).n == 512
    assert (out / "validation" / "result.json").is_file()


def test_bad_batch_is_quarantined_by_the_rollback(prefect_harness, tmp_path):
    from flows.generate_batch import GenerateParams, generate_batch

    # a camera that sees nothing: no light, no noise -> blank images
    d = default_eye_distribution()
    dark = {"light_intensity", "ambient", "noise_sigma", "glint_strength"}
    factors = tuple(Factor.uniform(f.name, 0.0, 1e-6, 1) if f.name in dark else f for f in d.factors)
    blind = d.derive("test: blank images", factors=factors)
    dist_path = tmp_path / "blind.json"
    dist_path.write_text(blind.dumps())
    out = tmp_path / "bad"
    state = generate_batch(GenerateParams(n=256, seed=1, out=str(out), distribution_path=str(dist_path)),
                           return_state=True)
    assert state.is_failed()
    assert "img_std" in state.message and "quarantined" in state.message
    r = BatchReader(out)  # kept on disk, intact
    assert r.n == 256 and r.status.status == "quarantined"
    assert any("img_std" in f for f in r.status.failing)
    with pytest.raises(QuarantinedBatchError):
        open_for_training(out)
    status = json.loads((out / "validation" / "status.json").read_text())
    assert status["status"] == "quarantined"


def test_flow_never_replaces_a_different_batch(prefect_harness, tmp_path):
    from flows.generate_batch import GenerateParams, generate_batch
    from synth.generate import generate_batch as write

    out = tmp_path / "taken"
    bid, _ = write(out, n=64, seed=9)
    before = (out / "shards" / "images-00000.npy").read_bytes()
    state = generate_batch(GenerateParams(n=128, seed=1, out=str(out)), return_state=True)
    assert state.is_failed()
    assert BatchReader(out).batch_id == bid
    assert (out / "shards" / "images-00000.npy").read_bytes() == before


def test_face_batch_is_written_validated_accepted_and_cataloged(prefect_harness, tmp_path, monkeypatch):
    from catalog import Catalog
    from flows.generate_batch import GenerateParams, generate_batch
    from synthloop.settings import get_settings

    monkeypatch.setenv("SYNTHLOOP_FACE_MODEL", "builtin")  # the built-in head: fast, no assets
    out = tmp_path / "faces"
    params = GenerateParams(task="landmarks", n=48, seed=2, out=str(out))
    state = generate_batch(params, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["status"] == "accepted" and summary["failing"] == []
    r = open_for_training(out)
    assert r.task == "landmarks" and r.n == 48 and "landmarks/points68.npy" in r.extra_files
    row = Catalog(get_settings().catalog).get_batch(summary["batch_id"])
    assert row is not None and row["status"] == "accepted" and row["n"] == 48
    # a re-run finds the same planned id on disk and renders nothing
    shard = out / "shards" / "images-00000.npy"
    stamp = shard.stat().st_mtime_ns
    again = generate_batch(params, return_state=True)
    assert again.is_completed(), again.message
    assert again.result()["batch_id"] == summary["batch_id"] and shard.stat().st_mtime_ns == stamp


def test_a_face_batch_fanned_out_on_dask_reports_to_the_runs_api(prefect_harness, tmp_path, monkeypatch):
    """The local cluster's workers report their shard task runs to the API of the flow run
    that started them, also when that API is a temporary server whose address is in no
    environment variable (without it each worker started a server of its own)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )

    from flows.generate_batch import GenerateParams, generate_batch
    from synth.generate_faces import generate_face_batch
    from tests.batch_digest import batch_digest

    monkeypatch.setenv("SYNTHLOOP_FACE_MODEL", "builtin")
    out = tmp_path / "faces"
    state = generate_batch(GenerateParams(task="landmarks", n=40, seed=4, out=str(out),
                                          dask_workers=2), return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["status"] == "accepted"
    generate_face_batch(tmp_path / "single", n=40, seed=4)
    assert batch_digest(out, with_validation=False) == batch_digest(tmp_path / "single", with_validation=False)
    with get_client(sync_client=True) as client:
        shards = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="render-shard-")))
        assert len(shards) == 1 and shards[0].state.is_completed()
        (sub,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[shards[0].flow_run_id])))
        assert sub.name and sub.parent_task_run_id  # the render-shards subflow of this run


def test_a_flow_called_in_plain_python_keeps_its_dask_workers_on_its_api(tmp_path):
    """A flow called from a plain Python process reports to a temporary Prefect server
    whose address is in no environment variable; the local cluster's workers are told it,
    so no worker starts a temporary server of its own (they used to, one each, on the same
    SQLite file: "database is locked")."""
    import os
    import subprocess
    import sys

    code = ("from flows.generate_batch import GenerateParams, generate_batch\n"
            f"s = generate_batch(GenerateParams(task='landmarks', n=40, seed=1, out={str(tmp_path / 'b')!r}, "
            "dask_workers=2), return_state=True)\n"
            "assert s.is_completed(), s.message\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(SYNTHLOOP_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"),
               SYNTHLOOP_FACE_MODEL="builtin", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert out.count("Starting temporary server") == 1, out[-3000:]
    assert (tmp_path / "b" / "manifest.json").is_file()
