"""What the fanned-out batch writers (eyes, faces) share: the jobs (a shard, or a part of one),
which render chunks cover them, what a rendered shard hands back, and the type of the
``map_shards`` callable that runs the jobs (a Dask cluster, a process pool, ``map``).

Chunks need not line up with shard edges: a chunk straddling an edge is rendered by both
neighbours, with the same bytes, since a chunk depends only on its index.

The last shards of a batch may be rendered in parts (:func:`split_tail`), each part by its
own job into its own file, and joined into the shard by the writer (:func:`join_parts`),
with the bytes of the shard rendered whole: when the shards outnumber the workers by a
few, the last round would otherwise leave workers idle while one finishes (49 shards on 2
workers: 25 and 24).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.shard_layout import Part, shard_span
from synth.shards import part_file, save_shard

if TYPE_CHECKING:  # a worker rendering shards never imports pandas (synth.metadata_table.as_arrow)
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class ShardJob:
    """What every shard job carries (picklable: the distribution travels as its JSON);
    each task's job adds how it renders. ``part`` narrows the job to a part of its shard."""

    folder: str  # the writer's temporary batch folder, reachable from the process
    distribution_json: str
    n: int
    seed: int
    shard_size: int
    index: int
    part: Part | None = field(default=None, kw_only=True)

    @property
    def span(self) -> tuple[int, int]:
        """The samples this job renders: its shard's, or its part's."""
        if self.part is not None:
            return self.part.start, self.part.stop
        return shard_span(self.index, self.shard_size, self.n)

    @property
    def grain(self) -> int:
        """Parts split on multiples of this (a task's render chunk, so that no chunk is
        rendered by both halves)."""
        return 1

    def halves(self) -> tuple[ShardJob, ShardJob] | None:
        """This job as two jobs, each rendering half of its samples, split on a multiple
        of :attr:`grain`; None where the job is a part already or too small to split. A
        job that carries data for its samples overrides :meth:`narrowed`."""
        if self.part is not None:
            return None
        start, stop = self.span
        mid = (start + stop) // 2 // self.grain * self.grain
        if not start < mid < stop:
            return None
        return (self.narrowed(Part(0, 2, start, mid)), self.narrowed(Part(1, 2, mid, stop)))

    def narrowed(self, part: Part) -> ShardJob:
        return replace(self, part=part)


@dataclass(frozen=True)
class RenderedShard:
    """A shard written by a job into the batch's temporary folder: its manifest entry,
    image shape and metadata rows (a table or its columns; None where the writer holds
    them already: a refined shard keeps its parent's), per-sample label arrays where the
    task has them (faces: landmarks), and what the job measured on the way (refinement:
    the change it made)."""

    index: int
    entry: dict  # the manifest's shard entry (synth.shards.save_shard); a part's, for a part
    image_shape: tuple[int, ...]
    rows: pd.DataFrame | Mapping[str, np.ndarray] | None
    labels: dict | None = None
    stats: dict | None = None
    part: Part | None = None


#: ``map_shards(render_shard, jobs)`` -> the rendered shards, in any order
ShardMap = Callable[[Callable[[Any], RenderedShard], Sequence[Any]], Iterable[RenderedShard]]


