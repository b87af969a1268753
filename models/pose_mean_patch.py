"""The mean patch per head pose: every synthetic eye moved by the difference between the
mean real eye and the mean synthetic eye *at its head pose*,

    refined = image + strength * (mean(real at pose b) - mean(synthetic at pose b)),

with b the real head pose nearest to the synthetic eye's head yaw (or, ``interpolate``,
the two differences either side of it blended linearly in yaw, so that an eye at 7 deg
and one at 8 deg do not get patches of poses 15 deg apart). A turned head changes
an eye patch as much as the shading the plain mean patch (:mod:`models.mean_patch`) adds
(the nose's shadow, the foreshortened lids, where the iris sits between the corners), and
the real-minus-synthetic difference is not the same at every pose (on Columbia's eyes it
departs from the shared one by 10-25 grey levels rms; ``docs/benchmarks.md``). Fitted
without gaze labels: it reads the real eyes' head poses (metadata a face tracker gives)
and the synthetic eyes' head yaw (a scene factor).

The two head-yaw conventions need not agree (Columbia's +P is the renderer's -yaw), so
the fit pairs them the way that makes the two sets' per-pose mean eyes closest, on the
images alone, and records which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_POSES", "MIN_PER_POSE", "PoseMeanPatch", "fit_pose_mean_patch", "pose_weights"]

MAX_POSES = 15  # more distinct real poses than this: a continuous pose, bin it first
MIN_PER_POSE = 8  # images of each kind a pose's mean needs


@dataclass(frozen=True)
class PoseMeanPatch:
    """``deltas[k]``: real minus synthetic mean eye at real pose ``poses_deg[k]`` (grey
    levels, float32 ``(K, H, W)``); a synthetic eye with head yaw ``y`` takes the pose
    nearest ``sign * y``, or with ``interpolate`` the linear blend of the two poses
    either side of it (the end poses beyond the range)."""

    poses_deg: np.ndarray
    deltas: np.ndarray
    sign: int
    strength: float
    interpolate: bool = False

    def pose_index(self, synthetic_yaw_deg: np.ndarray) -> np.ndarray:
        return _nearest_pose(self.poses_deg, self.sign, synthetic_yaw_deg)

    def pose_weights(self, synthetic_yaw_deg: np.ndarray) -> np.ndarray:
        """``(N, K)`` float32: how much of each pose's difference each eye takes."""
        return pose_weights(self.poses_deg, self.sign, synthetic_yaw_deg, self.interpolate)

    def apply(self, images: np.ndarray, synthetic_yaw_deg: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W)`` eyes moved by their pose's difference, clipped, uint8."""
        if len(images) != len(synthetic_yaw_deg):
            raise ValueError(f"{len(images)} images but {len(synthetic_yaw_deg)} head yaws")
        shift = np.tensordot(self.pose_weights(synthetic_yaw_deg), self.deltas, axes=1)
        moved = images.astype(np.float32) + self.strength * shift
        return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


def pose_weights(poses_deg: np.ndarray, sign: int, synthetic_yaw_deg: np.ndarray,
                 interpolate: bool = False) -> np.ndarray:
    """``(N, K)`` float32 rows summing to 1: one-hot on the real pose (sorted
    ``poses_deg``) nearest ``sign * yaw``, or with ``interpolate`` the linear blend of the
    two poses either side of it (the end poses beyond the range)."""
    poses = np.asarray(poses_deg, np.float64)
    n, k = len(synthetic_yaw_deg), len(poses)
    if not interpolate or k == 1:
        w = np.zeros((n, k), np.float32)
        w[np.arange(n), _nearest_pose(poses, sign, synthetic_yaw_deg)] = 1.0
        return w
    y = np.clip(sign * np.asarray(synthetic_yaw_deg, np.float64), poses[0], poses[-1])
    hi = np.clip(np.searchsorted(poses, y, side="right"), 1, k - 1)
    lo = hi - 1
    t = (y - poses[lo]) / (poses[hi] - poses[lo])
    w = np.zeros((n, k), np.float64)
    w[np.arange(n), lo] = 1.0 - t
    w[np.arange(n), hi] += t
    return w.astype(np.float32)


def _nearest_pose(poses: np.ndarray, sign: int, synthetic_yaw_deg: np.ndarray) -> np.ndarray:
    y = sign * np.asarray(synthetic_yaw_deg, dtype=np.float64)
    return np.abs(y[:, None] - poses[None, :]).argmin(1)


def _pose_means(images: np.ndarray, index: np.ndarray, poses: np.ndarray, what: str) -> np.ndarray:
    means = []
    for k, pose in enumerate(poses):
        chosen = index == k
        if chosen.sum() < MIN_PER_POSE:
            raise ValueError(f"{what}: {int(chosen.sum())} eyes at head pose {pose:g} deg, "
                             f"need at least {MIN_PER_POSE} for its mean")
        means.append(images[chosen].astype(np.float64).mean(0))
    return np.stack(means)


def fit_pose_mean_patch(synthetic: np.ndarray, synthetic_yaw_deg: np.ndarray, real: np.ndarray,
                        real_pose_deg: np.ndarray, strength: float = 1.0,
                        interpolate: bool = False) -> PoseMeanPatch:
    """Fit on uint8 ``(N, H, W)`` synthetic eyes with their head yaw (deg) and real eyes
    with their head pose (deg, a few distinct values, e.g. Columbia's 0, +-15, +-30)."""
    if synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"synthetic eyes are {synthetic.shape[1:]}, real ones {real.shape[1:]}")
    if len(real) != len(real_pose_deg) or len(synthetic) != len(synthetic_yaw_deg):
        raise ValueError("one head pose per image is needed, for the real and the synthetic eyes")
    if not 0.0 <= strength <= 4.0:
        raise ValueError(f"strength must be in [0, 4], got {strength}")
    real_pose_deg = np.asarray(real_pose_deg, dtype=np.float64)
    if not np.isfinite(real_pose_deg).all():
        raise ValueError("the real head poses hold missing or infinite values")
    poses = np.unique(real_pose_deg)
    if len(poses) > MAX_POSES:
        raise ValueError(f"the real head poses take {len(poses)} distinct values; bin them to "
                         f"at most {MAX_POSES} first")
    real_means = _pose_means(real, np.searchsorted(poses, real_pose_deg), poses, "real")
    fits, errors = [], []
    for sign in (1, -1):
        index = _nearest_pose(poses, sign, synthetic_yaw_deg)
        try:
            deltas = real_means - _pose_means(synthetic, index, poses,
                                              f"synthetic, head yaw read as {sign:+d} x pose")
        except ValueError as e:  # the other pairing may still cover every pose
            errors.append(str(e))
            continue
        fits.append((float(np.sqrt((deltas ** 2).mean(axis=(1, 2))).mean()), sign, deltas))
    if not fits:
        raise ValueError("; ".join(errors))
    _, sign, deltas = min(fits, key=lambda f: f[0])
    return PoseMeanPatch(poses, deltas.astype(np.float32), sign, float(strength), interpolate)
