"""Batch folders: byte-identical for the same inputs, atomic, and loud about damage."""

import json

import numpy as np
import pandas as pd
import pytest

from synth.eye_distribution import default_eye_distribution
from synth.generate import generate_batch
from synth.shards import (
    BatchReader,
    BatchWriter,
    QuarantinedBatchError,
    open_for_training,
    write_status,
)
from synthloop.errors import DataFormatError


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "batch"
    generate_batch(out, n=700, seed=11, shard_size=256)
    return out


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_distribution_and_seed_give_identical_bytes(batch, tmp_path):
    again = tmp_path / "again"
    bid, _ = generate_batch(again, n=700, seed=11, shard_size=256)
    assert _files(again) == _files(batch)
    assert bid == json.loads((batch / "manifest.json").read_text())["batch_id"]
    other, _ = generate_batch(tmp_path / "other", n=700, seed=12, shard_size=256)
    assert other != bid
    assert _files(tmp_path / "other")["shards/images-00000.npy"] != _files(batch)["shards/images-00000.npy"]


def test_layout_manifest_and_metadata(batch):
    r = BatchReader(batch)
    m = r.manifest
    assert m["n"] == 700 and [s["n"] for s in m["shards"]] == [256, 256, 188]
    assert r.image_shape == (36, 60)
    meta = r.metadata
    assert list(meta.columns[:3]) == ["sample", "pitch", "yaw"]
    assert set(default_eye_distribution().factor_names) <= set(meta.columns)
    np.testing.assert_array_equal(meta["pitch"], meta["gaze_pitch"])
    assert r.distribution.id == m["distribution_id"]
    # shards are plain .npy files that memory-map
    arr = np.load(batch / "shards/images-00001.npy", mmap_mode="r")
    assert arr.dtype == np.uint8 and arr.shape == (256, 36, 60)


def test_reader_gathers_across_shards_in_the_given_order(batch):
    r = BatchReader(batch)
    full = np.concatenate([np.load(batch / f"shards/images-0000{i}.npy") for i in range(3)])
    idx = [699, 3, 300, 256, 255, 3]
    np.testing.assert_array_equal(r.images(idx), full[idx])
    with pytest.raises(IndexError):
        r.images([700])


def test_failed_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "x"
    d = default_eye_distribution()
    with pytest.raises(RuntimeError, match="boom"), \
            BatchWriter(out, task="gaze", dist=d, seed=0, n=10, generator={}) as w:
        w.add(np.zeros((5, 36, 60), np.uint8), pd.DataFrame({"pitch": np.zeros(5)}))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # too few samples is an error too, and also leaves nothing
    with pytest.raises(ValueError, match="expected 10"), \
            BatchWriter(out, task="gaze", dist=d, seed=0, n=10, generator={}) as w:
        w.add(np.zeros((5, 36, 60), np.uint8), pd.DataFrame({"pitch": np.zeros(5)}))
    assert list(tmp_path.iterdir()) == []


def test_existing_batch_is_not_overwritten_by_accident(batch):
    with pytest.raises(FileExistsError, match="already exists"):
        generate_batch(batch, n=10, seed=0)


def _copy(batch, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(batch, dst)
    return dst


def test_truncated_shard_is_named(batch, tmp_path):
    d = _copy(batch, tmp_path)
    shard = d / "shards/images-00001.npy"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match="images-00001.npy") as e:
        BatchReader(d)
    assert "truncated" in str(e.value)
    # even without checksum verification, the shape check catches it
    with pytest.raises(DataFormatError, match="images-00001.npy"):
        BatchReader(d, verify=False)


def test_modified_metadata_fails_the_checksum(batch, tmp_path):
    d = _copy(batch, tmp_path)
    p = d / "metadata.parquet"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="metadata.parquet.*checksum"):
        BatchReader(d)


def test_missing_or_garbage_manifest(tmp_path):
    with pytest.raises(DataFormatError, match="manifest.json"):
        BatchReader(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        BatchReader(tmp_path)


def test_only_accepted_batches_reach_training(batch, tmp_path):
    d = _copy(batch, tmp_path)
    with pytest.raises(QuarantinedBatchError, match="not been validated"):
        open_for_training(d)
    write_status(d, "quarantined", failing=["expect_column_values_to_not_be_null(pitch)"])
    with pytest.raises(QuarantinedBatchError, match="quarantined.*not_be_null"):
        open_for_training(d)
    assert (d / "manifest.json").is_file()  # kept for inspection
    write_status(d, "accepted")
    assert open_for_training(d).n == 700


class _NotesWriter(BatchWriter):
    """A task that adds its own files: registered ones land in the manifest."""

    def write_extra_files(self, folder):
        (folder / "notes").mkdir()
        (folder / "notes" / "a.txt").write_text("per-sample notes\n")
        self.add_extra_file("notes/a.txt")
        (folder / "b.bin").write_bytes(b"\x00\x01")
        self.add_extra_file("b.bin")


def _write_with_extras(out, cls=_NotesWriter):
    d = default_eye_distribution()
    with cls(out, task="gaze", dist=d, seed=0, n=4, generator={}) as w:
        w.add(np.zeros((4, 36, 60), np.uint8), pd.DataFrame({"pitch": np.zeros(4)}))
    return out


def test_eye_manifests_list_no_extra_files(batch):
    assert "extra_files" not in json.loads((batch / "manifest.json").read_text())
    assert BatchReader(batch).extra_files == []


def test_extra_files_are_checksummed_in_the_manifest(tmp_path):
    out = _write_with_extras(tmp_path / "x")
    m = json.loads((out / "manifest.json").read_text())
    assert [e["file"] for e in m["extra_files"]] == ["b.bin", "notes/a.txt"]  # sorted
    assert m["extra_files"][0]["bytes"] == 2 and len(m["extra_files"][0]["sha256"]) == 64
    r = BatchReader(out)
    assert r.extra_files == ["b.bin", "notes/a.txt"]
    (out / "notes" / "a.txt").write_text("edited\n")
    with pytest.raises(DataFormatError, match="a.txt.*(size|checksum)"):
        BatchReader(out)
    (out / "b.bin").unlink()
    with pytest.raises(DataFormatError, match="b.bin.*missing"):
        r.verify_checksums()


@pytest.mark.parametrize("rel", ["../escape.txt", "/abs.txt", "manifest.json", "shards/x.npy"])
def test_extra_files_must_stay_inside_and_not_shadow(tmp_path, rel):
    class Bad(BatchWriter):
        def write_extra_files(self, folder):
            self.add_extra_file(rel)

    with pytest.raises(ValueError, match="extra file"):
        _write_with_extras(tmp_path / "x", Bad)
    assert list(tmp_path.iterdir()) == []


def test_registered_but_unwritten_extra_file_fails_the_write(tmp_path):
    class Forgetful(BatchWriter):
        def write_extra_files(self, folder):
            self.add_extra_file("labels.npy")

    with pytest.raises(FileNotFoundError, match="labels.npy"):
        _write_with_extras(tmp_path / "x", Forgetful)
    assert list(tmp_path.iterdir()) == []
