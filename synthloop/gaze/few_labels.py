"""A few labeled real eyes trained on jointly with synthetic ones: for a user who can label
a handful of people. Each batch holds ``real_fraction`` real eyes; with two or more
people, a fifth of them is held out to select the checkpoint on real eyes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realdata.splits import VALIDATION_SALT, group_holdout_split
from synthloop.errors import DataFormatError, UsageError

__all__ = ["FewLabels", "choose_subjects"]

SUBJECT_SALT = 31  # which people a run labels: its own draw from the seed


def choose_subjects(groups, k: int | None, seed: int) -> tuple[np.ndarray, list[str]]:
    """Indices of the eyes of ``k`` people drawn with ``seed`` (every person when ``k`` is
    None), and those people, sorted."""
    people = sorted(set(groups))
    if k is not None:
        if not 1 <= k <= len(people):
            raise UsageError(f"--real-subjects {k}: the labeled eyes have {len(people)} people")
        people = sorted(np.random.default_rng([seed, SUBJECT_SALT]).permutation(people)[:k].tolist())
    chosen = set(people)
    return np.array([i for i, g in enumerate(groups) if g in chosen]), people


@dataclass(frozen=True)
class FewLabels:
    """The labeled real eyes of a run: training images and labels, the checkpoint
    selection batch (None with one person), how many real eyes go in each batch."""

    path: str
    images: np.ndarray
    pitchyaw: np.ndarray
    people: list[str]
    per_batch: int
    seed: int
    val: dict[str, Any] | None

    @classmethod
    def read(cls, path: str | None, subjects: int | None, fraction: float, batch_size: int,
             seed: int, mirror_eye: str | None = None) -> FewLabels | None:
        """``mirror_eye``: this side's eyes mirrored onto the other's (yaw negated)."""
        if path is None:
            if subjects is not None:
                raise UsageError("--real-subjects needs --real-labeled")
            return None
        import torch

        from realdata.eyes import read_eye_folder

        if not 0.0 < fraction < 1.0:
            raise UsageError(f"--real-fraction {fraction}: gaze trains on real and synthetic "
                             "eyes in every batch, so it must lie strictly between 0 and 1")
        if batch_size < 2:
            raise UsageError(f"joint training needs a batch of >= 2 eyes, got {batch_size}")
        eyes = read_eye_folder(path)
        if eyes.pitchyaw is None:
            raise DataFormatError(Path(path), "labeled real eyes need labels.csv (pitch, yaw)")
        if mirror_eye is not None:
            from realdata.eye_side import mirror_side

            eyes = mirror_side(eyes, mirror_eye)
        groups = eyes.groups
        if groups is None:
            if subjects is not None:
                raise DataFormatError(Path(path), "--real-subjects needs meta.csv with a subject "
                                      "column")
            groups = ("unnamed",) * len(eyes)
        idx, people = choose_subjects(groups, subjects, seed)
        chosen = eyes.subset(idx)
        val = None
        if len(people) >= 2:
            keep, held = group_holdout_split(chosen.groups or groups, 0.2, [seed, VALIDATION_SALT])
            val = {"image": torch.from_numpy(chosen.images[held]).unsqueeze(1),
                   "pitchyaw": torch.from_numpy(chosen.pitchyaw[held])}
            chosen = chosen.subset(keep)
        per_batch = min(max(int(round(batch_size * fraction)), 1), batch_size - 1)
        return cls(str(Path(path).resolve()), chosen.images, chosen.pitchyaw, people, per_batch,
                   seed, val)

    def source(self, synthetic: Any) -> Any:
        """Batches of the synthetic source's images and this many real ones."""
        from models.data import ArraySource, ConcatSource

        return ConcatSource(synthetic, ArraySource(self.images, self.per_batch, self.seed + 2,
                                                   labels={"pitchyaw": self.pitchyaw}))

    def record(self) -> dict[str, Any]:
        """What the run's parameters and its output folder's claim say about them."""
        return {"real_labeled": self.path, "real_subjects": ",".join(self.people),
                "real_n_train": int(len(self.images)), "real_per_batch": self.per_batch,
                "real_n_val": 0 if self.val is None else int(len(self.val["image"]))}
