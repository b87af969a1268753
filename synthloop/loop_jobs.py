"""The feedback loop's steps, as plain functions the Prefect tasks call.

One round: generate a batch from the round's distribution -> validate it (in the flow's
transaction) -> train (warm-started from the previous round's model) -> evaluate on the
real data -> analyse the analysis part -> derive the next distribution. Every step
records what it made in the lineage catalog, so a loop that is killed continues where
it stopped: finished rounds are read back, a finished step is not redone, and training
resumes from its own ``last.pt``.

The real data are split once, deterministically, into an *analysis* part (its errors and
images drive the distribution update) and a *held-out* part (only scored: it decides
the stopping rule and the reported error, so the loop never tunes on what it reports).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synth.distribution import SceneDistribution
from synthloop.settings import Settings

ERRORS_FILE = "real_errors.npz"
#: Version of the built-in simulated target (synth.targets) the loop runs on without real
#: data: v2, whose gaze and head-pose skew is large enough for re-weighting to matter.
LOOP_TARGET_VERSION = "v2"
SYN_STATS_N = 3000  # synthetic images whose statistics the nuisance fit compares with real
TASKS = ("gaze", "landmarks")
#: Per-task defaults of the fields left ``None``: (model, batch size).
TASK_DEFAULTS = {"gaze": ("gaze_resnet_s", 64), "landmarks": ("hourglass_s", 16)}
#: The loop's error, per task: what ``real_error`` means (plots, dashboard artifacts).
ERROR_UNITS = {"gaze": "deg", "landmarks": "% NME io"}
#: ... and its MLflow metric name (each round's run and the loop's run log it).
ERROR_METRICS = {"gaze": "real_error_heldout_deg", "landmarks": "real_nme_io_heldout"}
#: Fields added after the gaze loop shipped: left out of ``to_dict`` while unset, so a gaze
#: loop keeps its id (and its catalog rows and MLflow params) exactly.
_OPTIONAL_FIELDS = ("model_kwargs", "transfer_steps")


@dataclass(frozen=True)
class LoopConfig:
    """Everything that fixes a loop's results (with the real data and the code)."""

    task: str
    real: str
    rounds: int = 3
    seed: int = 0
    open_loop: bool = False
    n_per_round: int = 6000
    steps_per_round: int = 500
    method: str = "source_only"
    batch_size: int | None = None  # None: the task's default (TASK_DEFAULTS)
    model: str | None = None  # None: the task's default (TASK_DEFAULTS)
    holdout_frac: float = 0.5
    split_seed: int = 0
    min_improvement: float = 0.02
    patience: int | None = 1
    policy_step: float = 0.7
    distribution: str | None = None  # initial distribution JSON; default: the built-in one
    model_kwargs: dict[str, Any] | None = None  # architecture overrides (e.g. hourglass width)
    transfer_steps: int | None = None  # landmarks: label-transfer fit steps (None: 2000)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}: the loop runs for {', '.join(TASKS)}")
        model, batch_size = TASK_DEFAULTS[self.task]
        if self.model is None:
            object.__setattr__(self, "model", model)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", batch_size)
        if self.rounds < 1 or self.n_per_round < 1 or self.steps_per_round < 1:
            raise ValueError("rounds, n_per_round and steps_per_round must be positive")
        if not 0.05 <= self.holdout_frac <= 0.95:
            raise ValueError(f"holdout_frac must be in [0.05, 0.95], got {self.holdout_frac}")

    @property
    def mode(self) -> str:
        return "open" if self.open_loop else "closed"

    @property
    def error_unit(self) -> str:
        return ERROR_UNITS[self.task]

    @property
    def error_metric(self) -> str:
        return ERROR_METRICS[self.task]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in _OPTIONAL_FIELDS:
            if d[name] is None:
                d.pop(name)
        return d


# ------------------------------------------------------------------------ real data


@dataclass(frozen=True)
class RealSplit:
    images: np.ndarray       # (N, H, W) uint8
    pitchyaw: np.ndarray     # (N, 2) radians
    analysis: np.ndarray     # indices
    holdout: np.ndarray      # indices
    fingerprint: str         # content hash of the images and labels
    simulated: bool
    path: str
    headpose: np.ndarray | None = None  # (N, 2) radians (head pitch, yaw), when labeled

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "n": int(len(self.images)), "n_analysis": int(len(self.analysis)),
                "n_holdout": int(len(self.holdout)), "simulated": self.simulated,
                "fingerprint": self.fingerprint}


