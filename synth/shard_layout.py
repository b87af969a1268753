"""Where a batch's samples lie: which samples a shard holds, and the parts a shard may be
rendered in (:mod:`synth.shard_jobs`). Shared by the writer (:mod:`synth.shards`) and the
shard jobs, and imports neither."""

from __future__ import annotations

from dataclasses import dataclass


def shard_count(n: int, shard_size: int) -> int:
    return -(-n // shard_size)


def shard_span(index: int, shard_size: int, n: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``index`` in a batch of ``n``; ValueError outside it."""
    start, stop = index * shard_size, min(n, (index + 1) * shard_size)
    if not 0 <= start < stop:
        raise ValueError(f"shard {index} is outside a batch of {n}")
    return start, stop


@dataclass(frozen=True)
class Part:
    """Part ``which`` of ``of`` of a shard: its samples ``[start, stop)`` of the batch."""

    which: int
    of: int
    start: int
    stop: int

    @property
    def suffix(self) -> str:
        return f"part{self.which}of{self.of}"
