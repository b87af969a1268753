"""The loop's labeled real data, read by the task and split once into an *analysis* part
(its errors and images drive the distribution update) and a *held-out* part (only
scored: it decides the stopping rule and the reported error, so the loop never tunes on
what it reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realdata.errors import DataFormatError
from realdata.splits import LOOP_HOLDOUT_SALT, split
from synthloop.loop.config import LoopConfig
from synthloop.taskspec import get_task

__all__ = ["MIN_REAL", "RealData", "RealSplit", "load_real"]

MIN_REAL = 20  # fewer labeled samples cannot be split into two useful parts


@dataclass(frozen=True, eq=False)
class RealData:
    """What a task reads for the loop (:meth:`synthloop.taskspec.TaskSpec.read_real`).

    images: what the analysis measures and DA methods see (eyes ``(N, H, W)``, face
    crops ``(N, S, S, 3)``, uint8); labels: task-specific per-sample arrays (gaze:
    ``pitchyaw`` and, when labeled, ``headpose``; landmarks: ``points`` in the original
    images); source: the task's own reader object (landmarks: the crops' transforms);
    fingerprint: content hash of images and labels (part of the loop's identity);
    groups: the person of each sample, when known: the split then keeps each person on
    one side."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    fingerprint: str
    simulated: bool
    source: Any = None
    groups: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class RealSplit:
    """A task's :class:`RealData` with the loop's split (indices into it)."""

    data: RealData
    analysis: np.ndarray
    holdout: np.ndarray
    path: str

    @property
    def images(self) -> np.ndarray:
        return self.data.images

    @property
    def labels(self) -> dict[str, np.ndarray]:
        return self.data.labels

    @property
    def source(self) -> Any:
        return self.data.source

    @property
    def fingerprint(self) -> str:
        return self.data.fingerprint

    @property
    def simulated(self) -> bool:
        return self.data.simulated

    @property
    def groups(self) -> tuple[str, ...] | None:
        return self.data.groups

    def describe(self) -> dict[str, Any]:
        d = {"path": self.path, "n": int(len(self.images)), "n_analysis": int(len(self.analysis)),
             "n_holdout": int(len(self.holdout)), "simulated": self.simulated,
             "fingerprint": self.fingerprint}
        if self.groups is not None:  # split by person
            d.update(subjects_analysis=len({self.groups[i] for i in self.analysis}),
                     subjects_holdout=len({self.groups[i] for i in self.holdout}))
        return d


_CACHE: dict[tuple, RealSplit] = {}


def load_real(cfg: LoopConfig) -> RealSplit:
    """The loop's labeled real data (``cfg.real``, read by its task), split by a
    permutation seeded with ``cfg.split_seed``: the first ``round(n * holdout_frac)`` are
    held out, or, where the data name their people, that share of the people.

    Several tasks of every round need the split; within one process it is read and
    hashed once, keyed on the folder, its labels file and their modification times (a
    folder changed on disk is read again)."""
    folder = Path(cfg.real).resolve()
    stamps = tuple(p.stat().st_mtime_ns for p in (folder, folder / "labels.csv") if p.exists())
    key = (cfg.task, str(folder), stamps, cfg.split_seed, cfg.holdout_frac, cfg.mirror_eye)
    if key not in _CACHE:
        _CACHE.clear()  # one real dataset at a time: they can be large
        _CACHE[key] = _split(cfg.task, cfg.real, cfg.split_seed, cfg.holdout_frac, cfg.mirror_eye)
    return _CACHE[key]


def _split(task: str, real: str, split_seed: int, holdout_frac: float,
           mirror_eye: str | None) -> RealSplit:
    spec = get_task(task)
    data = spec.read_real(real, mirror_eye)
    n = len(data.images)
    if n < MIN_REAL:
        raise DataFormatError(Path(real), f"only {n} labeled {spec.samples}; the loop needs "
                              f">= {MIN_REAL} to split into analysis and held-out parts")
    analysis, holdout = split(n, holdout_frac, [split_seed, LOOP_HOLDOUT_SALT], data.groups)
    if data.groups is not None and (len(analysis) == 0 or len(holdout) == 0):
        raise DataFormatError(Path(real), f"only {len(set(data.groups))} subject(s): the loop "
                              "needs two to hold one out")
    return RealSplit(data, analysis, holdout, str(Path(real).resolve()))