def builtin_target(settings: Settings, n: int = 2000, seed: int = 0) -> Path:
    """The built-in simulated target (labeled), written once under the project home; used
    where no labeled real eyes are at hand (a fresh clone, the demo, the nightly default)."""
    import sys

    from synth.targets import target_name, write_simulated_target

    out = settings.root / "targets" / f"{target_name(LOOP_TARGET_VERSION)}-n{n}-s{seed}"
    if not (out / "labels.csv").is_file():
        print(f"writing the built-in simulated target domain to {out} (a simulation, not real "
              "data)", file=sys.stderr)
        write_simulated_target(out, n, seed, labeled=True, label_shift=True,
                               version=LOOP_TARGET_VERSION)
    return out


_REAL_CACHE: dict[tuple, RealSplit | RealFaceSplit] = {}


def load_real(cfg: LoopConfig) -> RealSplit | RealFaceSplit:
    """Labeled real data (``labels.csv``), split into analysis and held-out parts by a
    seeded permutation (``split_seed``, not the loop seed: every seed and both modes are
    scored on the same held-out images). Landmarks: :func:`load_real_faces_split`.

    Several tasks of every round need the split; within one process it is read and
    hashed once, keyed on the folder, its labels file and their modification times (a
    folder changed on disk is read again)."""
    folder = Path(cfg.real).resolve()
    stamps = tuple(p.stat().st_mtime_ns for p in (folder, folder / "labels.csv") if p.exists())
    key = (cfg.task, str(folder), stamps, cfg.split_seed, cfg.holdout_frac)
    if key not in _REAL_CACHE:
        _REAL_CACHE.clear()  # one real dataset at a time: they can be large
        _REAL_CACHE[key] = _read_real(cfg)
    return _REAL_CACHE[key]


def _read_real(cfg: LoopConfig) -> RealSplit | RealFaceSplit:
    if cfg.task == "landmarks":
        return load_real_faces_split(cfg)
    from realdata.eyes import read_eye_folder
    from synth.targets import is_simulated
    from synthloop.errors import DataFormatError

    data = read_eye_folder(cfg.real)
    if data.pitchyaw is None:
        raise DataFormatError(Path(cfg.real), "the loop needs labeled real data (labels.csv with "
                              "pitch and yaw); this folder has only a manifest")
    n = len(data.images)
    if n < 20:
        raise DataFormatError(Path(cfg.real), f"only {n} labeled images; the loop needs >= 20 to "
                              "split into analysis and held-out parts")
    h = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    h.update(np.ascontiguousarray(data.pitchyaw, dtype=np.float64).tobytes())
    head = None
    if data.headpose is not None:
        head = np.asarray(data.headpose, np.float64)
        h.update(b"head" + head.tobytes())
    analysis, holdout = _split_parts(n, cfg)
    return RealSplit(data.images, np.asarray(data.pitchyaw, np.float64), analysis, holdout,
                     h.hexdigest()[:16], is_simulated(cfg.real), str(Path(cfg.real).resolve()),
                     headpose=head)


