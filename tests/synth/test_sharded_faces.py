"""A face batch fanned out shard by shard is the streamed batch byte for byte, landmark
arrays included; a worker that loads another face model refuses to render."""

import dataclasses
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from realdata.errors import DataFormatError
from synth.face_distribution import default_face_distribution
from synth.face_fallback import fallback_face_model
from synth.generate_faces import (
    FaceShardJob,
    generate_face_batch,
    read_face_labels,
    render_face_shard,
)
from synth.shard_jobs import split_tail
from synth.shards import BatchReader
from tests.batch_digest import batch_digest

# 50 faces in shards of 20 (2 full, one of 10) and chunks of 8 that straddle shard edges
KW = {"n": 50, "seed": 3, "shard_size": 20, "chunk": 8}


def _reversed_map(fn, jobs):
    """Shards finishing last-first, as a cluster may return them."""
    return [fn(j) for j in reversed(list(jobs))]


def _process_map(fn, jobs):
    """Each shard in a fresh process (spawned, as Dask's are), which loads the face model
    and draws the scenes itself."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, jobs))


@pytest.mark.parametrize("map_shards", [
    pytest.param(_reversed_map, id="reversed"),
    pytest.param(_process_map, id="processes", marks=pytest.mark.slow),  # ~7 s of start-up
])
def test_fanned_out_face_batch_equals_the_streamed_one(tmp_path, map_shards):
    head = fallback_face_model()
    streamed, _ = generate_face_batch(tmp_path / "a", model=head, **KW)
    fanned, _ = generate_face_batch(tmp_path / "b", model=head, map_shards=map_shards, **KW)
    assert streamed == fanned
    a, b = batch_digest(tmp_path / "a"), batch_digest(tmp_path / "b")
    assert any(k.startswith("landmarks/") for k in a) and a == b
    r = BatchReader(tmp_path / "b")
    assert [s["n"] for s in r.manifest["shards"]] == [20, 20, 10]
    labels = read_face_labels(tmp_path / "b")
    assert labels["points68"].shape == (50, 68, 2)
    assert np.array_equal(r.metadata["n_visible68"], labels["visible68"].sum(1))


def test_progress_counts_every_fanned_out_face(tmp_path):
    seen = []
    generate_face_batch(tmp_path / "b", model=fallback_face_model(), map_shards=map,
                        progress=seen.append, **KW)
    assert sorted(seen) == [10, 20, 20]


def test_a_worker_with_another_face_model_refuses(tmp_path):
    job = FaceShardJob(str(tmp_path), default_face_distribution().dumps(), n=20, seed=0,
                       shard_size=20, index=0, model_source="builtin-fallback",
                       model_fingerprint="0" * 16)
    with pytest.raises(DataFormatError, match="every worker must see the same face model"):
        render_face_shard(job)
    assert not any(tmp_path.rglob("*.npy"))


def test_a_missing_face_shard_fails_the_batch_and_leaves_nothing(tmp_path):
    def drop_first(fn, jobs):
        return [fn(j) for j in list(jobs)[1:]]

    with pytest.raises(ValueError, match=r"shards \[0\] never arrived"):
        generate_face_batch(tmp_path / "b", model=fallback_face_model(), map_shards=drop_first, **KW)
    assert list(tmp_path.iterdir()) == []


def test_a_shard_whose_labels_do_not_fit_is_refused(tmp_path):
    def short_labels(fn, jobs):
        out = [fn(j) for j in jobs]
        bad = out[0]
        return [dataclasses.replace(bad, labels={**bad.labels, "points68": bad.labels["points68"][:-1]})] + out[1:]

    with pytest.raises(ValueError, match="label 'points68' has 19 rows for 20 images"):
        generate_face_batch(tmp_path / "b", model=fallback_face_model(), map_shards=short_labels, **KW)
    assert list(tmp_path.iterdir()) == []


def test_writing_a_face_batch_never_imports_torch(tmp_path):
    """Faces render with numpy and numba; torch (~1 s to import in every process, the
    writer's and each worker's) is only for handing faces to training."""
    code = ("import sys\n"
            "from synth.face_fallback import fallback_face_model\n"
            "from synth.generate_faces import generate_face_batch\n"
            f"generate_face_batch({str(tmp_path / 'f')!r}, n=3, seed=1, model=fallback_face_model(),\n"
            "                    map_shards=lambda fn, jobs: map(fn, jobs), shard_size=2)\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False"]


def test_face_shards_rendered_in_halves_join_into_the_streamed_batch(tmp_path):
    head = fallback_face_model()
    generate_face_batch(tmp_path / "a", model=head, **KW)
    split = []

    def split_map(fn, jobs):
        split.extend(split_tail(jobs, 3))
        return map(fn, split)

    generate_face_batch(tmp_path / "b", model=head, map_shards=split_map, **KW)
    assert [j.part is not None for j in split] == [True] * 4 + [False]  # 40-50 has no chunk edge inside
    assert batch_digest(tmp_path / "b") == batch_digest(tmp_path / "a")
    assert not list((tmp_path / "b").rglob("*part*"))  # the parts' files were joined and removed
