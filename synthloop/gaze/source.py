"""The data gaze training runs on besides its synthetic batch
(:func:`synthloop.batches.prepare_training_batch`): the target eyes and the fixed
validation batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realdata.splits import VALIDATION_SALT, group_holdout_split, holdout_split
from synth.distribution import SceneDistribution

__all__ = ["VAL_SOURCE_N", "VAL_TARGET_MAX", "load_target", "split_target", "val_source"]

VAL_SOURCE_N = 512
VAL_TARGET_MAX = 512
VAL_SOURCE_SALT = 7_919  # the validation eyes are rendered from their own seed


def load_target(target: str | Path):
    """Target eyes (:class:`realdata.eyes.EyeImages`): a folder with ``labels.csv`` or
    ``manifest.csv``."""
    from realdata.eyes import read_eye_folder

    return read_eye_folder(target)


def val_source(dist: SceneDistribution, seed: int) -> dict[str, Any]:
    """A fixed labeled synthetic batch, rendered in memory, never trained on."""
    import torch

    from synth.eye_generator import EyeGenerator

    images, scenes = EyeGenerator(dist).render_all(VAL_SOURCE_N, seed + VAL_SOURCE_SALT)
    py = np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype(np.float32)
    return {"image": torch.from_numpy(images).unsqueeze(1), "pitchyaw": torch.from_numpy(py)}


def split_target(n: int, seed: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices of ``n`` target images: a fifth (at least one, at
    most ``VAL_TARGET_MAX``) held out for label-free checkpoint selection and, with labels,
    for tuning objectives. With ``groups`` (the people), a fifth of the people (at least
    one) instead: a score on people the model adapted to flatters it."""
    if groups is not None:
        return group_holdout_split(groups, 0.2, [seed, VALIDATION_SALT])
    return holdout_split(n, min(VAL_TARGET_MAX, max(1, n // 5)), [seed, VALIDATION_SALT])
