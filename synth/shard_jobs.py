"""What the fanned-out batch writers (eyes, faces) share: which samples a shard holds,
which render chunks cover them, what a rendered shard hands back, and the type of the
``map_shards`` callable that runs the jobs (a Dask cluster, a process pool, ``map``).

Chunks need not line up with shard edges: a chunk straddling an edge is rendered by both
neighbours, with the same bytes, since a chunk depends only on its index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a worker rendering shards never imports pandas (synth.shards.as_table)
    from collections.abc import Mapping

    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class ShardJob:
    """What every shard job carries (picklable: the distribution travels as its JSON);
    each task's job adds how it renders."""

    folder: str  # the writer's temporary batch folder, reachable from the process
    distribution_json: str
    n: int
    seed: int
    shard_size: int
    index: int

    @property
    def span(self) -> tuple[int, int]:
        return shard_span(self.index, self.shard_size, self.n)


@dataclass(frozen=True)
class RenderedShard:
    """A shard written by a job into the batch's temporary folder: its manifest entry,
    image shape and metadata rows (a table or its columns; None where the writer holds
    them already: a refined shard keeps its parent's), per-sample label arrays where the
    task has them (faces: landmarks), and what the job measured on the way (refinement:
    the change it made)."""

    index: int
    entry: dict  # the manifest's shard entry (synth.shards.save_shard)
    image_shape: tuple[int, ...]
    rows: pd.DataFrame | Mapping[str, np.ndarray] | None
    labels: dict | None = None
    stats: dict | None = None


#: ``map_shards(render_shard, jobs)`` -> the rendered shards, in any order
ShardMap = Callable[[Callable[[Any], RenderedShard], Sequence[Any]], Iterable[RenderedShard]]


def shard_count(n: int, shard_size: int) -> int:
    return -(-n // shard_size)


def shard_span(index: int, shard_size: int, n: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``index`` in a batch of ``n``; ValueError outside it."""
    start, stop = index * shard_size, min(n, (index + 1) * shard_size)
    if not 0 <= start < stop:
        raise ValueError(f"shard {index} is outside a batch of {n}")
    return start, stop


def covering_chunks(start: int, stop: int, chunk: int) -> tuple[range, slice]:
    """The chunk indices whose samples cover ``[start, stop)``, and where those samples
    lie in the chunks' concatenation."""
    first = start // chunk
    return range(first, -(-stop // chunk)), slice(start - first * chunk, stop - first * chunk)


def adopt_rendered(map_shards: ShardMap, render: Callable[[Any], RenderedShard], jobs: Sequence[Any],
                   adopt: Callable[[RenderedShard], None],
                   progress: Callable[[int], None] | None = None) -> None:
    """Run ``jobs`` through ``map_shards(render, jobs)`` and hand each rendered shard to
    the writer's ``adopt`` as it arrives, counting its samples into ``progress``."""
    for shard in map_shards(render, jobs):
        adopt(shard)
        if progress is not None:
            progress(shard.entry["n"])
