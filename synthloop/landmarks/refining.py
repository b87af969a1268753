"""Landmarks' part in refining a batch (:mod:`synthloop.refine`): the real faces a
refiner trains toward and the before/after grid. Face labels are checked without a model
(:func:`expectations.refined.face_structure_frame`): the image structure around every
68-point landmark must stay where it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["points_and_visibility", "predicted_points", "refine_preview", "refine_target_images"]


def refine_target_images(path: str, size: int = 128) -> np.ndarray:
    """Real faces cropped by the shared protocol at ``size`` px (their points only place
    the crop; images without a .pts file count as already cropped)."""
    from realdata.real_faces import load_real_faces

    return load_real_faces(path, size, require_labels=False).images


def predicted_points(images: np.ndarray, landmarker: str, batch_size: int = 64) -> np.ndarray:
    """The 68 points ``(N, 68, 2)`` that the landmark model ``landmarker`` (a run folder
    or checkpoint, any route that answers 68 points) finds on the face crops ``images``
    (uint8 ``(N, S, S, 3)``), in the crops' pixel coordinates: each crop is resized to
    the model's input, the same protocol box at another scale."""
    import torch

    from models.crop_resize import resize_crops, resize_points
    from synthloop.landmarks.load import load_landmark_predictor

    predictor = load_landmark_predictor(landmarker).eval()
    crop = images.shape[1]
    size = int(getattr(predictor.net, "input_size", crop))
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).permute(0, 3, 1, 2)
            pts = predictor(resize_crops(x, size)).double()
            if pts.shape[1:] != (68, 2):
                raise ValueError(f"{landmarker}: answers {tuple(pts.shape[1:])} points, not the "
                                 "68 iBug points a face-aligned refiner needs")
            out.append(resize_points(pts, size, crop).numpy())
    return np.concatenate(out)


def points_and_visibility(reader) -> np.ndarray:
    """The batch's exact 68 points and visibility, ``(N, 68, 3)``: x, y, 1 where visible."""
    from synth.generate_faces import read_face_labels

    labels = read_face_labels(reader.path, verify=False)  # BatchReader checked the checksums
    return np.concatenate([labels["points68"].astype(np.float64),
                           labels["visible68"][..., None].astype(np.float64)], -1)


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
