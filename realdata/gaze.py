"""Gaze-label convention shared by the real-data readers and the synthetic side.

MPIIGaze normalised convention: a unit gaze vector ``g`` in the (normalised) camera
frame, x right, y down, z forward (away from the camera, so a person looking at the
camera has ``g_z < 0``), and

    pitch = asin(-g_y)           (positive: looking up)
    yaw   = atan2(-g_x, -g_z)    (positive: looking towards the camera's left, -x)

both in radians. ``g = (0, 0, -1)`` (looking straight into the camera) is (0, 0).
"""

from __future__ import annotations

import numpy as np


def gaze_vector_to_pitchyaw(g: np.ndarray) -> np.ndarray:
    """Convert gaze vectors, shape (N, 3) or (3,), to (pitch, yaw) radians, shape (N, 2).

    Vectors are normalised to unit length first, so nearly-unit inputs are fine.
    Raises ValueError for a wrong shape or for zero-length or non-finite vectors.
    """
    g = np.asarray(g, dtype=np.float64)
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2 or g.shape[1] != 3:
        raise ValueError(f"gaze vectors must have shape (N, 3), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gaze vectors must be finite")
    # scaled by the largest component first: squaring a component above ~1e154 overflows,
    # and the vector would come out as (0, 0) instead of its direction
    scale = np.max(np.abs(g), axis=1, keepdims=True)
    if np.any(scale < 1e-12):  # the norm is at most sqrt(3) times the largest component
        raise ValueError("gaze vectors must not have zero length")
    g = g / scale
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    pitch = np.arcsin(np.clip(-g[:, 1], -1.0, 1.0))
    yaw = np.arctan2(-g[:, 0], -g[:, 2])
    return np.stack([pitch, yaw], axis=1)


def pitchyaw_to_gaze_vector(py: np.ndarray) -> np.ndarray:
    """Convert (pitch, yaw) radians, shape (N, 2) or (2,), to unit gaze vectors, shape (N, 3).

    Inverse of :func:`gaze_vector_to_pitchyaw` for |pitch| < pi/2.
    """
    py = np.asarray(py, dtype=np.float64)
    if py.ndim == 1:
        py = py[None, :]
    if py.ndim != 2 or py.shape[1] != 2:
        raise ValueError(f"pitch/yaw must have shape (N, 2), got {py.shape}")
    pitch, yaw = py[:, 0], py[:, 1]
    return np.stack(
        [-np.cos(pitch) * np.sin(yaw), -np.sin(pitch), -np.cos(pitch) * np.cos(yaw)], axis=1
    )
