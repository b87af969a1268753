"""The data landmark training runs on: an accepted synthetic face batch
(:func:`synthloop.batches.prepare_training_batch`) with its dense labels, optionally real labeled faces (syn+real training, label transfer) and unlabeled
real faces (the DA target), each with its validation part.

**Syn+real: one backbone, two heads.** Synthetic labels are exact mesh-vertex
projections; human 300-W labels follow another convention (jaw on the occluding contour,
brows on their upper edge, annotator noise). Forcing both onto the same channels teaches
the network a blur of the two. So a syn+real model has ``K = D + 68`` channels
(:class:`models.predictor.OutputLayout`): channels ``0..D`` are supervised only by
synthetic samples (dense labels) and channels ``D..D+68`` only by real ones (their 68
labels); every other entry is marked missing (NaN, weight 0), so the landmark loss and
augmentation serve both unchanged. In the hourglass each channel is its own 1x1 heatmap
head on shared features, so this *is* the multi-head model (a dense head and a 68 head
on one backbone), the standard way to train across annotation conventions; the heads
also meet in the intermediate-supervision merges, which is where the 68 head borrows the
dense head's geometry. Each batch holds ``real_fraction`` real faces; a real point weighs
``D / 68``, so a real face counts as much in the loss as a fully labeled synthetic one.
Why not route real labels through the transfer network into the dense head: that head
would be pulled toward whatever dense configuration the (itself still training) transfer
maps onto the human convention, eroding the dense labels' meaning, and the loop would
need a second trainable module and loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from models.predictor import N68, OutputLayout
from realdata.errors import DataFormatError, UsageError
from realdata.real_faces import RealFaces, load_real_faces
from realdata.splits import VALIDATION_SALT, holdout_size, holdout_split
from synthloop.batches import prepare_training_batch
from synthloop.settings import Settings

__all__ = ["VAL_SOURCE_MAX", "VAL_TARGET_MAX", "SyntheticLabels", "TrainingData", "pad_labels",
           "synthetic_labels", "training_data", "validation_split"]

VAL_SOURCE_MAX = 256
VAL_TARGET_MAX = 256
#: ``(real faces, training positions, synthetic dense points (N, D, 2)) -> (N, 68, 2)``
SynHead68 = Callable[[RealFaces, np.ndarray, np.ndarray], np.ndarray]
#: a synthetic face's 68-head point weighs as much as one of its dense points
SYN_HEAD68_WEIGHT = 1.0


def validation_split(n: int, frac: float, seed: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` positions: ``round(n * frac)`` held out (at least 1 when n > 1 and
    frac > 0, at most ``cap``), seeded; a single sample is only trained on."""
    return holdout_split(n, holdout_size(n, frac, cap), [seed, VALIDATION_SALT])


class SyntheticLabels(NamedTuple):
    name: str  # the point set: "points68" or a dense set's name
    points: np.ndarray  # (N, D, 2) float32, crop pixels
    weights: np.ndarray  # (N, D) float32
    mirror: np.ndarray | None  # the set's left/right permutation; None for old batches


def synthetic_labels(batch_dir: str | Path, points: str = "dense", *, dense_set: str | None = None,
                     supervise_occluded: bool = True) -> SyntheticLabels:
    """The point set of a face batch, its weights and its mirror permutation.

    ``points="dense"``: the dense set (``dense_set`` or the batch's first), whose first 68
    are the 68 iBug points; ``"68"``: the 68 alone. Occluded points are supervised by
    default: the renderer projects them exactly, and 300-W annotators label every one of
    the 68 even when self-occluded, so a model must predict them all; with
    ``supervise_occluded=False`` they get weight 0.
    """
    from synth.generate_faces import read_face_labels

    labels = read_face_labels(batch_dir)
    if points == "68":
        name, pts, vis = "points68", labels["points68"], labels["visible68"]
    elif points == "dense":
        sets = sorted(k[:-len("_vertex_ids")] for k in labels if k.endswith("_vertex_ids"))
        name = dense_set or (sets[0] if sets else "")
        if name not in labels:
            raise DataFormatError(batch_dir, f"no dense landmark set {name!r} (has {sets})")
        pts, vis = labels[name], labels[f"{name}_visible"]
    else:
        raise UsageError(f"points must be 'dense' or '68', got {points!r}")
    from models.landmark_augment import batch_mirror

    pts = np.asarray(pts, dtype=np.float32)
    w = np.ones(pts.shape[:2], np.float32) if supervise_occluded else np.asarray(vis, np.float32)
    return SyntheticLabels(name, pts, w, batch_mirror(labels, name))


def pad_labels(points: np.ndarray, weights: np.ndarray, layout: OutputLayout, *, real: bool,
               real_weight: float = 1.0) -> dict[str, np.ndarray]:
    """Labels in the layout's ``K`` channels: synthetic points fill ``0..D`` and real
    points the 68 head; every other entry is missing (NaN, weight 0)."""
    n = len(points)
    pts = np.full((n, layout.num_points, 2), np.nan, np.float32)
    w = np.zeros((n, layout.num_points), np.float32)
    lo, hi = layout.channels("head68") if real else (0, layout.num_dense)
    pts[:, lo:hi] = points
    finite = np.isfinite(points).all(-1)
    w[:, lo:hi] = np.where(finite, weights * real_weight, 0.0)
    return {"points": pts, "visible": w}


