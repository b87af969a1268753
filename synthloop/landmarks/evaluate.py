"""Evaluating a landmark model on real labeled faces: 68-point NMEs in original image
coordinates (what ``synthloop evaluate --task landmarks`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.predictor import N68
from realdata.landmarks import FaceSet
from realdata.real_faces import RealFaces, load_real_faces
from synthloop.errors import UsageError
from synthloop.landmarks.load import load_landmark_predictor
from synthloop.runs import fingerprint

__all__ = ["data_key", "evaluate_landmarks_model"]


def _face_set(data: str | Path | FaceSet) -> FaceSet:
    from realdata.landmarks import read_landmark_folder

    return data if isinstance(data, FaceSet) else read_landmark_folder(data)


def data_key(data: Any) -> str:
    """A folder's resolved path, or for an in-memory FaceSet (a split) its folder plus a
    fingerprint of its names: what the MLflow tags and the champion comparison key on."""
    if isinstance(data, str | Path):
        return str(Path(data).resolve())
    fs = getattr(data, "face_set", data)
    return f"{fs.source}#{len(fs.names)}:{fingerprint(fs.names)}"


def _describe(ref: Any) -> str:
    return str(ref) if isinstance(ref, str | Path) else f"<in-memory {type(ref).__name__}>"


def _describe_data(data: Any, faces: RealFaces) -> str:
    if isinstance(data, str | Path):
        return str(Path(data).resolve())
    return f"{faces.face_set.source} ({len(faces)} faces, names {fingerprint(faces.face_set.names)})"


def evaluate_landmarks_model(model_ref: str | Path | nn.Module, data: str | Path | FaceSet, *,
                             route: str | None = None, batch_size: int = 64,
                             device: str = "cpu") -> dict[str, Any]:
    """Score a landmark model on real labeled faces; returns ONE JSON-able dict.

    ``data``: a folder of images with sibling ``.pts`` files, or a FaceSet (e.g. a half
    of :func:`realdata.splits.split_face_folder`). Faces are cropped by the shared protocol from their true
    points (the usual 300-W evaluation protocol), the model's 68 points are mapped back
    to original image coordinates (``CropTransform.from_crop``) and scored by
    :func:`analysis.landmark_eval.evaluate_landmarks`: ``nme_inter_ocular``,
    ``nme_inter_pupil`` (mean %), medians, CIs, ``failure_rate_010``, ``n`` and the
    per-yaw ``slices``; plus ``model``, ``route``, ``data``, ``crop``.
    """
    from analysis.landmark_eval import evaluate_landmarks
    from realdata.face_crop import DEFAULT_ENLARGE

    face_set = _face_set(data)  # data errors first: they are the likelier mistake
    predictor = load_landmark_predictor(model_ref, route)
    size = int(getattr(predictor.net, "input_size", 128))
    faces = load_real_faces(face_set, size)
    dev = torch.device(device)
    predictor = predictor.to(dev)
    pred = predictor.predict_batches(torch.from_numpy(faces.nchw()).to(dev), batch_size).float().cpu().numpy()
    if pred.shape[1:] != (N68, 2):
        raise UsageError(f"model predicts {pred.shape[1:]} points, not the 68 iBug points")
    original = np.stack([tf.from_crop(p) for tf, p in zip(faces.transforms, pred, strict=True)])
    res = evaluate_landmarks(original, faces.face_set.points)
    info = dict(getattr(predictor, "layout", {}) or {})
    return {"task": "landmarks", "model": _describe(model_ref), "route": info.get("route"),
            "layout": {k: v for k, v in info.items() if k != "route"},
            "data": _describe_data(data, faces), "data_kind": "real",
            "crop": {"size": size, "enlarge": float(DEFAULT_ENLARGE), "box": "true landmarks"},
            **res}

