"""The model-free landmark check of refined faces: structure around the points."""

from __future__ import annotations

import numpy as np

from expectations.refined import landmark_window_ncc


def _faces(n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((n, size, size, 3), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):  # a few blurred blobs: edges near the points
        for _ in range(6):
            cy, cx, r = rng.uniform(10, size - 10, 2).tolist() + [rng.uniform(3, 6)]
            img[i] += 120 * (np.hypot(yy - cy, xx - cx) < r)[..., None]
    points = rng.uniform(8, size - 8, (n, 68, 2))
    return np.clip(img, 0, 255).astype(np.uint8), points, np.ones((n, 68), bool)


def test_unchanged_and_recoloured_faces_keep_their_structure():
    faces, points, vis = _faces()
    assert np.allclose(landmark_window_ncc(faces, faces, points, vis), 1.0)
    brighter = np.clip(faces.astype(np.float32) * 0.7 + 40, 0, 255).astype(np.uint8)
    assert landmark_window_ncc(faces, brighter, points, vis).min() > 0.95


def test_moved_structure_is_caught_and_hidden_points_are_ignored():
    faces, points, vis = _faces()
    moved = np.roll(faces, 4, axis=2)  # every edge 4 px off its landmark
    ncc = landmark_window_ncc(faces, moved, points, vis)
    assert ncc.max() < 0.7
    hidden = np.zeros_like(vis)
    assert np.allclose(landmark_window_ncc(faces, moved, points, hidden), 1.0)
