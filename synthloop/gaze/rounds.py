"""The gaze side of a feedback-loop round: train on the round's batch with the analysis
eyes as the unlabeled target, then score every real eye."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthloop.loop.config import LoopConfig
from synthloop.loop.real import RealSplit
from synthloop.loop.rounds import save_errors
from synthloop.loop.training import round_train_config, train_in_round
from synthloop.settings import Settings

__all__ = ["VAL_TARGET_N", "evaluate_round", "serving_model", "train_round"]

VAL_TARGET_N = 512  # analysis eyes the label-free selection scores


def train_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, batch_dir: str,
                init_from: str | None, mlflow_run_id: str | None, real: RealSplit,
                report: Callable[[str], None] | None = None, label: str = "train") -> dict[str, Any]:
    """The round's batch as the source; the analysis eyes, unlabeled, as the target (DA
    methods and checkpoint selection use them; their labels never reach training)."""
    import torch

    from models.data import ArraySource, ShardSource
    from synth.shards import open_for_training
    from synthloop.gaze.source import val_source

    reader = open_for_training(batch_dir)
    # the real eyes' side convention travels in the checkpoint, as `synthloop train` writes it
    side = {"task_kwargs": {"mirror_eye": cfg.mirror_eye}} if cfg.mirror_eye else {}
    cfg_t = round_train_config(cfg, k, settings.device, **side)
    target_images = real.images[real.analysis]
    return train_in_round(
        settings, lid=lid, k=k, train_config=cfg_t,
        source=ShardSource(reader, cfg.batch_size, cfg_t.seed),
        target=ArraySource(target_images, cfg.batch_size, cfg_t.seed + 1),
        val_source=val_source(reader.distribution, cfg_t.seed),
        val_target={"image": torch.from_numpy(target_images[:VAL_TARGET_N]).unsqueeze(1)},
        init_from=init_from, mlflow_run_id=mlflow_run_id, report=report, label=label)


def serving_model(*, checkpoint: str, real: RealSplit) -> tuple[Any, Any, list[Path]]:
    """The round's model as the registry holds gaze models (what ``synthloop train``
    registers): the predictor, four analysis eyes as the input example, and the
    checkpoint it carries: the one the round evaluated (``last.pt``)."""
    import torch

    from synthloop.gaze.evaluate import serving_predictor

    example = torch.from_numpy(real.images[real.analysis[:4]]).unsqueeze(1)
    return serving_predictor(checkpoint), example, [Path(checkpoint)]


def evaluate_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, checkpoint: str,
                   real: RealSplit) -> dict[str, Any]:
    """Angular errors on every real eye (saved with predictions and features for the
    analysis) and the summaries of both parts."""
    from analysis.gaze_eval import angular_errors_deg, evaluate_gaze
    from models.registry import load_model
    from synthloop.gaze.evaluate import predict_eyes

    truth = real.labels["pitchyaw"]
    pred, feats, _ = predict_eyes(load_model(checkpoint), real.images)
    pred = pred.astype(np.float64)
    err = angular_errors_deg(pred, truth)
    errors_file = save_errors(settings, lid, k, pred=pred, errors=err,
                              features=feats.astype(np.float32))
    people = None if real.groups is None else [real.groups[i] for i in real.holdout]
    held = evaluate_gaze(pred[real.holdout], truth[real.holdout], groups=people)
    ana = evaluate_gaze(pred[real.analysis], truth[real.analysis])
    metrics = {cfg.error_metric: held["mean_angular_error_deg"],
               "real_median_heldout_deg": held["median_angular_error_deg"],
               "real_error_analysis_deg": ana["mean_angular_error_deg"],
               "real_bias_pitch_heldout_deg": held["bias_deg"]["pitch"],
               "real_bias_yaw_heldout_deg": held["bias_deg"]["yaw"]}
    if people is not None:  # the interval that holds for the next person
        lo, hi = held["subject_ci95"] or (float("nan"), float("nan"))
        metrics.update(real_subject_mean_heldout_deg=held["subject_mean_deg"],
                       real_subject_ci95_lo_deg=lo, real_subject_ci95_hi_deg=hi)
    return {"heldout": held, "analysis": ana, "errors_file": errors_file,
            "real_error": held["mean_angular_error_deg"],
            "analysis_error": ana["mean_angular_error_deg"], "metrics": metrics}
