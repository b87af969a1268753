"""Generate one batch of synthetic eye patches to disk: draw scenes, render in chunks,
write shards. (Face batches: :mod:`synth.generate_faces`.)

A batch is written either as one stream (chunks rendered in order, shards written as
they fill) or fanned out: each shard rendered by its own job (:func:`render_eye_shard`),
run by whatever ``map_shards`` the caller passes (a Dask cluster through Prefect, a
process pool, plain ``map``), straight into the writer's temporary folder; the writer
then adopts the shards and finishes the batch. Every shard is a function of the
distribution, seed, size and shard index alone, so both ways give the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from realdata.errors import UsageError
from synth.distribution import SceneDistribution
from synth.eye_distribution import EYE_TASK, TASK, default_eye_distribution
from synth.eye_scenes import CPU_CHUNK, generator_settings, sample_scenes
from synth.shard_jobs import (
    Part,
    RenderedShard,
    ShardJob,
    ShardMap,
    adopt_rendered,
    covering_chunks,
)
from synth.shard_layout import shard_count
from synth.shards import BatchWriter, batch_id_for, save_shard

#: Below this many samples the one-off torch.compile (~10-40 s on 2 cores) costs more
#: than it saves; above it the compiled renderer is ~3x faster on CPU.
AUTO_COMPILE_MIN = 30_000

def eye_metadata(scenes: dict[str, np.ndarray], geometry: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The metadata rows' columns: labels first (DESIGN.md convention, radians), then every
    factor value, then geometry. Plain arrays, not a table: a worker rendering shards
    never imports pandas (~0.25 s of its start-up; the writer makes the table)."""
    cols: dict[str, np.ndarray] = {
        "pitch": scenes["gaze_pitch"].astype(np.float64),
        "yaw": scenes["gaze_yaw"].astype(np.float64),
    }
    cols.update({k: v.astype(np.float64) for k, v in scenes.items()})  # exact: range checks
    cols.update({k: v.astype(np.float32) for k, v in geometry.items()})
    return cols


def planned_batch_id(*, n: int, seed: int, dist: SceneDistribution | None = None,
                     device: str = "cpu", compiled: bool | None = None) -> str:
    """The id ``generate_batch`` with these arguments writes (without rendering anything)."""
    dist = dist or default_eye_distribution()
    compiled = n >= AUTO_COMPILE_MIN if compiled is None else compiled
    EYE_TASK.check(dist)
    return batch_id_for(dist.id, seed, n, generator_settings(device, compiled))


