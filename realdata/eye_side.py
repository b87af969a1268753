"""Show every real eye as the same side: mirror one side's patches onto the other's.

A left and a right eye are mirror images of each other, and so are their person-specific
offsets: the visual axis sits a few degrees toward the nose in each eye, which reads as
opposite yaw offsets in the two (measured on Columbia: -2.6 deg on one side, +1.1 on the
other, docs/benchmarks.md). Mirroring one side left-right, with its yaw (and head yaw)
negated, turns those into one offset that a few labeled people can teach, and gives a
model one kind of eye to learn. MPIIGaze-style pipelines do the same with right eyes.

Predictions for mirrored patches come back in the mirrored frame;
:func:`unmirror_pitchyaw` negates their yaw again, so scores are always against the labels
as the data states them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from realdata.errors import DataFormatError
from realdata.eyes import META_NAME, SIDE_COLUMN, SIDES, EyeImages

__all__ = ["mirror_side", "mirrored_mask", "mirrored_yaw", "unmirror_pitchyaw"]


def mirrored_mask(eyes: EyeImages, side: str) -> np.ndarray:
    """``(N,)`` bool: the images that show ``side`` (``"L"`` or ``"R"``); eyes without
    sides raise :class:`~realdata.errors.DataFormatError` naming where they came from."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if eyes.sides is None:
        raise DataFormatError(Path(eyes.source), f"no eye side per image ({META_NAME} needs an "
                              f"'{SIDE_COLUMN}' column of L or R to mirror one side)")
    return np.array([s == side for s in eyes.sides], dtype=bool)


def _negate_yaw(angles: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    if angles is None:
        return None
    out = angles.copy()
    out[mask, 1] = -out[mask, 1]
    return out


def mirror_side(eyes: EyeImages, side: str) -> EyeImages:
    """``eyes`` with every patch of ``side`` mirrored left-right and its gaze yaw and head
    yaw negated (pitch is unchanged by a horizontal mirror); the patches are then all
    of the other side, and ``sides`` says so (keep :func:`mirrored_mask` of the input to
    map predictions back)."""
    mask = mirrored_mask(eyes, side)
    images = eyes.images.copy()
    images[mask] = images[mask][:, :, ::-1]
    other = SIDES[1 - SIDES.index(side)]
    return dataclasses.replace(
        eyes, images=images, pitchyaw=_negate_yaw(eyes.pitchyaw, mask),
        headpose=_negate_yaw(eyes.headpose, mask),
        sides=tuple(other if m else s for s, m in zip(eyes.sides, mask, strict=True)))


def unmirror_pitchyaw(pitchyaw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Predictions ``(N, 2)`` for mirrored patches back in the frame of the unmirrored
    ones: yaw negated where ``mask``."""
    pitchyaw = np.asarray(pitchyaw)
    if pitchyaw.ndim != 2 or pitchyaw.shape[1] != 2 or len(pitchyaw) != len(mask):
        raise ValueError(f"pitchyaw must be ({len(mask)}, 2), got {pitchyaw.shape}")
    return _negate_yaw(pitchyaw, np.asarray(mask, dtype=bool))


def mirrored_yaw(yaw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A per-image yaw-like column ``(N,)`` (e.g. meta.csv's head pose) in the frame of the
    mirrored eyes: negated where ``mask`` (float64; a zero stays +0)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return np.where(np.asarray(mask, dtype=bool), 0.0 - yaw, yaw)
