"""Progress of a training job for people watching it: step/total, loss, img/s and time
left, as a few concise lines (in logs, the dashboard and piped output) or, on a
terminal, a live bar.

:func:`training_progress` turns a ``log(str)`` function into a
:func:`models.train.train` callback. A ``log`` that also has a ``bar(total, label)``
method (the command line's, on a terminal) gets a bar instead of lines.

The rate counts the images each step consumes (source, plus target for the methods
that use one) over the steps seen by this process, so a resumed run is not credited
with steps it did not do. Time left is the remaining steps at that rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["LINES_PER_RUN", "TrainProgress", "chain", "format_duration", "images_per_step",
           "training_progress"]

#: how many lines a training job prints, start and end included (about)
LINES_PER_RUN = 10


def format_duration(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class TrainProgress:
    """A ``callback(step, metrics)`` for :func:`models.train.train` that calls
    ``report(line)`` about every ``total / LINES_PER_RUN`` steps and at the last step.

    ``images_per_step``: images one step consumes (for img/s). ``label`` starts each
    line (e.g. ``round 2/3 train``). ``clock`` is injectable so tests need no sleeping.
    """

    def __init__(self, total: int, images_per_step: int, report: Callable[[str], None], *,
                 label: str = "train", every: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if total < 1:
            raise ValueError(f"total must be >= 1, got {total}")
        self.total, self.images_per_step, self.report = total, images_per_step, report
        self.label, self.clock = label, clock
        self.every = every or max(1, total // LINES_PER_RUN)
        self._t0: float | None = None
        self._step0 = 0
        self._next = 0

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        now = self.clock()
        if self._t0 is None:
            # the first report is the reference point: its step may be a resumed run's
            self._t0, self._step0 = now, step
            self._next = step + self.every
            self.report(self._line(step, metrics, rate=None))
            return
        if step < self._next and step < self.total:
            return
        self._next = step + self.every
        elapsed = now - self._t0
        rate = (step - self._step0) / elapsed if elapsed > 0 else None
        self.report(self._line(step, metrics, rate))

    def _line(self, step: int, metrics: dict[str, float], rate: float | None) -> str:
        parts = [f"{self.label} step {step}/{self.total}"]
        loss = metrics.get("loss")
        if isinstance(loss, int | float):
            parts.append(f"loss {loss:.4g}")
        if rate:
            parts.append(f"{rate * self.images_per_step:,.0f} img/s")
            if step < self.total:
                parts.append(f"{format_duration((self.total - step) / rate)} left")
        if step >= self.total:
            parts.append("done")
        return "  ".join(parts)


def training_progress(log: Callable[[str], None] | Any, total: int, images_per_step: int,
                      label: str = "train") -> Callable[[int, dict[str, float]], None]:
    """The progress callback for a training job that reports through ``log``: a bar when
    ``log`` offers one (``log.bar(total, label)`` returning a step callback), else
    :class:`TrainProgress` lines."""
    bar = getattr(log, "bar", None)
    if callable(bar):
        made = bar(total, label)
        if made is not None:
            return made
    return TrainProgress(total, images_per_step, log, label=label)


def images_per_step(train_config: Any) -> int:
    """Images one step of ``train_config`` (a :class:`models.train.TrainConfig`) consumes."""
    from models.registry import method_needs_target

    extra = train_config.target_batch if method_needs_target(train_config.method) else 0
    return train_config.batch_size + extra


def chain(*callbacks: Callable[[int, dict[str, float]], None] | None
          ) -> Callable[[int, dict[str, float]], None]:
    """One training callback that calls each given one in turn (``None`` skipped)."""
    todo = [c for c in callbacks if c is not None]

    def both(step: int, metrics: dict[str, float]) -> None:
        for c in todo:
            c(step, metrics)

    return both
