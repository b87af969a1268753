"""The landmark side of a feedback-loop round: the model trained on the batch's dense
points (synthetic faces only; 5 % held out for checkpoint selection), then the 68 points
of every real face by test-time label transfer fitted on the analysis part only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.landmark_recipe import landmark_recipe
from synthloop.landmarks.source import VAL_SOURCE_MAX, synthetic_labels, validation_split
from synthloop.loop.config import LoopConfig
from synthloop.loop.real import RealSplit
from synthloop.loop.rounds import round_seed, save_errors
from synthloop.loop.training import round_train_config, train_in_round
from synthloop.settings import Settings

__all__ = ["TRANSFER_STEPS", "VAL_TARGET_N", "evaluate_round", "train_round"]

TRANSFER_STEPS = 2000  # label-transfer fit steps when the config leaves them unset
VAL_TARGET_N = 256  # analysis faces the label-free scores use (DA methods only)


def train_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, batch_dir: str,
                init_from: str | None, mlflow_run_id: str | None, real: RealSplit,
                report: Callable[[str], None] | None = None, label: str = "train") -> dict[str, Any]:
    """As :func:`synthloop.landmarks.train.train_landmarks` trains source-only, but
    warm-started and inside the round's MLflow run; DA methods get the analysis part's
    crops, unlabeled, as the target."""
    import torch

    from models.crop_resize import ResizedSource
    from models.data import ArraySource, ShardSource
    from models.registry import model_input_size
    from realdata.real_faces import load_real_faces
    from synth.shards import open_for_training

    reader = open_for_training(batch_dir)
    _, pts, w, mirror = synthetic_labels(batch_dir, "dense")
    labels = {"points": pts, "visible": w}
    cfg_t = round_train_config(
        cfg, k, settings.device, task="landmarks", select="source_error",
        model_kwargs={**(cfg.model_kwargs or {}), "num_points": int(pts.shape[1])},
        **landmark_recipe(mirror, steps=cfg.steps_per_round))
    seed = cfg_t.seed
    size = model_input_size(cfg_t.model, **cfg_t.model_kwargs) or 128  # crops the model takes
    syn_train, syn_val = validation_split(len(reader), 0.05, seed, VAL_SOURCE_MAX)
    source = ResizedSource(ShardSource(reader, cfg.batch_size, seed, labels, indices=syn_train),
                           size)
    val = ResizedSource(ShardSource(reader, 1, seed, labels, indices=syn_val), size) \
        .gather(np.arange(len(syn_val)))
    target = val_target = None
    if cfg.method != "source_only":
        faces = load_real_faces(real.source, size)
        target = ArraySource(faces.images[real.analysis], cfg.batch_size, seed + 1)
        val_target = {"image": torch.from_numpy(faces.nchw(real.analysis[:VAL_TARGET_N]))}
    return train_in_round(settings, lid=lid, k=k, train_config=cfg_t, source=source,
                          target=target, val_source=val, val_target=val_target,
                          init_from=init_from, mlflow_run_id=mlflow_run_id, report=report,
                          label=label)


def evaluate_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, checkpoint: str,
                   real: RealSplit) -> dict[str, Any]:
    """The dense head, then the label-transfer network fitted on the ANALYSIS part's
    labels only (never the held-out part's); per-sample inter-ocular NME in original
    image coordinates."""
    import torch

    from analysis.landmark_eval import evaluate_landmarks, nme
    from realdata.real_faces import load_real_faces
    from synthloop.landmarks.transfer import fit_transfer_on_real

    points = real.labels["points"]
    steps = cfg.transfer_steps if cfg.transfer_steps is not None else TRANSFER_STEPS
    tm = fit_transfer_on_real(checkpoint, real.source.subset(real.analysis), steps=steps,
                              seed=round_seed(cfg, k, 3), method=cfg.transfer_fit)
    faces = load_real_faces(real.source, int(getattr(tm.predictor.net, "input_size", 128)))
    crop_pred = tm.predictor.eval().predict_batches(torch.from_numpy(faces.nchw()), 64)
    crop_pred = crop_pred.float().cpu().numpy()
    pred = np.stack([tf.from_crop(p) for tf, p in zip(faces.transforms, crop_pred, strict=True)])
    err = nme(pred, points, "inter_ocular")
    errors_file = save_errors(settings, lid, k, pred=pred, errors=err)
    held = evaluate_landmarks(pred[real.holdout], points[real.holdout])
    ana = evaluate_landmarks(pred[real.analysis], points[real.analysis])
    return {"heldout": held, "analysis": ana, "errors_file": errors_file,
            "route": "transfer", "real_error": float(err[real.holdout].mean()),
            "analysis_error": float(err[real.analysis].mean()),
            "metrics": {cfg.error_metric: float(err[real.holdout].mean()),
                        "real_nme_io_median_heldout": float(np.median(err[real.holdout])),
                        "real_nme_ip_heldout": float(held["nme_inter_pupil"]),
                        "real_nme_io_analysis": float(err[real.analysis].mean()),
                        "transfer_train_error_px": float(tm.fit.train_error)}}