def real_labels(real: RealFaces, idx: np.ndarray, layout: OutputLayout,
                weight: float) -> dict[str, np.ndarray]:
    """The 68 labels of real faces ``idx`` in the layout's 68 head, each point weighing
    ``weight``."""
    pts = real.points[idx].astype(np.float32)
    return pad_labels(pts, np.ones(pts.shape[:2], np.float32), layout, real=True, real_weight=weight)


@dataclass
class TrainingData:
    """Everything :func:`synthloop.landmarks.train.train_landmarks` feeds the training
    loop, and what it reports about it."""

    reader: Any  # synth.shards.BatchReader
    set_name: str
    syn_points: np.ndarray  # (N, D, 2), for the sample grid
    layout: OutputLayout
    mirror: np.ndarray | None  # the layout's channel permutation under a flip (None: no flips)
    n_real: int  # real faces per batch (syn+real), else 0
    source: Any  # BatchSource
    val_source: dict[str, Tensor]
    real: RealFaces | None = None
    real_train: np.ndarray | None = None
    real_val: np.ndarray | None = None
    target: RealFaces | None = None
    target_source: Any = None
    val_target: dict[str, Tensor] | None = None


def training_data(settings: Settings, *, source: str | None, n_source: int, seed: int,
                  points: str, dense_set: str | None, supervise_occluded: bool,
                  real_labeled: str | None, real_fraction: float, real_val_fraction: float,
                  target: str | None, batch_size: int, log, crop_size: int = 128,
                  syn_head68: SynHead68 | None = None) -> TrainingData:
    """Sources and validation batches. Synthetic: 5 % of the batch (at most 256 faces)
    held out for checkpoint selection. Syn+real (``real_fraction > 0``): batches of
    synthetic + real faces in the layout's channels, and selection on the held-out real
    faces instead, the data the model is for. Target: 20 % (at most 256) held out for the
    label-free scores, as in the gaze jobs. Every image comes at ``crop_size`` px (the
    model's input size): real faces are cropped at it, synthetic ones resampled to it.

    ``syn_head68`` (syn+real only): ``(real faces, their training positions, synthetic
    dense points) -> (N, 68, 2)`` labels in the real convention for the synthetic faces,
    which then supervise the 68 head too (:mod:`synthloop.landmarks.syn_head68`)."""
    from models.crop_resize import ResizedSource
    from models.data import ArraySource, ConcatSource, ShardSource

    reader = prepare_training_batch(settings, "landmarks", source=source, n=n_source, seed=seed,
                                    log=log)
    from models.landmark_augment import layout_mirror

    set_name, syn_pts, syn_w, set_mirror = synthetic_labels(
        reader.path, points, dense_set=dense_set, supervise_occluded=supervise_occluded)
    mixed = real_labeled is not None and real_fraction > 0
    if mixed and batch_size < 2:
        raise UsageError("syn+real training needs batch_size >= 2")
    layout = OutputLayout(set_name, syn_pts.shape[1], real_head=mixed)
    syn_train, syn_val = validation_split(len(reader), 0.05, seed, VAL_SOURCE_MAX)
    if len(syn_val) == 0:
        syn_val = syn_train  # a one-face batch: nothing to hold out
    real = real_train = real_val = None
    if real_labeled is not None:
        real = load_real_faces(real_labeled, crop_size)
        real_train, real_val = validation_split(len(real), real_val_fraction, seed, len(real))
    syn_labels = pad_labels(syn_pts, syn_w, layout, real=False)
    if mixed and syn_head68 is not None:
        lo, hi = layout.channels("head68")
        syn_labels["points"][:, lo:hi] = syn_head68(real, real_train, syn_pts)
        syn_labels["visible"][:, lo:hi] = SYN_HEAD68_WEIGHT
    n_real = min(max(int(round(batch_size * real_fraction)), 1), batch_size - 1) if mixed else 0
    syn_src = ResizedSource(ShardSource(reader, batch_size - n_real, seed, syn_labels,
                                        indices=syn_train), crop_size)
    d = TrainingData(reader, set_name, syn_pts, layout, layout_mirror(set_mirror, mixed), n_real,
                     syn_src,
                     ResizedSource(ShardSource(reader, 1, seed, syn_labels, indices=syn_val),
                                   crop_size).gather(np.arange(len(syn_val))))
    d.real, d.real_train, d.real_val = real, real_train, real_val
    if mixed:
        assert d.real is not None and d.real_train is not None and d.real_val is not None
        pad = real_labels(d.real, d.real_train, layout, layout.num_dense / N68)
        d.source = ConcatSource(syn_src, ArraySource(d.real.images[d.real_train], n_real,
                                                     seed + 2, labels=pad))
        if len(d.real_val):
            vpad = real_labels(d.real, d.real_val, layout, 1.0)
            d.val_source = {"image": torch.from_numpy(d.real.nchw(d.real_val)),
                            **{k: torch.from_numpy(v) for k, v in vpad.items()}}
    if target is not None:
        d.target = load_real_faces(target, crop_size, require_labels=False)
        t_train, t_val = validation_split(len(d.target), 0.2, seed, VAL_TARGET_MAX)
        d.target_source = ArraySource(d.target.images[t_train], batch_size, seed + 1)
        d.val_target = {"image": torch.from_numpy(d.target.nchw(t_val if len(t_val) else t_train))}
    return d

