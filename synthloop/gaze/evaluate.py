"""Evaluating a gaze model: angular errors on labeled eyes, or domain-gap measures on
unlabeled ones (what ``synthloop evaluate`` and the evaluate-gaze flow run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthloop.gaze.source import load_target

__all__ = ["evaluate_gaze_model", "load_gaze_model", "load_gaze_model_and_side", "predict_eyes",
           "predict_in_data_frame", "serving_predictor", "slice_variables"]


def load_gaze_model(ref: str):
    """A GazeNet from a checkpoint file or folder, or an MLflow model URI
    (``models:/synthloop-gaze@champion``): the checkpoint the registered model carries,
    read weights-only (:func:`synthloop.model_refs.load_model_reference`)."""
    return load_gaze_model_and_side(ref)[0]


def _with_side(folder) -> tuple[Any, str | None]:
    from models.checkpoint import load_checkpoint, resolve_checkpoint
    from models.registry import model_from_checkpoint
    from models.tasks.gaze import GazeTaskConfig
    from realdata.errors import DataFormatError

    path = resolve_checkpoint(folder)
    ck = load_checkpoint(path)
    net = model_from_checkpoint(ck, path, task="gaze")
    try:
        task_kwargs = (ck.get("train_config") or {}).get("task_kwargs") or {}
        return net, GazeTaskConfig.from_dict(task_kwargs).mirror_eye
    except (AttributeError, TypeError, ValueError) as e:
        raise DataFormatError(path, f"train_config task_kwargs: {e}") from None


def load_gaze_model_and_side(ref: str) -> tuple[Any, str | None]:
    """:func:`load_gaze_model` and the eye side its training mirrored onto the other
    (``GazeTaskConfig.mirror_eye``: ``"L"``, ``"R"`` or None)."""
    from synthloop.model_refs import is_model_uri, load_model_reference

    if is_model_uri(ref):
        return load_model_reference(ref, _with_side)
    return _with_side(ref)


def serving_predictor(checkpoint: str | Path):
    """The model the registry serves for a gaze checkpoint (file or folder), carrying the
    eye side its training mirrored, so that the registered version says so."""
    from models.predictor import GazePredictor

    net, side = _with_side(checkpoint)
    return GazePredictor(net.eval(), mirror_eye=side)


def predict_eyes(net, images: np.ndarray, tta_shift: int = 0):
    """``(pitchyaw, features, [pitch logits, yaw logits])`` of ``net`` in eval mode on
    uint8 ``(N, H, W)`` eyes; the first two as numpy. ``tta_shift`` > 0 averages the
    pitch and yaw over every shift of up to that many px per axis
    (:func:`models.predict.predict_pitchyaw_shift_averaged`); the features and logits
    stay those of the patches as given."""
    import torch

    from models.predict import predict, predict_pitchyaw_shift_averaged

    net.eval()
    x = torch.from_numpy(images).unsqueeze(1)
    out = predict(net, x, amp=False)
    pitchyaw = (predict_pitchyaw_shift_averaged(net, x, tta_shift, amp=False,
                                                unshifted=out.pitchyaw) if tta_shift
                else out.pitchyaw)
    return pitchyaw.numpy(), out.features.numpy(), [out.pitch_logits, out.yaw_logits]


def predict_in_data_frame(net, side: str | None, eyes, tta_shift: int = 0):
    """:func:`predict_eyes` on real ``eyes`` (:class:`realdata.eyes.EyeImages`) for a model
    whose training mirrored the eyes of ``side`` onto the other's (None: none): it is shown
    them the same way, and its pitch and yaw come back in the data's own frame."""
    if side is None:
        return predict_eyes(net, eyes.images, tta_shift)
    from realdata.eye_side import mirror_side, mirrored_mask, unmirror_pitchyaw

    mask = mirrored_mask(eyes, side)
    pred, feats, logits = predict_eyes(net, mirror_side(eyes, side).images, tta_shift)
    return unmirror_pitchyaw(pred, mask), feats, logits


def slice_variables(eyes) -> dict[str, np.ndarray]:
    """What labeled eyes can be sliced by besides their gaze: head pose (labels.csv, in
    degrees) and the numeric columns of their meta.csv."""
    out = dict(eyes.meta)
    if eyes.headpose is not None:
        out.update(head_pitch_deg=np.degrees(eyes.headpose[:, 0]),
                   head_yaw_deg=np.degrees(eyes.headpose[:, 1]))
    return out


def evaluate_gaze_model(model_ref: str, data: str, *, tta_shift: int = 0, reference_n: int = 1024,
                        seed: int = 0) -> dict[str, Any]:
    """Labeled ``data`` (labels.csv): angular errors overall, their bias and spread, per
    slice of gaze, head pose and meta.csv variables, and per person (meta.csv
    ``subject``) with an interval over people. Unlabeled
    ``data`` (manifest.csv): domain-gap measures between synthetic eyes and ``data``, and
    the mean prediction entropy on ``data``. ``tta_shift`` > 0: each answer is the mean
    over the patch shifted by up to that many px per axis (:func:`predict_eyes`)."""
    from analysis.domain_gap import frechet_distance, mean_prediction_entropy, mmd_rbf
    from analysis.gaze_eval import evaluate_gaze
    from synth.targets import is_simulated

    net, side = load_gaze_model_and_side(model_ref)
    ds = load_target(data)
    pred, feats, logits = predict_in_data_frame(net, side, ds, tta_shift)
    out: dict[str, Any] = {"model": model_ref, "data": str(Path(data).resolve()), "n": len(ds.images),
                           "data_kind": "simulated" if is_simulated(data) else "real",
                           **({"mirror_eye": side} if side else {}),
                           **({"tta_shift": tta_shift} if tta_shift else {})}
    if ds.pitchyaw is not None:
        out.update(evaluate_gaze(pred, ds.pitchyaw, groups=ds.groups, slice_by=slice_variables(ds)))
        out["labeled"] = True
        return out
    from synth.eye_distribution import default_eye_distribution
    from synth.eye_generator import EyeGenerator

    dist = default_eye_distribution()
    syn, _ = EyeGenerator(dist).render_all(reference_n, seed)
    _, syn_feats, _ = predict_eyes(net, syn)
    out.update({
        "labeled": False,
        "reference": f"{reference_n} synthetic samples of {dist.id}",
        "mmd_rbf": float(mmd_rbf(syn_feats, feats)),
        "frechet_distance": float(frechet_distance(syn_feats, feats)),
        "mean_prediction_entropy": float(mean_prediction_entropy(logits)),
    })
    return out
