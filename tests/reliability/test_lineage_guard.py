"""The loop never trains on a batch other than the one the catalog records (audit D2):
a round's folder regenerated or replaced after it was recorded is refused, naming the
manifest, before any training run is written."""

from __future__ import annotations

import pytest

from realdata.errors import DataFormatError
from synthloop.lineage import check_batch_is_recorded_one, open_catalog, record_batch
from synthloop.taskspec import GenerateOptions, get_task


def _write(out, seed, overwrite=False):
    gen = get_task("gaze").generator(GenerateOptions(compiled=False))
    batch_id, _ = gen.write(out, n=16, seed=seed, shard_size=8, overwrite=overwrite)
    return batch_id


@pytest.fixture
def recorded(tmp_path):
    out = tmp_path / "round-00"
    bid = _write(out, seed=1)
    cat = open_catalog()
    record_batch(cat, out)
    return cat, bid, out


def test_the_recorded_batch_passes(recorded):
    cat, bid, out = recorded
    check_batch_is_recorded_one(cat, bid, out)


def test_another_batch_in_the_recorded_folder_is_refused(recorded):
    cat, bid, out = recorded
    other = _write(out, seed=99, overwrite=True)
    assert other != bid
    with pytest.raises(DataFormatError, match=f"holds batch {other}, not the batch {bid}") as e:
        check_batch_is_recorded_one(cat, bid, out)
    assert e.value.path == out / "manifest.json"
    assert "\n" not in str(e.value)


def test_an_edited_manifest_of_the_same_batch_is_refused(recorded):
    cat, bid, out = recorded
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"seed": 1', '"seed": 1 '))
    with pytest.raises(DataFormatError, match="a different manifest"):
        check_batch_is_recorded_one(cat, bid, out)


def test_the_loops_training_task_checks_before_training(recorded, monkeypatch):
    """tasks.loop.train_round refuses the replaced folder before it records a training
    run or starts training."""
    pytest.importorskip("prefect")
    from synthloop.loop.config import LoopConfig
    from tasks import loop as loop_tasks

    cat, bid, out = recorded
    _write(out, seed=99, overwrite=True)
    trained = []
    monkeypatch.setattr(loop_tasks, "get_task", lambda name: trained.append(name))
    cfg = LoopConfig(task="gaze", real="unused")
    with pytest.raises(DataFormatError, match="not the batch"):
        loop_tasks.train_round.fn(cfg, "loop-x", 0, str(out), bid, None, "run-x")
    assert trained == []
    assert cat.get_training_run("loop-x-r0") is None
