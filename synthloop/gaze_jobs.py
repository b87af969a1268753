"""Gaze jobs: what `synthloop train` / `synthloop evaluate` and the Prefect tasks run.

Plain functions (no Prefect), so the command line works without a Prefect server and the
flows stay thin: each task is one call into this module or into pure code. MLflow is
used here, never inside the pure packages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synth.distribution import SceneDistribution
from synthloop.errors import DataFormatError
from synthloop.settings import Settings

VAL_SOURCE_N = 512
VAL_TARGET_MAX = 512


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    checkpoint_dir: Path
    model_uri: str | None
    model_version: str | None
    promoted: bool
    metrics: dict[str, float]


# ------------------------------------------------------------------------- data


def prepare_source(settings: Settings, *, source: str | None, n: int, seed: int,
                   dist: SceneDistribution | None = None, log=print):
    """An accepted synthetic batch to train on: the given folder (validated now if it was
    not), or a fresh batch generated and validated under the project home."""
    from expectations.validate import record_outcome, validate_batch
    from synth.generate import default_distribution, generate_batch
    from synth.shards import BatchReader, QuarantinedBatchError, open_for_training

    if source is None:
        dist = dist or default_distribution("gaze")
        out = settings.batches_dir / f"train-gaze-{dist.id}-s{seed}-n{n}"
        if not (out / "manifest.json").is_file():
            log(f"generating {n} synthetic eyes from {dist.id} into {out}")
            generate_batch(out, task="gaze", n=n, seed=seed, dist=dist)
        source = str(out)
    reader = BatchReader(source)
    if reader.status.status == "unvalidated":
        log(f"validating {reader.batch_id} with Great Expectations")
        report = validate_batch(source)
        record_outcome(source, report)
    try:
        return open_for_training(source)
    except QuarantinedBatchError as e:
        raise DataFormatError(source, str(e)) from None


def load_target(target: str):
    from realdata.eyes import read_eye_folder

    return read_eye_folder(target)


def _val_source(dist: SceneDistribution, seed: int) -> dict[str, torch.Tensor]:
    """A fixed labeled synthetic batch, rendered in memory, never trained on."""
    from synth.eye_generator import EyeGenerator

    images, scenes = EyeGenerator(dist).render_all(VAL_SOURCE_N, seed + 7_919)
    py = np.stack([scenes["gaze_pitch"], scenes["gaze_yaw"]], 1).astype(np.float32)
    return {"image": torch.from_numpy(images).unsqueeze(1), "pitchyaw": torch.from_numpy(py)}


def _split_target(images: np.ndarray, seed: int):
    """Hold out up to VAL_TARGET_MAX target images for label-free selection."""
    rng = np.random.default_rng([seed, 99])
    perm = rng.permutation(len(images))
    k = min(VAL_TARGET_MAX, max(1, len(images) // 5))
    return np.sort(perm[k:]), np.sort(perm[:k])


# ------------------------------------------------------------------------- train

DATA_RECORD = "data.json"


def _fingerprint(items) -> str:
    import hashlib

    return hashlib.sha256("\n".join(map(str, items)).encode()).hexdigest()[:16]


def _claim_checkpoint_dir(out: Path, data: dict[str, Any]) -> None:
    """A checkpoint folder belongs to one (source, target) pair. Training resumes from
    ``last.pt`` when it exists, so a rerun on other data into the same folder would
    silently continue (or just re-register) the old run: refuse it instead."""
    rec = out / DATA_RECORD
    if rec.is_file():
        before = json.loads(rec.read_text())
        if before != data:
            diff = sorted(k for k in data if before.get(k) != data[k])
            raise ValueError(f"{out}: holds a run trained on other data ({', '.join(diff)} differ); "
                             "use a new --out")
        return
    if any(out.glob("*.pt")):
        raise ValueError(f"{out}: holds checkpoints of unknown provenance; use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    rec.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")



def train_gaze(settings: Settings, *, method: str, target: str, steps: int, seed: int, out: str,
               source: str | None = None, n_source: int = 20_000, batch_size: int = 64,
               lr: float | None = None, trade_off: float = 1.0, model: str = "gaze_resnet_s",
               device: str = "cpu", register: bool = True, run_name: str | None = None,
               log=print, train_overrides: dict[str, Any] | None = None,
               tags: dict[str, str] | None = None, on_metrics=None,
               score_target_labels: bool = False) -> TrainedRun:
    """Train a gaze model on a synthetic batch with an unlabeled target, in one MLflow run
    (optionally registered and promoted). ``tags`` are added to the run (a parent run id
    nests it); ``on_metrics(step, metrics)`` is called with every logged record after
    MLflow (tuning reports and prunes through it); ``score_target_labels`` adds the
    target's held-out labels to the evaluation (``target_angular_error_deg``; never used
    for training or checkpoint selection) when the target has labels."""
    import mlflow

    from models.data import ArraySource, ShardSource
    from models.train import SELECTORS, TrainConfig, train
    from synth.targets import is_simulated
    from synthloop import tracking

    reader = prepare_source(settings, source=source, n=n_source, seed=seed, log=log)
    tgt = load_target(target)
    train_idx, val_idx = _split_target(tgt.images, seed)
    dist = reader.distribution
    kw: dict[str, Any] = dict(model=model, method=method, steps=steps, batch_size=batch_size,
                              trade_off=trade_off, seed=seed, device=device)
    if lr is not None:
        kw["lr"] = lr
    kw.update(train_overrides or {})
    cfg = TrainConfig(**kw)

    _claim_checkpoint_dir(Path(out), {"source_batch": reader.batch_id,
                                      "target": str(Path(target).resolve()),
                                      "target_n": len(tgt.images), "target_paths": _fingerprint(tgt.paths)})
    tracking.configure(settings.tracking_uri, "gaze", settings.artifact_root)
    simulated = is_simulated(target)
    with mlflow.start_run(run_name=run_name or f"{method}-s{seed}") as run:
        run_id = run.info.run_id
        mlflow.set_tags({"task": "gaze", "method": method, "source_batch": reader.batch_id,
                         "distribution": dist.id, "target": str(Path(target).resolve()),
                         "target_kind": "simulated" if simulated else "real",
                         "selection_metric": SELECTORS[cfg.select][0], **(tags or {})})
        mlflow.log_params(tracking.flat_params({
            **cfg.to_dict(), "source_batch": reader.batch_id, "source_n": reader.n,
            "source_status": reader.status.status, "distribution_id": dist.id,
            "target_n_train": len(train_idx), "target_n_val": len(val_idx),
            "target_simulated": simulated}))
        mlflow.log_dict(json.loads(dist.dumps()), "distribution.json")
        mlflow.log_dict(reader.manifest, "source_manifest.json")
        _log_sample_grid(reader, tgt.images, settings)

        val_target = {"image": torch.from_numpy(tgt.images[val_idx]).unsqueeze(1)}
        if score_target_labels and tgt.pitchyaw is not None:
            val_target["pitchyaw"] = torch.from_numpy(tgt.pitchyaw[val_idx])
        callback = tracking.MetricLogger(run_id)
        if on_metrics is not None:
            log_metrics = callback

            def callback(step: int, metrics: dict[str, float]) -> None:
                log_metrics(step, metrics)
                on_metrics(step, metrics)

        t0 = time.perf_counter()
        result = train(
            cfg,
            ShardSource(reader, batch_size, seed),
            ArraySource(tgt.images[train_idx], batch_size, seed + 1),
            out,
            val_source=_val_source(dist, seed),
            val_target=val_target,
            callback=callback,
        )
        mlflow.log_metric("train_seconds", time.perf_counter() - t0)
        mlflow.log_metric("samples_per_s", float(result.samples_per_s))
        from analysis.plots import learning_curves

        curves = learning_curves(result.history, settings.outputs_dir / f"curves-{run_id}.png",
                                 title=f"{method} seed {seed}")
        mlflow.log_artifact(str(curves), "plots")
        for name in ("best.pt", "last.pt"):
            if (Path(out) / name).is_file():
                mlflow.log_artifact(str(Path(out) / name), "checkpoint")

        uri = version = None
        promoted = False
        final = {k: float(v) for k, v in (result.final_metrics or {}).items()
                 if isinstance(v, int | float)}
        if register:
            from models.checkpoint import load_model
            from models.predictor import GazePredictor

            net = load_model(out).eval()
            example = torch.from_numpy(tgt.images[val_idx[:4]]).unsqueeze(1)
            uri, version = tracking.log_model_and_register(GazePredictor(net), example, "gaze", run_id)
            metric, mode = SELECTORS[cfg.select]
            score = float(result.best_score) if result.best_score is not None else float("nan")
            mlflow.log_metric(metric + "_best", score)
            decision = tracking.maybe_promote(
                "gaze", version, metric + "_best", score, higher_is_better=(mode == "max"),
                comparable_on={"target": str(Path(target).resolve()), "selection_metric": metric})
            promoted = bool(decision.get("promoted"))
            mlflow.set_tag("champion_decision", json.dumps(decision, default=str))
    return TrainedRun(run_id, Path(out), uri, version, promoted, final)


def _log_sample_grid(reader, target_images: np.ndarray, settings: Settings) -> None:
    import mlflow

    from synth.preview import batch_grid

    png = batch_grid(reader, settings.outputs_dir / f"samples-{reader.batch_id}.png",
                     real=target_images, count=32, title=f"source {reader.batch_id}")
    mlflow.log_artifact(str(png), "samples")


# ------------------------------------------------------------------------- evaluate


def load_gaze_model(ref: str):
    """A GazeNet from a checkpoint file/folder or an MLflow model URI (models:/name@alias)."""
    if "://" in ref or ref.startswith("models:/") or ref.startswith("runs:/"):
        import mlflow.pytorch

        loaded = mlflow.pytorch.load_model(ref, map_location="cpu")
        return getattr(loaded, "net", loaded)
    from models.checkpoint import load_model

    return load_model(ref)


def _predict(net, images: np.ndarray):
    """(pitchyaw, features) as numpy and the [pitch, yaw] bin logits, in eval mode."""
    from models.train import predict

    net.eval()
    out = predict(net, torch.from_numpy(images).unsqueeze(1), amp=False)
    return out.pitchyaw.numpy(), out.features.numpy(), [out.pitch_logits, out.yaw_logits]


def evaluate_gaze_model(model_ref: str, data: str, *, reference_n: int = 1024, seed: int = 0) -> dict:
    """Labeled DIR (labels.csv): angular errors overall and per gaze slice. Unlabeled DIR
    (manifest.csv): domain-gap measures between synthetic data and DIR, and the mean
    prediction entropy on DIR."""
    from analysis.domain_gap import frechet_distance, mean_prediction_entropy, mmd_rbf
    from analysis.gaze_eval import evaluate_gaze
    from synth.targets import is_simulated

    net = load_gaze_model(model_ref)
    ds = load_target(data)
    pred, feats, logits = _predict(net, ds.images)
    out: dict[str, Any] = {"model": model_ref, "data": str(Path(data).resolve()), "n": len(ds.images),
                           "data_kind": "simulated" if is_simulated(data) else "real"}
    if ds.pitchyaw is not None:
        out.update(evaluate_gaze(pred, ds.pitchyaw))
        out["labeled"] = True
        return out
    from synth.eye_generator import EyeGenerator
    from synth.generate import default_distribution

    dist = default_distribution("gaze")
    syn, _ = EyeGenerator(dist).render_all(reference_n, seed)
    _, syn_feats, _ = _predict(net, syn)
    out.update({
        "labeled": False,
        "reference": f"{reference_n} synthetic samples of {dist.id}",
        "mmd_rbf": float(mmd_rbf(syn_feats, feats)),
        "frechet_distance": float(frechet_distance(syn_feats, feats)),
        "mean_prediction_entropy": float(mean_prediction_entropy(logits)),
    })
    return out
