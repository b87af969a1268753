"""Landmarks' part in refining a batch (:mod:`synthloop.refine`): the real faces a
refiner trains toward and the before/after grid. Face labels are checked without a model
(:func:`expectations.refined.face_structure_frame`): the image structure around every
68-point landmark must stay where it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["refine_preview", "refine_target_images"]


def refine_target_images(path: str, size: int = 128) -> np.ndarray:
    """Real faces cropped by the shared protocol at ``size`` px (their points only place
    the crop; images without a .pts file count as already cropped)."""
    from realdata.real_faces import load_real_faces

    return load_real_faces(path, size, require_labels=False).images


def refine_preview(reader, refined: np.ndarray, real: np.ndarray, out: Path) -> Path:
    """Rows of 8: synthetic faces with their 68 points, the same faces refined with the
    same points, real faces."""
    from synth.face_preview import face_grid
    from synth.generate_faces import read_face_labels

    k = min(8, reader.n)
    labels = read_face_labels(reader.path, verify=False)
    pts, vis = labels["points68"][:k], labels["visible68"][:k]
    spread = np.linspace(0, len(real) - 1, min(k, len(real))).round().astype(int)
    none = np.zeros((len(spread), *pts.shape[1:]), pts.dtype)
    images = np.concatenate([reader.images(np.arange(k)), refined[:k], real[spread]])
    return face_grid(images, np.concatenate([pts, pts, none]),
                     np.concatenate([vis, vis, np.zeros((len(spread), vis.shape[1]), bool)]), out,
                     title="synthetic (top), refined with the same points (middle), real (bottom)")
