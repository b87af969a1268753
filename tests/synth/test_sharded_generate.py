"""A batch fanned out shard by shard (any process, any order) is the streamed batch, byte
for byte; the writer refuses shards that do not fit and leaves nothing half-written."""

from dataclasses import replace
from pathlib import Path

import pytest

from synth.eye_distribution import default_eye_distribution
from synth.generate import EyeShardJob, eye_shard_jobs, generate_batch, render_eye_shard
from synth.shard_jobs import join_parts, split_tail
from synth.shards import BatchReader
from tests.batch_digest import batch_digest


def _reversed_map(fn, jobs):
    """Shards finishing last-first, as a cluster may return them."""
    return [fn(j) for j in reversed(list(jobs))]


def test_fanned_out_batch_equals_the_streamed_one(tmp_path):
    # 700 = 2 full shards of 300 and a short one; chunks of 128 straddle shard edges
    streamed, _ = generate_batch(tmp_path / "a", n=700, seed=5, shard_size=300)
    fanned, _ = generate_batch(tmp_path / "b", n=700, seed=5, shard_size=300, map_shards=_reversed_map)
    assert streamed == fanned
    a, b = batch_digest(tmp_path / "a"), batch_digest(tmp_path / "b")
    assert len(a) == 3 + 3 and a == b  # 3 shards, manifest, metadata, distribution
    r = BatchReader(tmp_path / "b")
    assert [s["n"] for s in r.manifest["shards"]] == [300, 300, 100]
    assert list(r.metadata["sample"]) == list(range(700))


def test_progress_counts_every_fanned_out_sample(tmp_path):
    seen = []
    generate_batch(tmp_path / "b", n=500, seed=1, shard_size=200, map_shards=map, progress=seen.append)
    assert sorted(seen) == [100, 200, 200]


def _drop_last(fn, jobs):
    return [fn(j) for j in list(jobs)[:-1]]


def test_a_missing_shard_fails_the_batch_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"shards \[2\] never arrived"):
        generate_batch(tmp_path / "b", n=500, seed=1, shard_size=200, map_shards=_drop_last)
    assert list(tmp_path.iterdir()) == []  # no batch, no partial folder


def _elsewhere(fn, jobs):
    """A worker that cannot see the writer's folder writes somewhere else."""
    out = []
    for j in jobs:
        other = Path(j.folder).parent / "elsewhere"
        (other / "shards").mkdir(parents=True, exist_ok=True)
        out.append(fn(EyeShardJob(**{**j.__dict__, "folder": str(other)})))
    return out


def test_a_shard_the_writer_cannot_see_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="shared storage"):
        generate_batch(tmp_path / "b", n=300, seed=1, shard_size=200, map_shards=_elsewhere)
    assert not (tmp_path / "b").exists()


def test_a_shard_outside_the_batch_is_refused(tmp_path):
    job = EyeShardJob(str(tmp_path), default_eye_distribution().dumps(), n=100, seed=0,
                      shard_size=100, index=1)
    with pytest.raises(ValueError, match="shard 1 is outside a batch of 100"):
        render_eye_shard(job)


def test_a_job_carries_only_its_own_chunks_scenes_and_needs_them(tmp_path):
    dist = default_eye_distribution()
    jobs = eye_shard_jobs(str(tmp_path), dist, n=700, seed=5, shard_size=300,
                          device="cpu", compiled=False, chunk=128)
    # shard 1 is samples 300-599, covered by chunks 2-4: samples 256-639
    assert [len(j.scenes["gaze_pitch"]) for j in jobs] == [384, 384, 188]
    bare = EyeShardJob(str(tmp_path), dist.dumps(), n=700, seed=5, shard_size=300, index=1)
    with pytest.raises(ValueError, match="shard 1: the job carries no scenes"):
        render_eye_shard(bare)


def _split_reversed(fn, jobs):
    """The last two shards rendered in halves, everything finishing last-first."""
    return [fn(j) for j in reversed(split_tail(jobs, 2))]


