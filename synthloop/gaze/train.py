"""Gaze training: a synthetic batch with an unlabeled target, in one MLflow run,
optionally registered and promoted (what ``synthloop train`` and the flows run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthloop.batches import prepare_training_batch
from synthloop.errors import UsageError
from synthloop.gaze.few_labels import FewLabels
from synthloop.gaze.source import load_target, split_target, val_source
from synthloop.runs import (
    TrainedRun,
    TrainingRun,
    check_output_dir,
    claim_output_dir,
    final_metrics,
    fingerprint,
    serving_files,
)
from synthloop.settings import Settings

__all__ = ["train_gaze"]


def train_gaze(settings: Settings, *, method: str, target: str, steps: int, seed: int, out: str,
               source: str | None = None, n_source: int = 20_000, batch_size: int = 64,
               lr: float | None = None, trade_off: float = 1.0, model: str = "gaze_resnet_s",
               device: str = "cpu", register: bool = True, run_name: str | None = None,
               log=print, train_overrides: dict[str, Any] | None = None,
               tags: dict[str, str] | None = None, on_metrics=None,
               score_target_labels: bool = False, real_labeled: str | None = None,
               real_subjects: int | None = None, real_fraction: float = 0.5,
               refiner: str | None = None, mirror_eye: str | None = None,
               ema: float | None = None) -> TrainedRun:
    """Train a gaze model on a synthetic batch (``source``, or ``n_source`` fresh eyes)
    with the unlabeled ``target`` eyes; a fifth of the target (at most 512 eyes, or a fifth
    of its people when meta.csv names them) is held out for label-free checkpoint
    selection.

    ``tags`` are added to the run (a parent run id nests it); ``on_metrics(step,
    metrics)`` is called with every logged record after MLflow (tuning reports and
    prunes through it); ``score_target_labels`` adds the target's held-out labels to the
    evaluation (``target_angular_error_deg``; never used for training or checkpoint
    selection) when the target has labels.

    ``real_labeled`` (eyes with labels.csv, and meta.csv to name people): a few labeled
    real eyes trained on jointly with the synthetic ones, ``real_fraction`` of every batch;
    ``real_subjects`` keeps only that many of its people (drawn with the seed). With two
    or more people, a fifth of them (at least one) is held out and selects the checkpoint
    (``source_error`` on real eyes) instead of the label-free target score.

    ``mirror_eye`` (``"L"`` or ``"R"``): the real eyes of that side, in the target and in
    ``real_labeled``, are mirrored onto the other side's (yaw negated; both folders need
    meta.csv's ``eye`` column), and the checkpoint records it so that evaluation does
    the same (:mod:`realdata.eye_side`).

    ``refiner`` (a refiner.pt from ``synthloop refine``): the synthetic eyes are refined
    on the fly on ``device`` as batches are drawn, no refined copy on disk: the GPU path.
    On a CPU a batch refined once by ``synthloop refine`` costs less (this repeats the
    refiner's forward pass every step).

    ``ema`` (a decay in (0, 1)): an exponential moving average of the weights is what is
    validated, saved, registered and served (``TrainConfig.ema``)."""
    import torch

    from models.data import ArraySource, ShardSource
    from models.refined_source import RefinedSource
    from models.tasks.gaze import GAZE_SELECTORS
    from models.train import TrainConfig
    from synth.targets import is_simulated

    # the user's folders first: a bad one fails in a second, before a source batch is made
    check_output_dir(out)
    tgt = load_target(target)
    if mirror_eye is not None:
        from realdata.eye_side import mirror_side

        tgt = mirror_side(tgt, mirror_eye)
    real = FewLabels.read(real_labeled, real_subjects, real_fraction, batch_size, seed,
                          mirror_eye=mirror_eye)
    refiner_net = _refiner_on(refiner, device, log)
    reader = prepare_training_batch(settings, "gaze", source=source, n=n_source, seed=seed, log=log)
    train_idx, val_idx = split_target(len(tgt.images), seed, tgt.groups)
    dist = reader.distribution
    kw: dict[str, Any] = dict(model=model, method=method, steps=steps, batch_size=batch_size,
                              trade_off=trade_off, seed=seed, device=device)
    if real is not None and real.val is not None:
        kw["select"] = "source_error"
    if lr is not None:
        kw["lr"] = lr
    if ema is not None:
        kw["ema"] = ema
    kw.update(train_overrides or {})
    if mirror_eye is not None:  # the model's input convention travels in its checkpoint
        kw["task_kwargs"] = {**kw.get("task_kwargs", {}), "mirror_eye": mirror_eye}
    cfg = TrainConfig(**kw)
    target_key = str(Path(target).resolve())
    claim_output_dir(Path(out), {"source_batch": reader.batch_id, "target": target_key,
                                 "target_n": len(tgt.images), "target_paths": fingerprint(tgt.paths),
                                 **({"mirror_eye": mirror_eye} if mirror_eye else {}),
                                 **(real.record() if real is not None else {})})
    simulated = is_simulated(target)
    metric, mode = GAZE_SELECTORS[cfg.select]
    run = TrainingRun(
        settings, "gaze", run_name or f"{method}-s{seed}", curves_title=f"{method} seed {seed}",
        on_metrics=on_metrics, log=log,
        tags={"task": "gaze", "method": method, "source_batch": reader.batch_id,
              "distribution": dist.id, "target": target_key,
              "target_kind": "simulated" if simulated else "real",
              "selection_metric": metric, **(tags or {})},
        params={**cfg.to_dict(), "source_batch": reader.batch_id, "source_n": reader.n,
                "source_status": reader.status.status, "distribution_id": dist.id,
                "target_n_train": len(train_idx), "target_n_val": len(val_idx),
                "target_simulated": simulated, **(real.record() if real is not None else {}),
                **({"refiner": str(Path(refiner).resolve())} if refiner else {})})
    with run:
        run.log_dict(json.loads(dist.dumps()), "distribution.json")
        run.log_dict(reader.manifest, "source_manifest.json")
        run.log_artifact(_sample_grid(reader, tgt.images, settings, refiner_net), "samples")
        val_target = {"image": torch.from_numpy(tgt.images[val_idx]).unsqueeze(1)}
        if score_target_labels and tgt.pitchyaw is not None:
            val_target["pitchyaw"] = torch.from_numpy(tgt.pitchyaw[val_idx])
        syn = ShardSource(reader, batch_size - (real.per_batch if real else 0), seed)
        if refiner_net is not None:
            syn = RefinedSource(syn, refiner_net, device)
        result = run.train(cfg, real.source(syn) if real else syn,
                           ArraySource(tgt.images[train_idx], batch_size, seed + 1), out,
                           val_source=real.val if real and real.val else val_source(dist, seed),
                           val_target=val_target)
        run.log_checkpoints(out)
        uri = version = None
        promoted = False
        if register:
            from synthloop.gaze.evaluate import serving_predictor

            example = torch.from_numpy(tgt.images[val_idx[:4]]).unsqueeze(1)
            uri, version = run.register(serving_predictor(out), example, serving_files(out))
            score = float(result.best_score) if result.best_score is not None else float("nan")
            promoted = run.promote(version, metric + "_best", score,
                                   higher_is_better=(mode == "max"),
                                   comparable_on={"target": target_key, "selection_metric": metric})
    return TrainedRun(run.run_id, Path(out), uri, version, promoted, final_metrics(result))


def _refiner_on(path: str | None, device: str, log):
    """The refiner for on-the-fly refinement, loaded (and checked) before any work."""
    if path is None:
        return None
    from models.refiners import conditioned_on
    from models.simgan import load_refiner

    net = load_refiner(path, channels=1)
    if conditioned_on(net) is not None:
        raise UsageError(f"{path}: this refiner reads each eye's {conditioned_on(net)!r}, which "
                         "training batches do not carry, so it cannot refine on the fly: refine "
                         "the batch with `synthloop refine --refiner` and train on that batch")
    log(f"refining the synthetic eyes on the fly on {device} with {path}"
        + ("" if device.startswith("cuda") else
           " (on a CPU, a batch refined once with `synthloop refine` trains faster)"))
    return net


def _sample_grid(reader, target_images, settings: Settings, refiner=None) -> Path:
    """Synthetic eyes with their gaze arrows beside target eyes; with a refiner, their
    refined twins between them (what the model trains on)."""
    import numpy as np

    out = settings.outputs_dir / f"samples-{reader.batch_id}.png"
    if refiner is not None:
        from models.simgan import refine_images
        from synthloop.gaze.refining import refine_preview

        first = reader.images(np.arange(min(32, reader.n)))
        return refine_preview(reader, refine_images(refiner, first), target_images, out)
    from synth.preview import batch_grid

    return batch_grid(reader, out, real=target_images, count=32,
                      title=f"source {reader.batch_id}", real_title="target")