@dataclass(frozen=True)
class EyeShardJob(ShardJob):
    """Everything one process needs to render shard ``index`` of an eye batch."""

    device: str = "cpu"
    compiled: bool = False
    chunk: int = CPU_CHUNK  # the renderer's: parts split on its multiples
    #: the factors of the chunks that cover this job's samples (from the first one's first
    #: sample), drawn once by the writer (:func:`eye_shard_jobs`)
    scenes: dict[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def grain(self) -> int:
        return self.chunk

    @property
    def scenes_from(self) -> int:
        """The batch index of the first sample in :attr:`scenes`."""
        return covering_chunks(*self.span, self.chunk)[0].start * self.chunk

    def carrying(self, scenes: dict[str, np.ndarray], offset: int = 0) -> EyeShardJob:
        """This job with its scenes cut from ``scenes`` (the batch's from sample ``offset``)."""
        covering, _ = covering_chunks(*self.span, self.chunk)
        lo, hi = covering.start * self.chunk - offset, min(self.n, covering.stop * self.chunk) - offset
        return replace(self, scenes={k: v[lo:hi] for k, v in scenes.items()})  # views: pickled alone

    def narrowed(self, part: Part) -> EyeShardJob:
        if self.scenes is None:
            raise ValueError(f"shard {self.index}: the job carries no scenes to split")
        return replace(self, part=part).carrying(self.scenes, self.scenes_from)


def eye_shard_jobs(folder: str, dist: SceneDistribution, n: int, seed: int, shard_size: int,
                   device: str, compiled: bool, chunk: int) -> list[EyeShardJob]:
    """One job per shard, each carrying its own scenes: the batch's scenes are drawn once
    here rather than whole in every worker (at millions of samples, seconds and gigabytes
    per worker)."""
    scenes, text = sample_scenes(dist, n, seed), dist.dumps()
    return [EyeShardJob(folder, text, n, seed, shard_size, i, device, compiled, chunk).carrying(scenes)
            for i in range(shard_count(n, shard_size))]


@functools.lru_cache(maxsize=1)
def _distribution(distribution_json: str) -> SceneDistribution:
    return SceneDistribution.loads(distribution_json)


def render_eye_shard(job: EyeShardJob) -> RenderedShard:
    """Render shard ``job.index`` (or ``job.part`` of it) and write it into ``job.folder``;
    its entry and rows. Renders the whole chunks that overlap the job's samples, as the
    streamed batch does."""
    start, stop = job.span
    if job.scenes is None:
        raise ValueError(f"shard {job.index}: the job carries no scenes (make jobs with eye_shard_jobs)")
    from synth.eye_generator import EyeGenerator

    gen = EyeGenerator(_distribution(job.distribution_json), device=job.device,
                       compiled=job.compiled)
    if gen.chunk != job.chunk:
        raise ValueError(f"shard {job.index}: planned in chunks of {job.chunk}, the renderer uses {gen.chunk}")
    covering, cut = covering_chunks(start, stop, gen.chunk)
    offset = covering.start * gen.chunk  # where the job's scenes begin in the batch
    chunks = list(gen.iter_chunks(job.n, job.seed, scenes=job.scenes, chunks=covering,
                                  offset=offset))
    images = np.concatenate([c.images for c in chunks])[cut]
    geometry = {g: np.concatenate([c.geometry[g] for c in chunks])[cut] for g in chunks[0].geometry}
    rows = eye_metadata({k: v[start - offset:stop - offset] for k, v in job.scenes.items()}, geometry)
    entry = save_shard(Path(job.folder), job.index, images, job.part)
    return RenderedShard(job.index, entry, tuple(images.shape[1:]), rows, part=job.part)


def generate_batch(
    out: str | Path,
    *,
    n: int,
    seed: int,
    dist: SceneDistribution | None = None,
    device: str = "cpu",
    compiled: bool | None = None,
    shard_size: int = 4096,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    map_shards: ShardMap | None = None,
) -> tuple[str, Path]:
    """Write a batch folder; returns (batch id, path). Same inputs give identical bytes,
    streamed or fanned out through ``map_shards``."""
    if n <= 0:
        raise UsageError(f"n must be positive, got {n}")
    dist = dist or default_eye_distribution()
    if dist.task != TASK:
        raise dist.error(f"distribution is for task {dist.task!r}, not {TASK!r} (eye patches)")
    if compiled is None:
        compiled = n >= AUTO_COMPILE_MIN
    EYE_TASK.check(dist)  # before anything is written
    settings = generator_settings(device, compiled)
    with BatchWriter(out, task=TASK, dist=dist, seed=seed, n=n, generator=settings,
                     shard_size=shard_size, overwrite=overwrite) as w:
        if map_shards is not None:  # this process plans and assembles; it never imports torch
            jobs = eye_shard_jobs(str(w.tmp), dist, n, seed, shard_size, device, compiled,
                                  settings["chunk"])
            adopt_rendered(map_shards, render_eye_shard, jobs, progress=progress,
                           adopt=lambda s: w.adopt_shard(s.index, s.entry, s.image_shape, s.rows))
            return w.batch_id, Path(out)
        from synth.eye_generator import EyeGenerator

        gen = EyeGenerator(dist, device=device, compiled=compiled)
        scenes = sample_scenes(dist, n, seed)
        for chunk in gen.iter_chunks(n, seed, scenes=scenes, progress=progress):
            k = len(chunk.images)
            part = {key: v[chunk.start:chunk.start + k] for key, v in scenes.items()}
            w.add(chunk.images, eye_metadata(part, chunk.geometry))
    return w.batch_id, Path(out)