def test_shards_rendered_in_halves_join_into_the_streamed_batch(tmp_path):
    # shards of 300 in chunks of 128: each of the last two splits on the chunk edge
    # nearest below its middle (300-384 | 384-600 and 600-640 | 640-700)
    jobs = eye_shard_jobs(str(tmp_path), default_eye_distribution(), n=700, seed=5, shard_size=300,
                          device="cpu", compiled=False, chunk=128)
    split = split_tail(jobs, 2)
    assert [(j.index, j.span) for j in split] == [(0, (0, 300)), (1, (300, 384)), (1, (384, 600)),
                                                  (2, (600, 640)), (2, (640, 700))]
    assert [len(j.scenes["gaze_pitch"]) for j in split] == [384, 128, 256, 128, 60]
    streamed, _ = generate_batch(tmp_path / "a", n=700, seed=5, shard_size=300)
    seen = []
    fanned, _ = generate_batch(tmp_path / "b", n=700, seed=5, shard_size=300, map_shards=_split_reversed,
                               progress=seen.append)
    assert fanned == streamed and batch_digest(tmp_path / "b") == batch_digest(tmp_path / "a")
    assert sorted(seen) == [40, 60, 84, 216, 300]  # progress moves with each part


def test_split_tail_splits_only_the_last_round_and_never_a_part():
    jobs = eye_shard_jobs("unused", default_eye_distribution(), n=2048, seed=0, shard_size=256,
                          device="cpu", compiled=False, chunk=128)
    assert [j.part is None for j in split_tail(jobs, 1)] == [True] * 8  # one worker: nothing to even out
    split = split_tail(jobs, 3)
    assert [(j.index, j.part and j.part.which) for j in split][4:] == [
        (4, None), (5, 0), (5, 1), (6, 0), (6, 1), (7, 0), (7, 1)]
    assert split[5].halves() is None


def _lose_a_part(fn, jobs):
    return [fn(j) for j in split_tail(jobs, 2)[:-1]]


def test_a_missing_part_fails_the_batch_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"shards \[1\]: some of their parts never arrived"):
        generate_batch(tmp_path / "b", n=1024, seed=1, shard_size=512, map_shards=_lose_a_part)
    assert list(tmp_path.iterdir()) == []


def test_a_job_planned_in_other_chunks_than_the_renderers_is_refused(tmp_path):
    [job] = eye_shard_jobs(str(tmp_path), default_eye_distribution(), n=64, seed=1, shard_size=64,
                           device="cpu", compiled=False, chunk=32)
    with pytest.raises(ValueError, match="shard 0: planned in chunks of 32, the renderer uses 128"):
        render_eye_shard(job)


def test_parts_that_do_not_make_their_shard_are_refused(tmp_path):
    jobs = split_tail(eye_shard_jobs(str(tmp_path), default_eye_distribution(), n=512, seed=1,
                                     shard_size=512, device="cpu", compiled=False, chunk=128), 2)
    (tmp_path / "shards").mkdir()
    first, second = (render_eye_shard(j) for j in jobs)
    with pytest.raises(ValueError, match=r"shard 0: parts \[\(0, 256\), \(0, 256\)\] do not make"):
        join_parts(tmp_path, [first, replace(first, part=replace(first.part, which=1))], (0, 512))
    with pytest.raises(ValueError, match=r"do not make the shard of samples \(0, 600\)"):
        join_parts(tmp_path, [first, second], (0, 600))
    renamed = replace(second, entry={**second.entry, "file": "../elsewhere.npy"})
    with pytest.raises(ValueError, match="shard 0: parts written as"):
        join_parts(tmp_path, [first, renamed], (0, 512))
    stale = replace(second, entry={**second.entry, "sha256": "0" * 64})
    with pytest.raises(ValueError, match="not what its job wrote"):
        join_parts(tmp_path, [first, stale], (0, 512))
    joined = join_parts(tmp_path, [second, first], (0, 512))
    assert joined.part is None and joined.entry["n"] == 512
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["images-00000.npy"]


def _first_part_twice(fn, jobs):
    done = [fn(j) for j in split_tail(jobs, 2)]
    return [done[0], done[0], *done[1:]]


def test_a_part_delivered_twice_fails_the_batch_by_name(tmp_path):
    with pytest.raises(ValueError, match="shard 0: part 0 of 2 arrived twice"):
        generate_batch(tmp_path / "b", n=512, seed=1, shard_size=512, map_shards=_first_part_twice)
    assert list(tmp_path.iterdir()) == []