def covering_chunks(start: int, stop: int, chunk: int) -> tuple[range, slice]:
    """The chunk indices whose samples cover ``[start, stop)``, and where those samples
    lie in the chunks' concatenation."""
    first = start // chunk
    return range(first, -(-stop // chunk)), slice(start - first * chunk, stop - first * chunk)


def split_tail(jobs: Sequence[Any], workers: int) -> list[Any]:
    """``jobs`` with the last ``workers`` of them (those that make the last round) split in
    halves where they can be (:meth:`ShardJob.halves`); other jobs (refinement's) and
    those too small stay whole. Taken in order by ``workers`` processes, the halves even
    out the last round."""
    jobs = list(jobs)
    if workers < 2:
        return jobs
    head, tail = jobs[:-workers], jobs[-workers:]
    out = list(head)
    for job in tail:
        halves = job.halves() if isinstance(job, ShardJob) else None
        out.extend(halves or (job,))
    return out


def join_parts(folder: Path, parts: Sequence[RenderedShard], span: tuple[int, int]) -> RenderedShard:
    """The shard of samples ``span`` made of its rendered ``parts`` (all of them): their
    image files, checked against what their jobs wrote, joined into the shard's file (and
    removed), their rows and labels concatenated."""
    import io

    import numpy as np

    parts = sorted(parts, key=lambda p: p.part.which)
    index = parts[0].index
    spans = [(p.part.start, p.part.stop) for p in parts]
    if any(p.index != index for p in parts) or [p.part.which for p in parts] != list(range(parts[0].part.of)) \
            or any(a[1] != b[0] for a, b in zip(spans, spans[1:], strict=False)) \
            or (spans[0][0], spans[-1][1]) != tuple(span):
        raise ValueError(f"shard {index}: parts {spans} do not make the shard of samples {tuple(span)}")
    if any(p.entry.get("file") != part_file(index, p.part) for p in parts):
        raise ValueError(f"shard {index}: parts written as {[p.entry.get('file') for p in parts]}, "
                         f"not {[part_file(index, p.part) for p in parts]}")
    if any(p.stats for p in parts) or any(not isinstance(p.rows, Mapping) for p in parts):
        raise ValueError(f"shard {index}: only parts with metadata columns and no statistics can be joined")
    images = np.concatenate([np.load(io.BytesIO(_part_bytes(folder, p)), allow_pickle=False) for p in parts])
    entry = save_shard(folder, index, images)
    for p in parts:
        (folder / p.entry["file"]).unlink()
    rows = {k: np.concatenate([p.rows[k] for p in parts]) for k in parts[0].rows}
    labels = None if parts[0].labels is None else \
        {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels}
    return RenderedShard(index, entry, parts[0].image_shape, rows, labels)


def _part_bytes(folder: Path, part: RenderedShard) -> bytes:
    """A part's file as its job wrote it (size and sha256 of its entry), or ValueError: on
    shared storage a short or stale read must not become a shard with a fresh checksum."""
    import hashlib

    path = folder / part.entry["file"]
    data = path.read_bytes() if path.is_file() else b""
    if len(data) != part.entry.get("bytes") or hashlib.sha256(data).hexdigest() != part.entry.get("sha256"):
        raise ValueError(f"shard {part.index}: {path} is missing or not what its job wrote "
                         f"({len(data)} bytes, entry {part.entry})")
    return data


def adopt_rendered(map_shards: ShardMap, render: Callable[[Any], RenderedShard], jobs: Sequence[Any],
                   adopt: Callable[[RenderedShard], None],
                   progress: Callable[[int], None] | None = None) -> None:
    """Run ``jobs`` through ``map_shards(render, jobs)`` and hand each rendered shard to
    the writer's ``adopt`` as it arrives, counting its samples into ``progress``. Parts
    (``map_shards`` may split jobs, :func:`split_tail`) are joined once all have come."""
    by_index = {job.index: job for job in jobs}
    waiting: dict[int, dict[int, RenderedShard]] = {}
    for shard in map_shards(render, jobs):
        if progress is not None:
            progress(shard.entry["n"])
        if shard.part is not None:
            parts = waiting.setdefault(shard.index, {})
            if shard.part.which in parts:
                raise ValueError(f"shard {shard.index}: part {shard.part.which} of {shard.part.of} arrived twice")
            parts[shard.part.which] = shard
            if len(parts) < shard.part.of:
                continue
            job = by_index[shard.index]
            shard = join_parts(Path(job.folder), list(waiting.pop(shard.index).values()), job.span)
        adopt(shard)
    if waiting:
        raise ValueError(f"shards {sorted(waiting)}: some of their parts never arrived")
