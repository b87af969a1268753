"""The metadata table written a shard at a time: one row group per shard in shard order,
numbered samples, a checksum taken while writing, and loud errors for rows that do not
fit; the batch writer puts shards that arrive out of order back in order."""

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from synth.eye_distribution import default_eye_distribution
from synth.metadata_table import MetadataTableWriter, as_arrow
from synth.shards import BatchReader, BatchWriter, save_shard


def _rows(start, k):
    return {"pitch": np.arange(start, start + k, dtype=np.float64) / 10,
            "size": np.arange(start, start + k, dtype=np.float32),
            "count": np.arange(start, start + k, dtype=np.int64) * 2}


def test_each_shard_is_one_row_group_and_the_checksum_is_the_files(tmp_path):
    path = tmp_path / "metadata.parquet"
    w = MetadataTableWriter(path)
    w.write(as_arrow(_rows(0, 5)), "shard 0")
    w.write(as_arrow(_rows(5, 3)), "shard 1")
    sha = w.close()
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    f = pq.ParquetFile(path)
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [5, 3]
    t = pd.read_parquet(path)
    assert list(t.columns) == w.columns == ["sample", "pitch", "size", "count"]
    np.testing.assert_array_equal(t["sample"], np.arange(8))
    np.testing.assert_array_equal(t["pitch"], np.arange(8) / 10)
    assert (t.dtypes["size"], t.dtypes["count"]) == (np.float32, np.int64)


def test_a_shard_with_other_columns_is_refused_by_name(tmp_path):
    w = MetadataTableWriter(tmp_path / "m.parquet")
    w.write(as_arrow(_rows(0, 2)), "shard 0")
    other = _rows(2, 2)
    other["size"] = other["size"].astype(np.float64)
    with pytest.raises(ValueError, match=r"shard 1: metadata columns .*size:double.* differ .*size:float"):
        w.write(as_arrow(other), "shard 1")
    with pytest.raises(ValueError, match="shard 1: .*'sample'"):
        w.write(as_arrow({**_rows(2, 2), "sample": np.arange(2)}), "shard 1")
    w.discard()


def test_rows_come_as_columns_or_a_table_and_must_have_one_length():
    cols = _rows(0, 4)
    frame = pd.DataFrame(cols, index=[7, 8, 9, 10])
    assert as_arrow(frame).equals(as_arrow(cols))  # no index column
    assert as_arrow(frame).schema.metadata is None
    strided = {"x": np.arange(8, dtype=np.float64)[::2], "flag": np.array([True, False, True, True])}
    t = as_arrow(strided)
    assert t.column("x").to_pylist() == [0, 2, 4, 6] and t.column("flag").to_pylist() == [True, False, True, True]
    with pytest.raises(ValueError, match="different lengths"):
        as_arrow({"a": np.zeros(3), "b": np.zeros(2)})


def test_nothing_written_is_an_error_not_an_empty_table(tmp_path):
    with pytest.raises(ValueError, match="no metadata rows"):
        MetadataTableWriter(tmp_path / "m.parquet").close()


def _assemble(out, order, n=10, size=4):
    dist = default_eye_distribution()
    with BatchWriter(out, task="gaze", dist=dist, seed=0, n=n, generator={"name": "t"}, shard_size=size) as w:
        for i in order:
            start, stop = i * size, min(n, (i + 1) * size)
            images = np.full((stop - start, 2, 3), i, np.uint8)
            w.adopt_shard(i, save_shard(w.tmp, i, images), (2, 3), _rows(start, stop - start))


def test_shards_adopted_out_of_order_give_the_streamed_table(tmp_path):
    dist = default_eye_distribution()
    with BatchWriter(tmp_path / "s", task="gaze", dist=dist, seed=0, n=10, generator={"name": "t"},
                     shard_size=4) as w:
        for start, k in ((0, 3), (3, 3), (6, 4)):  # rows arrive in chunks that straddle shards
            images = np.array([np.full((2, 3), (start + j) // 4, np.uint8) for j in range(k)])
            w.add(images, _rows(start, k))
    _assemble(tmp_path / "a", [2, 0, 1])
    assert (tmp_path / "a/metadata.parquet").read_bytes() == (tmp_path / "s/metadata.parquet").read_bytes()
    assert BatchReader(tmp_path / "a").manifest == BatchReader(tmp_path / "s").manifest
    f = pq.ParquetFile(tmp_path / "a/metadata.parquet")
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [4, 4, 2]


def test_a_batch_whose_rows_do_not_fit_leaves_nothing(tmp_path):
    dist = default_eye_distribution()
    with (pytest.raises(ValueError, match="metadata columns changed"),
          BatchWriter(tmp_path / "b", task="gaze", dist=dist, seed=0, n=4, generator={"name": "t"},
                      shard_size=4) as w):
        w.add(np.zeros((2, 2, 3), np.uint8), _rows(0, 2))
        w.add(np.zeros((2, 2, 3), np.uint8), {"pitch": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_a_batch_is_streamed_or_assembled_not_both(tmp_path):
    dist = default_eye_distribution()
    kw = {"task": "gaze", "dist": dist, "seed": 0, "n": 8, "generator": {"name": "t"}, "shard_size": 4}
    with pytest.raises(ValueError, match="add after adopt_shard"), BatchWriter(tmp_path / "a", **kw) as w:
        w.adopt_shard(0, save_shard(w.tmp, 0, np.zeros((4, 2, 3), np.uint8)), (2, 3), _rows(0, 4))
        w.add(np.zeros((4, 2, 3), np.uint8), _rows(4, 4))
    with pytest.raises(ValueError, match="adopt_shard after add"), BatchWriter(tmp_path / "b", **kw) as w:
        w.add(np.zeros((4, 2, 3), np.uint8), _rows(0, 4))
        w.adopt_shard(1, save_shard(w.tmp, 1, np.zeros((4, 2, 3), np.uint8)), (2, 3), _rows(4, 4))
    assert list(tmp_path.iterdir()) == []


def test_an_abandoned_batch_closes_its_metadata_file(tmp_path):
    dist = default_eye_distribution()
    with pytest.raises(RuntimeError, match="stop"), BatchWriter(
            tmp_path / "b", task="gaze", dist=dist, seed=0, n=8, generator={"name": "t"}, shard_size=4) as w:
        w.add(np.zeros((4, 2, 3), np.uint8), _rows(0, 4))  # one row group written, the file open
        assert not w._meta._fh.closed
        raise RuntimeError("stop")
    assert w._meta._fh.closed and list(tmp_path.iterdir()) == []


def test_a_frame_and_its_columns_write_the_same_bytes_nan_included(tmp_path):
    cols = _rows(0, 4)
    cols["pitch"][1] = np.nan
    for name, rows in (("cols", cols), ("frame", pd.DataFrame(cols))):
        w = MetadataTableWriter(tmp_path / f"{name}.parquet")
        w.write(as_arrow(rows), "shard 0")
        w.close()
    assert (tmp_path / "cols.parquet").read_bytes() == (tmp_path / "frame.parquet").read_bytes()
    assert np.isnan(pd.read_parquet(tmp_path / "frame.parquet")["pitch"][1])