def _split_parts(n: int, cfg: LoopConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(analysis, held-out)`` indices: a permutation seeded by ``split_seed``; the first
    ``round(n * holdout_frac)`` of it are held out. The same rule for every task."""
    perm = np.random.default_rng([cfg.split_seed, 4242]).permutation(n)
    k = int(round(n * cfg.holdout_frac))
    return np.sort(perm[k:]), np.sort(perm[:k])


@dataclass(frozen=True, eq=False)
class RealFaceSplit:
    """Labeled real faces (images + ``.pts``), cropped by the shared protocol
    (:func:`synthloop.landmark_jobs.load_real_faces`), split like :class:`RealSplit`.

    images: (N, S, S, 3) uint8 crops; points: (N, 68, 2) TRUE points in the original
    images (NMEs, yaw and face size are measured there); ``faces`` holds the crops' points
    and transforms."""

    faces: Any               # synthloop.landmark_jobs.RealFaces
    images: np.ndarray
    points: np.ndarray
    analysis: np.ndarray
    holdout: np.ndarray
    fingerprint: str         # content hash of the crops and the points
    simulated: bool
    path: str

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "n": int(len(self.images)), "n_analysis": int(len(self.analysis)),
                "n_holdout": int(len(self.holdout)), "simulated": self.simulated,
                "fingerprint": self.fingerprint}


def load_real_faces_split(cfg: LoopConfig) -> RealFaceSplit:
    """Real labeled faces for the landmarks loop, split by :func:`_split_parts`."""
    from synthloop.errors import DataFormatError
    from synthloop.landmark_jobs import load_real_faces

    faces = load_real_faces(cfg.real)
    n = len(faces)
    if n < 20:
        raise DataFormatError(Path(cfg.real), f"only {n} labeled faces; the loop needs >= 20 to "
                              "split into analysis and held-out parts")
    points = np.asarray(faces.face_set.points, np.float64)
    h = hashlib.sha256(np.ascontiguousarray(faces.images).tobytes())
    h.update(np.ascontiguousarray(points).tobytes())
    analysis, holdout = _split_parts(n, cfg)
    return RealFaceSplit(faces, faces.images, points, analysis, holdout, h.hexdigest()[:16],
                         False, str(Path(cfg.real).resolve()))


def loop_id(cfg: LoopConfig, real: RealSplit | RealFaceSplit,
            dist0: SceneDistribution) -> str:
    """Same config + same real data + same start distribution = same loop (so running the
    command again resumes it)."""
    d = cfg.to_dict()
    d.pop("real")
    d.pop("distribution")
    d.update(real=real.fingerprint, dist0=dist0.id)
    return "loop-" + hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def initial_distribution(cfg: LoopConfig) -> SceneDistribution:
    from synth.distribution import read_distribution
    from synth.generate import default_distribution

    if not cfg.distribution:
        if cfg.task == "landmarks":
            from synth.face_distribution import default_face_distribution

            return default_face_distribution()
        return default_distribution(cfg.task)
    return read_distribution(cfg.distribution)


def round_seed(cfg: LoopConfig, k: int, stream: int) -> int:
    from models.data import step_seed

    return step_seed(cfg.seed, k, stream) % (2**31)


# ------------------------------------------------------------------------ train


def round_dir(settings: Settings, lid: str, k: int) -> Path:
    return settings.root / "loops" / lid / f"round-{k:02d}"


def train_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, batch_dir: str,
                init_from: str | None, mlflow_run_id: str | None, real: RealSplit | RealFaceSplit) -> dict[str, Any]:
    """Train ``steps_per_round`` steps on the round's batch, warm-started from the previous
    round's model; resumes from this round's own ``last.pt`` after an interruption."""
    if cfg.task == "landmarks":
        return _train_landmarks_round(settings, cfg, lid=lid, k=k, batch_dir=batch_dir,
                                      init_from=init_from, mlflow_run_id=mlflow_run_id, real=real)
    import torch

    from models.data import ArraySource, ShardSource
    from models.train import TrainConfig, train
    from synth.shards import open_for_training
    from synthloop.gaze_jobs import _val_source

    reader = open_for_training(batch_dir)
    out = round_dir(settings, lid, k) / "model"
    seed = round_seed(cfg, k, 1)
    cfg_t = TrainConfig(model=cfg.model, method=cfg.method, steps=cfg.steps_per_round,
                        batch_size=cfg.batch_size, seed=seed, warmup=min(100, cfg.steps_per_round // 5),
                        eval_every=cfg.steps_per_round, ckpt_every=max(50, cfg.steps_per_round // 4))
    target_images = real.images[real.analysis]  # unlabeled use only (DA methods, selection)
    callback = None
    if mlflow_run_id:
        from synthloop.tracking import MetricLogger

        callback = MetricLogger(mlflow_run_id)
    result = train(
        cfg_t, ShardSource(reader, cfg.batch_size, seed),
        ArraySource(target_images, cfg.batch_size, seed + 1), out,
        val_source=_val_source(reader.distribution, seed),
        val_target={"image": torch.from_numpy(target_images[:512]).unsqueeze(1)},
        callback=callback, resume=True, init_weights=init_from)
    final = {k2: float(v) for k2, v in (result.final_metrics or {}).items() if isinstance(v, int | float)}
    return {"checkpoint": str(out / "last.pt"), "train_config": cfg_t.to_dict(),
            "metrics": final, "samples_per_s": float(result.samples_per_s)}


def _train_landmarks_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                           batch_dir: str, init_from: str | None, mlflow_run_id: str | None,
                           real: RealFaceSplit) -> dict[str, Any]:
    """The landmarks round: the hourglass on the batch's dense points (synthetic faces
    only; 5 % held out for checkpoint selection), as :func:`synthloop.landmark_jobs.
    train_landmarks` trains source-only, but warm-started and inside the round's MLflow run."""
    from models.data import ArraySource, FaceShardSource
    from models.train import TrainConfig, train
    from synth.shards import open_for_training
    from synthloop.landmark_jobs import VAL_SOURCE_MAX, _split, synthetic_labels

    reader = open_for_training(batch_dir)
    out = round_dir(settings, lid, k) / "model"
    seed = round_seed(cfg, k, 1)
    _, pts, w = synthetic_labels(batch_dir, "dense")
    labels = {"points": pts, "visible": w}
    syn_train, syn_val = _split(len(reader), 0.05, seed, VAL_SOURCE_MAX)
    source = FaceShardSource(reader, cfg.batch_size, seed, labels, indices=syn_train)
    val = FaceShardSource(reader, 1, seed, labels, indices=syn_val).gather(np.arange(len(syn_val)))
    cfg_t = TrainConfig(task="landmarks", model=cfg.model,
                        model_kwargs={**(cfg.model_kwargs or {}), "num_points": int(pts.shape[1])},
                        method=cfg.method, steps=cfg.steps_per_round, batch_size=cfg.batch_size,
                        seed=seed, warmup=min(100, cfg.steps_per_round // 5),
                        eval_every=cfg.steps_per_round, ckpt_every=max(50, cfg.steps_per_round // 4),
                        select="source_error")
    target = val_target = None
    if cfg.method != "source_only":  # DA: the analysis part's crops, unlabeled
        crops = real.images[real.analysis]
        target = ArraySource(crops, cfg.batch_size, seed + 1)
        val_target = {"image": real.faces.nchw(real.analysis[:256])}
    callback = None
    if mlflow_run_id:
        from synthloop.tracking import MetricLogger

        callback = MetricLogger(mlflow_run_id)
    result = train(cfg_t, source, target, out, val_source=val, val_target=val_target,
                   callback=callback, resume=True, init_weights=init_from)
    final = {k2: float(v) for k2, v in (result.final_metrics or {}).items() if isinstance(v, int | float)}
    return {"checkpoint": str(out / "last.pt"), "train_config": cfg_t.to_dict(),
            "metrics": final, "samples_per_s": float(result.samples_per_s)}


# ------------------------------------------------------------------------ evaluate


def evaluate_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int, checkpoint: str,
                   real: RealSplit | RealFaceSplit) -> dict[str, Any]:
    """Per-sample angular errors on all real images (saved for the analysis), and the
    error summaries of both parts. ``real_error`` is the held-out mean, ``analysis_error``
    the analysis part's, ``metrics`` what the round's MLflow run logs."""
    if cfg.task == "landmarks":
        return _evaluate_landmarks_round(settings, cfg, lid=lid, k=k, checkpoint=checkpoint,
                                         real=real)
    import torch

    from analysis.gaze_eval import angular_errors_deg, evaluate_gaze
    from models.checkpoint import load_model
    from models.train import predict

    net = load_model(checkpoint).eval()
    out = predict(net, torch.from_numpy(real.images).unsqueeze(1), amp=False)
    pred = out.pitchyaw.numpy().astype(np.float64)
    err = angular_errors_deg(pred, real.pitchyaw)
    errors_file = _save_errors(settings, lid, k, pred=pred, errors=err,
                               features=out.features.numpy().astype(np.float32))
    held = evaluate_gaze(pred[real.holdout], real.pitchyaw[real.holdout])
    ana = evaluate_gaze(pred[real.analysis], real.pitchyaw[real.analysis])
    return {"heldout": held, "analysis": ana, "errors_file": errors_file,
            "real_error": held["mean_angular_error_deg"],
            "analysis_error": ana["mean_angular_error_deg"],
            "metrics": {ERROR_METRICS["gaze"]: held["mean_angular_error_deg"],
                        "real_median_heldout_deg": held["median_angular_error_deg"],
                        "real_error_analysis_deg": ana["mean_angular_error_deg"]}}


def _save_errors(settings: Settings, lid: str, k: int, **arrays: np.ndarray) -> str:
    """The round's per-sample predictions and errors (what the analysis reads), written
    whole or not at all: a temporary file renamed into place."""
    d = round_dir(settings, lid, k)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (ERRORS_FILE + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(d / ERRORS_FILE)
    return str(d / ERRORS_FILE)


TRANSFER_STEPS = 2000


def _evaluate_landmarks_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                              checkpoint: str, real: RealFaceSplit) -> dict[str, Any]:
    """68 points on every real face by test-time label transfer: the trained dense head,
    then the label-transfer network fitted on the ANALYSIS part's labels only (never the
    held-out part's); per-sample inter-ocular NME in original image coordinates."""
    from analysis.landmark_eval import evaluate_landmarks, nme
    from synthloop.landmark_jobs import fit_transfer_on_real

    steps = cfg.transfer_steps if cfg.transfer_steps is not None else TRANSFER_STEPS
    tm = fit_transfer_on_real(checkpoint, real.faces.subset(real.analysis), steps=steps,
                              seed=round_seed(cfg, k, 3))
    predictor = tm.predictor.eval()
    crop_pred = predictor.predict_batches(real.faces.nchw(), 64).float().cpu().numpy()
    pred = np.stack([tf.from_crop(p) for tf, p in zip(real.faces.transforms, crop_pred, strict=True)])
    err = nme(pred, real.points, "inter_ocular")
    errors_file = _save_errors(settings, lid, k, pred=pred, errors=err)
    held = evaluate_landmarks(pred[real.holdout], real.points[real.holdout])
    ana = evaluate_landmarks(pred[real.analysis], real.points[real.analysis])
    return {"heldout": held, "analysis": ana, "errors_file": errors_file,
            "route": "transfer", "real_error": float(err[real.holdout].mean()),
            "analysis_error": float(err[real.analysis].mean()),
            "metrics": {ERROR_METRICS["landmarks"]: float(err[real.holdout].mean()),
                        "real_nme_io_median_heldout": float(np.median(err[real.holdout])),
                        "real_nme_ip_heldout": float(held["nme_inter_pupil"]),
                        "real_nme_io_analysis": float(err[real.analysis].mean()),
                        "transfer_train_error_px": float(tm.fit.train_error)}}


# ------------------------------------------------------------------------ analyse + update


def _synthetic_probe(batch_dir: str, n: int, seed: int):
    """Images and factor values of up to ``n`` samples of the round's batch."""
    from synth.shards import BatchReader

    r = BatchReader(batch_dir, verify=False)
    idx = np.sort(np.random.default_rng([seed, 17]).choice(r.n, size=min(n, r.n), replace=False))
    meta = r.metadata.iloc[idx]
    values = {f: meta[f].to_numpy(np.float64) for f in r.distribution.factor_names if f in meta}
    return r.images(idx), values


def analyse_round(settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                  dist: SceneDistribution, dist0: SceneDistribution, batch_dir: str,
                  real: RealSplit | RealFaceSplit) -> dict[str, Any]:
    """Slices of the analysis part's errors (gaze angles and image statistics), and the
    next distribution: the policy's update (closed loop) or the start distribution
    (open loop). Plots go next to the round's other files."""
    from analysis.image_stats import image_statistics_table
    from analysis.plots import distribution_change, slice_error_bars
    from analysis.slices import slice_errors as slice_by
    from analysis.slices import worst
    from analysis.update_policy import (
        EYE_HEAD_FACTORS,
        EYE_LABEL_FACTORS,
        EYE_NUISANCE,
        UpdatePolicy,
        update_distribution,
    )

    d = round_dir(settings, lid, k)
    errors = np.load(d / ERRORS_FILE)["errors"][real.analysis]
    real_imgs = real.images[real.analysis]
    real_stats = image_statistics_table(real_imgs)
    if cfg.task == "landmarks":
        from analysis.landmark_eval import estimate_yaw_deg
        from analysis.update_policy import FACE_LABEL_FACTORS, FACE_NUISANCE

        pts = real.points[real.analysis]
        yaw_deg = estimate_yaw_deg(pts)  # > 0: toward the image's left, as head_yaw
        labels = {"head_yaw_deg": yaw_deg,
                  "inter_ocular_px": np.linalg.norm(pts[:, 36] - pts[:, 45], axis=1)}
        real_values = {"head_yaw": np.radians(yaw_deg)}
        label_factors, mapping = FACE_LABEL_FACTORS, FACE_NUISANCE
    else:
        truth = real.pitchyaw[real.analysis]
        labels = {"gaze_pitch_deg": np.degrees(truth[:, 0]), "gaze_yaw_deg": np.degrees(truth[:, 1])}
        real_values = {"gaze_pitch": truth[:, 0], "gaze_yaw": truth[:, 1]}
        label_factors, mapping = EYE_LABEL_FACTORS, EYE_NUISANCE
        if real.headpose is not None:  # labels.csv with head_pitch, head_yaw
            head = real.headpose[real.analysis]
            labels.update(head_pitch_deg=np.degrees(head[:, 0]), head_yaw_deg=np.degrees(head[:, 1]))
            real_values.update(head_pitch=head[:, 0], head_yaw=head[:, 1])
            label_factors = EYE_LABEL_FACTORS + EYE_HEAD_FACTORS
    observed = {**labels, **{k2: np.asarray(v) for k2, v in real_stats.items()}}
    slices = slice_by(errors, observed)
    worst_slices = worst(slices, k=5, min_n=max(10, len(errors) // 50))

    if cfg.open_loop:
        new, report = dist0, {"mode": "open", "changes": {}}
    else:
        syn_imgs, syn_values = _synthetic_probe(batch_dir, SYN_STATS_N, round_seed(cfg, k, 2))
        syn_stats = image_statistics_table(syn_imgs)
        policy = UpdatePolicy(step=cfg.policy_step)
        new, report = update_distribution(
            dist, errors=errors, real_values=real_values, label_factors=label_factors,
            nuisance={"syn_factor_values": syn_values, "syn_stats": syn_stats,
                      "real_stats": real_stats, "mapping": mapping},
            policy=policy)
        report = {"mode": "closed", **report}
    distribution_change(dist, new, _changed_factors(dist, new, fallback=label_factors),
                        path=d / "distribution_change.png", title=f"round {k}: {dist.id} -> {new.id}")
    slice_error_bars(slices, d / "slice_errors.png", ylabel=f"error ({cfg.error_unit})",
                     title=f"round {k}: real error by slice (analysis part)")
    plots = {"slices": str(d / "slice_errors.png"), "distribution": str(d / "distribution_change.png")}
    return {"next_distribution": new, "report": report, "slices": slices,
            "worst_slices": worst_slices, "plots": plots, "n_analysis": int(len(errors))}


def _changed_factors(a: SceneDistribution, b: SceneDistribution, top: int = 8,
                     fallback: tuple[str, ...] = ("gaze_pitch", "gaze_yaw")) -> list[str]:
    """The factors whose weights moved most (total variation), at most ``top``; the label
    factors first when nothing moved (open loop), so the plot is never empty."""
    moved = []
    for f in a.factors:
        g = b.factor(f.name)
        tv = 0.5 * float(np.abs(np.asarray(f.weights) - np.asarray(g.weights)).sum())
        moved.append((tv, f.name))
    moved.sort(key=lambda t: (-t[0], t[1]))
    names = [n for tv, n in moved if tv > 1e-9][:top]
    return names or list(fallback)


def error_curve_png(rounds: list[dict[str, Any]], path: Path, title: str,
                    unit: str = "deg") -> Path:
    """Held-out real error per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ks = [r["round"] for r in rounds]
    ax.plot(ks, [r["real_error"] for r in rounds], "o-")
    ax.set_xlabel("round")
    ax.set_ylabel(f"held-out real error ({unit})")
    ax.set_xticks(ks)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
