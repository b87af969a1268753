"""Landmark training: a synthetic face batch (dense labels), optionally with real
labeled faces (syn+real training and label transfer, :mod:`synthloop.landmarks.source`)
or unlabeled real faces (DANN/DALN), in one MLflow run; the output route that scores
best on held-out real faces becomes the registered model's (:mod:`models.predictor`).

DA (DANN/DALN) uses unlabeled real faces as the target and trains on synthetic faces
only: real labeled faces in the source half would be "source" to the discriminator, so
syn+real training is refused with DA (label transfer after DA is fine:
``real_fraction=0``). The transfer network is fitted after training, on the trained
dense head's predictions for the real training faces; every route's validation NME is
logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from models.label_transfer_ridge import MIN_FACES as MIN_TRANSFER_FACES
from models.landmark_recipe import DEFAULT_LANDMARK_MODEL, landmark_recipe
from models.predictor import N68, make_predictor
from models.transfer_fits import DEFAULT_TRANSFER_FIT, TRANSFER_FITS
from synthloop.errors import UsageError
from synthloop.landmarks.evaluate import data_key
from synthloop.landmarks.load import LAYOUT_FILE, TRANSFER_FILE
from synthloop.landmarks.source import TrainingData, training_data
from synthloop.landmarks.syn_head68 import transferred_synthetic_68
from synthloop.landmarks.transfer import (
    all_points,
    default_route,
    fit_and_save_transfer,
    route_errors,
)
from synthloop.landmarks.warm_start import warm_start_checkpoint
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

__all__ = ["LandmarkRun", "train_landmarks"]


@dataclass(frozen=True)
class LandmarkRun(TrainedRun):
    """A :class:`~synthloop.runs.TrainedRun` plus the registered output route, the
    channel layout and the per-route NME on held-out real faces (empty without them)."""

    route: str
    layout: dict[str, Any]
    real_val_nme: dict[str, float]


def train_landmarks(settings: Settings, *, method: str = "source_only", steps: int, seed: int,
                    out: str, source: str | None = None, n_source: int = 10_000,
                    real_labeled: str | None = None, real_fraction: float = 0.5,
                    real_val_fraction: float = 0.1, target: str | None = None,
                    model: str = DEFAULT_LANDMARK_MODEL, model_kwargs: dict[str, Any] | None = None,
                    points: str = "dense", dense_set: str | None = None,
                    supervise_occluded: bool = True, batch_size: int = 32,
                    lr: float | None = None, trade_off: float = 1.0, transfer_steps: int = 2000,
                    transfer_fit: str = DEFAULT_TRANSFER_FIT, syn_head68: bool = False,
                    device: str = "cpu", register: bool = True, run_name: str | None = None,
                    log=print, train_overrides: dict[str, Any] | None = None,
                    init_weights: str | None = None) -> LandmarkRun:
    """Train a landmark model on a synthetic face batch, log it to MLflow experiment
    ``synthloop-landmarks`` and register it (with its output route) as
    ``synthloop-landmarks``.

    Args:
        method: ``source_only``, ``dann`` or ``daln`` (the latter two need ``target``).
        source: a face batch folder; None generates ``n_source`` faces (default model and
            distribution) under the project home, reused by later runs.
        real_labeled: a folder of real images + ``.pts``: fits the label-transfer network
            after training and, with ``real_fraction > 0``, trains syn+real
            (:mod:`synthloop.landmarks.source`). ``real_val_fraction`` of it is held out
            to pick the route (and, syn+real, the checkpoint).
        transfer_fit: how the label transfer is fitted (:mod:`models.transfer_fits`:
            ``ridge``, closed form, or ``mlp``, ``transfer_steps`` steps of AdamW).
        syn_head68: syn+real from a dense ``init_weights`` model only: the synthetic faces
            also supervise the 68 head, labeled by a transfer fitted on the real training
            faces (:mod:`synthloop.landmarks.syn_head68`).
        target: unlabeled real faces for DANN/DALN: images with ``.pts`` (used only to
            place the crop, as at test time) or already-cropped faces.
        points: ``"dense"`` (the batch's dense set, or ``dense_set``) or ``"68"``.
        init_weights: a checkpoint (or run folder) of the same model to start from: its
            weights, not its optimiser or step (:func:`models.train.train`). A model
            pre-trained on the dense set alone starts a syn+real run with its 68 head at
            the dense set's iBug vertices (:mod:`synthloop.landmarks.warm_start`).
        train_overrides: any further :class:`models.train.TrainConfig` fields, over the
            landmark recipe (:func:`models.landmark_recipe.landmark_recipe`: Wing loss, face
            augmentation with the layout's mirror flips, bf16 on the CPU, weight average).

    Cost of a source-only step of 32 faces on one CPU thread (bf16, measured with
    ``benchmarks/bench_landmark_step.py``): ``landmark_resnet_s`` 130-175 ms from 68 to 1001
    points; ``hourglass_s`` 0.27 s at 68 points and 1.1-2.4 s on the dense sets (its
    per-channel heads and soft-argmax dominate). DA methods pass 32 + 32 images.
    """
    from models.registry import list_methods, method_needs_target, model_input_size
    from models.train import TrainConfig

    if method not in list_methods():
        raise UsageError(f"method must be one of {list_methods()}, got {method!r}")
    if transfer_fit not in TRANSFER_FITS:
        raise UsageError(f"transfer_fit must be one of {list(TRANSFER_FITS)}, got {transfer_fit!r}")
    needs_target = method_needs_target(method)
    if needs_target and target is None:
        raise UsageError(f"method {method!r} needs target (unlabeled real faces)")
    if not 0.0 <= real_fraction < 1.0:
        raise UsageError(f"--real-fraction {real_fraction}: must be in [0, 1) (0: label "
                         "transfer only, no real faces in training)")
    mixed = real_labeled is not None and real_fraction > 0
    if mixed and method != "source_only":
        raise UsageError(f"syn+real training (real_fraction={real_fraction}) with {method!r} would "
                         "put real faces in the source domain; use real_fraction=0 (label "
                         "transfer after DA) or method='source_only'")

    if syn_head68 and not (mixed and init_weights):
        raise UsageError("syn_head68 needs syn+real training (real_labeled, real_fraction > 0) "
                         "from a dense model (init_weights)")
    crop_size = model_input_size(model, **(model_kwargs or {})) or 128
    _read_real_folders_first(out, real_labeled, target if needs_target else None, crop_size)
    d = training_data(settings, source=source, n_source=n_source, seed=seed, points=points,
                      dense_set=dense_set, supervise_occluded=supervise_occluded,
                      real_labeled=real_labeled, real_fraction=real_fraction if mixed else 0.0,
                      real_val_fraction=real_val_fraction,
                      target=target if needs_target else None, batch_size=batch_size, log=log,
                      crop_size=crop_size,
                      syn_head68=transferred_synthetic_68(init_weights) if syn_head68 else None)
    if target is not None and not needs_target:
        log(f"note: {method} trains without target images; --target {target} is ignored")
    reader, layout, real, tgt = d.reader, d.layout, d.real, d.target
    if d.real_train is not None and len(d.real_train) < MIN_TRANSFER_FACES:
        raise UsageError(f"{real_labeled}: {len(d.real_train)} labeled training faces after "
                         f"holding out {real_val_fraction:g} for validation; the label transfer "
                         f"needs at least {MIN_TRANSFER_FACES}")

    kw: dict[str, Any] = dict(task="landmarks", model=model,
                              model_kwargs={**(model_kwargs or {}), "num_points": layout.num_points},
                              method=method, steps=steps, batch_size=batch_size,
                              trade_off=trade_off, seed=seed, device=device, select="source_error",
                              **landmark_recipe(d.mirror, steps=steps))
    if lr is not None:
        kw["lr"] = lr
    kw.update(train_overrides or {})
    cfg = TrainConfig(**kw)

    real_key = data_key(real_labeled) if real_labeled is not None else None
    target_key = data_key(target) if tgt is not None else None
    claim_output_dir(Path(out), {
        "source_batch": reader.batch_id, "point_set": d.set_name, "real_labeled": real_key,
        "real_paths": fingerprint(real.face_set.image_paths) if real is not None else None,
        "real_fraction": real_fraction if mixed else 0.0, "target": target_key,
        "target_paths": fingerprint(tgt.face_set.image_paths) if tgt is not None else None,
        **({"init_weights": str(Path(init_weights).resolve())} if init_weights else {})})
    run = TrainingRun(
        settings, "landmarks", run_name or f"{method}{'-synreal' if mixed else ''}-s{seed}",
        curves_title=f"landmarks {method} seed {seed}", log=log,
        tags={"task": "landmarks", "method": method, "source_batch": reader.batch_id,
              "distribution": reader.distribution.id, "point_set": d.set_name,
              "real_labeled": real_key or "", "syn_real": str(mixed).lower(),
              "target": target_key or "", "selection_metric": "source_nme_crop",
              "selection_data": "real_val" if mixed and len(d.real_val) else "synthetic_val"},
        params={**cfg.to_dict(), "source_batch": reader.batch_id, "source_n": reader.n,
                "source_status": reader.status.status, "distribution_id": reader.distribution.id,
                "point_set": d.set_name, "num_dense": layout.num_dense, "real_head": layout.real_head,
                "supervise_occluded": supervise_occluded, "real_n_train": _n(d.real_train),
                "real_n_val": _n(d.real_val), "real_fraction": real_fraction if mixed else 0.0,
                "real_per_batch": d.n_real, "transfer_fit": transfer_fit if real else "",
                "syn_head68": syn_head68,
                "transfer_steps": transfer_steps if real else 0,
                "target_n": len(tgt) if tgt is not None else 0, **_crop_params()})
    with run:
        run.log_dict(reader.manifest, "source_manifest.json")
        run.log_artifact(_sample_grid(reader, d.syn_points, settings), "samples")
        init = warm_start_checkpoint(init_weights, layout, Path(out)) if init_weights else None
        result = run.train(cfg, d.source, d.target_source, out, val_source=d.val_source,
                           val_target=d.val_target, init_weights=init)
        from models.registry import load_model

        net = load_model(out).to(device)
        route, transfer, route_nme = _choose_route(run, net, d, transfer_steps, seed, Path(out),
                                                    transfer_fit)
        run.set_tag("route", route)
        run.log_checkpoints(out, ("best.pt", "last.pt", TRANSFER_FILE, LAYOUT_FILE))
        uri = version = None
        promoted = False
        if register:
            predictor = make_predictor(net.cpu(), layout, route, transfer)
            uri, version = run.register(predictor, d.val_source["image"][:4],
                                        serving_files(out, LAYOUT_FILE, TRANSFER_FILE))
            held = [real.face_set.names[i] for i in d.real_val] if real is not None else []
            promoted = _promote(run, version, result, route_nme, route, real_key, held, d.set_name)
    return LandmarkRun(run.run_id, Path(out), uri, version, promoted, final_metrics(result), route,
                       layout.to_dict(), route_nme)


def _read_real_folders_first(out: str, real_labeled: str | None, target: str | None,
                             crop_size: int) -> None:
    """Read the user's folders before the source batch is generated and validated (which
    can take minutes), so a damaged one fails at once. The crops are cached in memory
    (:func:`realdata.real_faces.load_real_faces`): reading them again later is cheap."""
    from realdata.real_faces import load_real_faces

    check_output_dir(out)
    if real_labeled is not None:
        load_real_faces(real_labeled, crop_size)
    if target is not None:
        load_real_faces(target, crop_size, require_labels=False)


def _choose_route(run: TrainingRun, net: nn.Module, d: TrainingData, transfer_steps: int,
                  seed: int, out: Path, transfer_fit: str = DEFAULT_TRANSFER_FIT,
                  ) -> tuple[str, nn.Module | None, dict[str, float]]:
    """With real labeled faces: fit the transfer network on the training ones, score
    every route on the held-out ones and take the best. Writes the layout record
    (``landmarks.json``) that :func:`~synthloop.landmarks.load.load_landmark_predictor`
    reads. Returns ``(route, transfer or None, {route: held-out NME io})``."""
    import torch

    transfer, route_nme = None, {}
    if d.real is not None and d.real_train is not None and d.real_val is not None:
        fit = fit_and_save_transfer(net, d.real, d.real_train, d.layout, transfer_steps, seed, out,
                                    transfer_fit)
        run.log_metrics({"transfer_baseline_error_px": fit.baseline_error,
                         "transfer_train_error_px": fit.train_error})
        transfer = fit.model
        if len(d.real_val):
            dev = next(net.parameters()).device
            coords = all_points(net, torch.from_numpy(d.real.nchw(d.real_val)).to(dev))
            route_nme = route_errors(coords, d.real.points[d.real_val], d.layout, transfer)
            run.log_metrics({f"real_val_nme_inter_ocular_{k}": v for k, v in route_nme.items()})
    route = (min(route_nme, key=route_nme.get) if route_nme
             else default_route(d.layout, transfer is not None))
    record = {"layout": d.layout.to_dict(), "route": route,
              "transfer": TRANSFER_FILE if transfer is not None else None,
              "real_val_nme_inter_ocular": route_nme, "crop_size": int(getattr(net, "input_size", 128))}
    (out / LAYOUT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return route, transfer, route_nme


def _promote(run: TrainingRun, version: str, result: Any, route_nme: dict[str, float], route: str,
             real_key: str | None, held_out: list[str], point_set: str) -> bool:
    """Move the champion alias. On held-out real faces when the run had them (comparable
    only with runs that held out the same faces), else on the synthetic validation NME
    (comparable only with runs on the same point set; a weak comparison, since each batch
    has its own validation faces, but the same one the gaze jobs make)."""
    if route_nme:
        metric, score = "real_val_nme_inter_ocular", route_nme[route]
        run.set_tag("real_val", fingerprint(held_out))
        comparable = {"real_labeled": real_key or "", "real_val": fingerprint(held_out)}
    else:
        metric = "source_nme_crop_best"
        score = float(result.best_score) if result.best_score is not None else float("nan")
        comparable = {"selection_data": "synthetic_val", "point_set": point_set}
    return run.promote(version, metric, score, higher_is_better=False, comparable_on=comparable)


def _sample_grid(reader, pts: np.ndarray, settings: Settings, count: int = 16) -> Path:
    """The first synthetic faces with their 68 points and dense set, sorted by yaw."""
    from synth.face_preview import face_grid

    idx = np.arange(min(count, len(reader)))
    yaw = reader.metadata["yaw"].to_numpy()[idx]
    vis = np.ones((len(idx), N68), bool)
    return face_grid(reader.images(idx), pts[idx, :N68], vis,
                     settings.outputs_dir / f"faces-{reader.batch_id}.png", dense=pts[idx], yaw=yaw,
                     title=f"source {reader.batch_id}")


def _n(idx: np.ndarray | None) -> int:
    return 0 if idx is None else int(len(idx))


def _crop_params() -> dict[str, float]:
    """Both sides of the crop protocol, so a mismatch shows in the run (it would be a
    domain cue of its own)."""
    from realdata.face_crop import DEFAULT_ENLARGE
    from synth.face_renderer import CROP_SCALE

    return {"crop_enlarge_real": float(DEFAULT_ENLARGE), "crop_scale_synthetic": float(CROP_SCALE)}
