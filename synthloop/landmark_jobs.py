"""Landmark jobs: what `synthloop train --task landmarks` / `synthloop evaluate --task
landmarks`, the Prefect tasks and the landmark benchmark run.

Plain functions (no Prefect); MLflow is used here as in :mod:`synthloop.gaze_jobs`, never
inside the pure packages. Three pieces:

- **data**: synthetic face batches (dense labels from ``landmarks/*.npy``) through
  :class:`models.data.FaceShardSource`; real faces (images + ``.pts``) cropped with the
  shared protocol (:mod:`realdata.face_crop`), crops cached in memory per image;
- **training** (:func:`train_landmarks`): source-only, DANN or DALN on synthetic faces,
  optionally with real labeled faces (label transfer, and syn+real training);
- **evaluation** (:func:`evaluate_landmarks_model`): 68-point NMEs on a labeled folder in
  original image coordinates, plus the benchmark helpers :func:`fit_transfer_on_real`
  and :func:`split_lfpw`.

**Output layout and routes.** The hourglass predicts ``K`` channels: the synthetic point
set (``D`` dense points, or the 68), and with syn+real training 68 more. Three *routes*
turn that into the 68 iBug points a real benchmark scores:

- ``dense68``: the dense set's first 68 points, which by construction are the 68 iBug
  vertices of the face mesh (nearest dense points, no real labels needed);
- ``transfer``: the label-transfer network (:mod:`models.label_transfer`) on the ``D``
  dense points, fitted on real labels;
- ``head68``: the extra head trained on real 68-point labels (syn+real).

**Syn+real design: one backbone, two heads.** Synthetic labels are exact mesh-vertex
projections; human 300-W labels follow another convention (jaw on the occluding
contour, brows on their upper edge, annotator noise). Forcing both onto the same
channels teaches the network a blur of the two. So a syn+real model has ``K = D + 68``
channels: channels ``0..D`` are supervised only by synthetic samples (dense labels) and
channels ``D..D+68`` only by real ones (their 68 labels); every other entry is marked
missing (NaN, weight 0), so the existing landmark loss and augmentation serve both
unchanged. In the hourglass each channel is its own 1x1 heatmap head on shared
features, so this *is* the multi-head model (a dense head and a 68 head on one
backbone), the standard way to train across annotation conventions; the heads also meet
in the intermediate-supervision merges, which is where the 68 head borrows the dense
head's geometry. Each batch holds ``real_fraction`` real faces; a real point weighs
``D / 68``, so a real face counts as much in the loss as a fully labeled synthetic one.
Why not route real labels through the transfer network into the dense head: that head
would be pulled toward whatever dense configuration the (itself still training) transfer
maps onto the human convention, eroding the dense labels' meaning, and the loop would
need a second trainable module and loss. The transfer network is still fitted after
training, on the trained dense head's predictions for the real training faces, and the
route that scores best on held-out real faces (``real_val_fraction``) becomes the
registered model's output; every route's validation NME is logged.

DA (DANN/DALN) uses unlabeled real faces as the target and trains on synthetic faces
only: real labeled faces in the source half would be "source" to the discriminator, so
syn+real training is refused with DA (label transfer after DA is fine:
``real_fraction=0``).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from realdata.landmarks import FaceSet
from synthloop.errors import DataFormatError
from synthloop.gaze_jobs import TrainedRun, _claim_checkpoint_dir, _fingerprint
from synthloop.settings import Settings

__all__ = [
    "LandmarkRun",
    "OutputLayout",
    "RealFaces",
    "TransferredModel",
    "evaluate_landmarks_model",
    "fit_transfer_on_real",
    "load_landmark_predictor",
    "load_real_faces",
    "make_predictor",
    "prepare_face_source",
    "split_lfpw",
    "synthetic_labels",
    "train_landmarks",
]

N68 = 68
ROUTES = ("dense68", "transfer", "head68")
LAYOUT_FILE = "landmarks.json"  # the output layout and route, beside best.pt / last.pt
TRANSFER_FILE = "transfer.pt"
VAL_SOURCE_MAX = 256
VAL_TARGET_MAX = 256
LFPW_N_TEST = 160


@dataclass(frozen=True)
class LandmarkRun(TrainedRun):
    """A :class:`~synthloop.gaze_jobs.TrainedRun` plus the registered output route, the
    channel layout and the per-route NME on held-out real faces (empty without them)."""

    route: str
    layout: dict[str, Any]
    real_val_nme: dict[str, float]


# ------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class OutputLayout:
    """Which network channels hold which points (module docstring: routes).

    point_set: the synthetic set in channels ``0..num_dense`` (``dense500``... or
    ``points68``); real_head: whether channels ``num_dense..num_dense+68`` are the head
    trained on real 68-point labels.
    """

    point_set: str
    num_dense: int
    real_head: bool = False

    def __post_init__(self) -> None:
        if self.num_dense < N68:
            raise ValueError(f"the synthetic set must hold at least the 68 iBug points, "
                             f"got {self.num_dense}")

    @property
    def num_points(self) -> int:
        return self.num_dense + (N68 if self.real_head else 0)

    def channels(self, route: str) -> tuple[int, int]:
        if route == "dense68":
            return (0, N68)
        if route == "transfer":
            return (0, self.num_dense)
        if route == "head68":
            if not self.real_head:
                raise ValueError("route 'head68' needs a model trained with real labeled faces "
                                 "(real_fraction > 0)")
            return (self.num_dense, self.num_dense + N68)
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputLayout:
        return cls(str(d["point_set"]), int(d["num_dense"]), bool(d.get("real_head", False)))

    @classmethod
    def infer(cls, net: nn.Module) -> OutputLayout:
        """For a bare landmark network without a layout record: all channels are the
        synthetic set (the 68, or a dense set whose first 68 are the iBug points)."""
        k = int(getattr(net, "num_points", 0))
        return cls("points68" if k == N68 else f"dense{k}", k, False)


def make_predictor(net: nn.Module, layout: OutputLayout, route: str,
                   transfer: nn.Module | None = None) -> Any:
    """The serving model for ``route``: crops in, the 68 points out."""
    from models.predictor import LandmarkPredictor

    if route == "transfer" and transfer is None:
        raise ValueError("route 'transfer' needs a fitted label-transfer network")
    return LandmarkPredictor(net, transfer if route == "transfer" else None,
                             channels=layout.channels(route),
                             layout={**layout.to_dict(), "route": route})


# ------------------------------------------------------------------------- real faces


@dataclass(frozen=True, eq=False)
class RealFaces:
    """Real faces cropped by the shared protocol.

    images: (N, size, size, 3) uint8; points: (N, 68, 2) crop coordinates (NaN where
    unlabeled); transforms: original -> crop, one per face (``from_crop`` maps back).
    """

    face_set: FaceSet
    images: np.ndarray
    points: np.ndarray
    transforms: tuple[Any, ...]
    size: int

    def __len__(self) -> int:
        return len(self.images)

    def nchw(self, indices: Any = None) -> Tensor:
        """uint8 (N, 3, size, size), as the landmark models take them."""
        imgs = self.images if indices is None else self.images[indices]
        return torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))

    def subset(self, indices: Any) -> RealFaces:
        idx = np.asarray(indices, dtype=np.int64)
        return RealFaces(self.face_set.subset(idx.tolist()), self.images[idx], self.points[idx],
                         tuple(self.transforms[i] for i in idx), self.size)


_CROPS: OrderedDict[tuple, tuple[np.ndarray, Any]] = OrderedDict()
_CROPS_MAX = 8192  # ~400 MB of 128x128 crops; LFPW is 805 faces


def _crop_key(face_set: FaceSet, i: int, size: int, enlarge: float) -> tuple:
    path = face_set.image_paths[i]
    if path is None:
        raise DataFormatError(face_set.source or "<faces>",
                              f"sample {face_set.names[i]!r} has no image")
    try:
        st = Path(path).stat()
    except OSError:
        raise DataFormatError(path, "image file not found") from None
    return (str(Path(path).resolve()), st.st_mtime_ns, st.st_size,
            np.asarray(face_set.points[i], np.float64).tobytes(), int(size), float(enlarge))


def _crop_whole_image(face_set: FaceSet, i: int, size: int):
    """An image without labels is taken as an already-cropped face: its whole extent,
    squared around the centre, resized to ``size``."""
    from realdata.face_crop import crop_face

    img = face_set.image(i)
    h, w = img.shape[:2]
    return crop_face(img, (-0.5, -0.5, w - 0.5, h - 0.5), size)


def load_real_faces(data: str | Path | FaceSet | RealFaces, size: int = 128, *,
                    require_labels: bool = True) -> RealFaces:
    """Real faces from a folder of images with sibling ``.pts`` files (or a FaceSet),
    cropped by the shared protocol (mode "landmarks", :mod:`realdata.face_crop`).

    Crops are cached in memory per image (path, mtime, size, points, crop size and
    factor), so a benchmark that evaluates many models, or a split's halves, crops each
    face once. ``require_labels=False`` (unlabeled DA targets) keeps images without a
    ``.pts`` as already-cropped faces (see :func:`_crop_whole_image`). A missing or
    malformed folder raises DataFormatError naming it (or the offending file).
    """
    from realdata import face_crop
    from realdata.landmarks import read_landmark_folder

    if isinstance(data, RealFaces):
        if data.size != size:
            raise ValueError(f"faces were cropped at {data.size}, asked for {size}")
        return data
    fs = data if isinstance(data, FaceSet) else read_landmark_folder(data, require_labels=require_labels)
    if len(fs) == 0:
        raise DataFormatError(fs.source or str(data), "no faces (images with .pts files) found")
    if fs.points.shape[1] != N68:
        raise DataFormatError(fs.source or str(data), f"faces have {fs.points.shape[1]} points, "
                                                      "need the 68-point iBug layout")
    labeled = fs.labeled
    if require_labels and not labeled.all():
        bad = [fs.names[i] for i in np.flatnonzero(~labeled)[:3]]
        raise DataFormatError(fs.source or str(data), f"faces without complete labels: {bad}")
    enlarge = face_crop.DEFAULT_ENLARGE
    keys = [_crop_key(fs, i, size, enlarge) for i in range(len(fs))]
    todo = [i for i, k in enumerate(keys) if k not in _CROPS]
    todo_lab = [i for i in todo if labeled[i]]
    if todo_lab:
        try:
            imgs, _, tfs = face_crop.crop_face_set(fs.subset(todo_lab), size, enlarge)
        except ValueError as e:
            raise DataFormatError(fs.source or str(data), str(e)) from None
        for j, i in enumerate(todo_lab):
            _remember(keys[i], (imgs[j], tfs[j]))
    for i in todo:
        if not labeled[i]:
            _remember(keys[i], _crop_whole_image(fs, i, size))
    crops = [_CROPS[k] for k in keys]
    for k in keys:
        _CROPS.move_to_end(k)
    tfs = tuple(c[1] for c in crops)
    points = np.stack([tf.to_crop(p) for tf, p in zip(tfs, fs.points, strict=True)])
    return RealFaces(fs, np.stack([c[0] for c in crops]), points, tfs, size)


def _remember(key: tuple, value: tuple[np.ndarray, Any]) -> None:
    _CROPS[key] = value
    while len(_CROPS) > _CROPS_MAX:
        _CROPS.popitem(last=False)


def split_lfpw(dir: str | Path, n_test: int = LFPW_N_TEST, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """A fixed ``(train, test)`` split of a labeled face folder: LFPW train's 805 faces
    give 645 / 160 with the defaults.

    The faces are read in sorted file-name order (``read_landmark_folder``), permuted by
    ``numpy.random.default_rng(seed)``; the first ``n_test`` of the permutation are the
    test set. Both halves keep the sorted order. Same folder, ``n_test`` and ``seed``, same
    split on any machine (numpy's PCG64 permutation is stable across versions).
    """
    from realdata.landmarks import read_landmark_folder

    fs = read_landmark_folder(dir)
    n = len(fs)
    if not 0 < n_test < n:
        raise ValueError(f"n_test must be in [1, {n - 1}] for {n} faces, got {n_test}")
    perm = np.random.default_rng(seed).permutation(n)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return fs.subset(train.tolist()), fs.subset(test.tolist())


def _split(n: int, frac: float, seed: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` positions: ``round(n * frac)`` held out (at least 1 when n > 1 and
    frac > 0, at most ``cap``), seeded; a single sample is only trained on."""
    k = min(cap, int(round(n * frac)))
    if frac > 0 and n > 1:
        k = min(max(k, 1), n - 1)
    perm = np.random.default_rng([seed, 99]).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


# ------------------------------------------------------------------------- synthetic


def face_validation_available() -> bool:
    """Whether :mod:`expectations.validate` has suites for face batches (its
    ``TASK_SUITES`` has ``"landmarks"``). Validating a face batch with the eye suites
    would quarantine it (their factors are absent), so without face suites a face batch
    is trained on unvalidated; a quarantined one is refused either way."""
    from expectations import validate

    return "landmarks" in getattr(validate, "TASK_SUITES", {})


def prepare_face_source(settings: Settings, *, source: str | None, n: int, seed: int,
                        log=print):
    """An openable synthetic face batch: the given folder, or one generated under the
    project home from the default face distribution; validated first when face suites
    exist (:func:`face_validation_available`). Returns a BatchReader."""
    from synth.face_distribution import default_face_distribution
    from synth.shards import BatchReader, QuarantinedBatchError, open_for_training

    if source is None:
        from synth.generate_faces import generate_face_batch

        dist = default_face_distribution()
        out = settings.batches_dir / f"train-landmarks-{dist.id}-s{seed}-n{n}"
        if not (out / "manifest.json").is_file():
            log(f"generating {n} synthetic faces from {dist.id} into {out}")
            generate_face_batch(out, n=n, seed=seed, dist=dist)
        source = str(out)
    reader = BatchReader(source)
    if reader.task != "landmarks":
        raise DataFormatError(source, f"a {reader.task!r} batch, not a face batch")
    checked = face_validation_available()
    if checked and reader.status.status == "unvalidated":
        from expectations.validate import record_outcome, validate_batch

        log(f"validating {reader.batch_id} with Great Expectations")
        record_outcome(source, validate_batch(source))
    elif not checked and reader.status.status == "unvalidated":
        log(f"note: no Great Expectations suites for face batches yet; {reader.batch_id} "
            "is used unvalidated")
    try:
        return open_for_training(source, allow_unvalidated=not checked)
    except QuarantinedBatchError as e:
        raise DataFormatError(source, str(e)) from None


def synthetic_labels(batch_dir: str | Path, points: str = "dense", *, dense_set: str | None = None,
                     supervise_occluded: bool = True) -> tuple[str, np.ndarray, np.ndarray]:
    """``(set name, points (N, D, 2) float32, weights (N, D) float32)`` of a face batch.

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
        raise ValueError(f"points must be 'dense' or '68', got {points!r}")
    pts = np.asarray(pts, dtype=np.float32)
    w = np.ones(pts.shape[:2], np.float32) if supervise_occluded else np.asarray(vis, np.float32)
    return name, pts, w


def _pad(points: np.ndarray, weights: np.ndarray, layout: OutputLayout, *, real: bool,
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


def _log_samples(reader, pts: np.ndarray, settings: Settings, count: int = 16) -> None:
    import mlflow

    from synth.face_preview import face_grid

    idx = np.arange(min(count, len(reader)))
    yaw = reader.metadata["yaw"].to_numpy()[idx]
    vis = np.ones((len(idx), N68), bool)
    png = face_grid(reader.images(idx), pts[idx, :N68], vis, settings.outputs_dir /
                    f"faces-{reader.batch_id}.png", dense=pts[idx], yaw=yaw,
                    title=f"source {reader.batch_id}")
    mlflow.log_artifact(str(png), "samples")


# ------------------------------------------------------------------------- train


@torch.no_grad()
def _coords(net: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """All output channels of ``net`` on uint8 NCHW ``images`` (eval mode, CPU result)."""
    from models.landmark_losses import predict_points

    net.eval()
    return predict_points(net, images, amp=False, chunk=batch_size).cpu()


def _route_errors(coords: Tensor, true68: np.ndarray, layout: OutputLayout,
                  transfer: nn.Module | None) -> dict[str, float]:
    """Mean inter-ocular NME (%) of every available route. Crop coordinates are an
    isotropic scale and shift of the originals, so the NME equals the original one."""
    from analysis.landmark_eval import nme
    from models.label_transfer import apply_label_transfer

    out = {}
    for route in ROUTES:
        if (route == "head68" and not layout.real_head) or (route == "transfer" and transfer is None):
            continue
        a, b = layout.channels(route)
        pred = coords[:, a:b]
        if route == "transfer":
            pred = apply_label_transfer(transfer, pred)
        out[route] = float(nme(pred.numpy(), true68).mean())
    return out


def _default_route(layout: OutputLayout, has_transfer: bool) -> str:
    """Without held-out real faces: the head trained on real labels, else the transfer
    fitted on them, else the nearest dense points."""
    if layout.real_head:
        return "head68"
    return "transfer" if has_transfer else "dense68"


@dataclass
class _TrainingData:
    """Everything :func:`train_landmarks` feeds the loop, and what it reports about it."""

    reader: Any  # synth.shards.BatchReader
    set_name: str
    syn_points: np.ndarray  # (N, D, 2), for the sample grid
    layout: OutputLayout
    n_real: int  # real faces per batch (syn+real), else 0
    source: Any  # BatchSource
    val_source: dict[str, Tensor]
    real: RealFaces | None = None
    real_train: np.ndarray | None = None
    real_val: np.ndarray | None = None
    target: RealFaces | None = None
    target_source: Any = None
    val_target: dict[str, Tensor] | None = None


def _training_data(settings: Settings, *, source: str | None, n_source: int, seed: int,
                   points: str, dense_set: str | None, supervise_occluded: bool,
                   real_labeled: str | None, real_fraction: float, real_val_fraction: float,
                   target: str | None, batch_size: int, log) -> _TrainingData:
    """Sources and validation batches. Synthetic: 5 % of the batch (at most 256 faces)
    held out for checkpoint selection. Syn+real (``real_fraction > 0``): batches of
    synthetic + real faces in the layout's channels, and selection on the held-out real
    faces instead, the data the model is for. Target: 20 % (at most 256) held out for the
    label-free scores, as in the gaze jobs."""
    from models.data import ArraySource, ConcatSource, FaceShardSource

    reader = prepare_face_source(settings, source=source, n=n_source, seed=seed, log=log)
    set_name, syn_pts, syn_w = synthetic_labels(reader.path, points, dense_set=dense_set,
                                                supervise_occluded=supervise_occluded)
    mixed = real_labeled is not None and real_fraction > 0
    if mixed and batch_size < 2:
        raise ValueError("syn+real training needs batch_size >= 2")
    layout = OutputLayout(set_name, syn_pts.shape[1], real_head=mixed)
    syn_train, syn_val = _split(len(reader), 0.05, seed, VAL_SOURCE_MAX)
    if len(syn_val) == 0:
        syn_val = syn_train  # a one-face batch: nothing to hold out
    syn_labels = _pad(syn_pts, syn_w, layout, real=False)
    n_real = min(max(int(round(batch_size * real_fraction)), 1), batch_size - 1) if mixed else 0
    syn_src = FaceShardSource(reader, batch_size - n_real, seed, syn_labels, indices=syn_train)
    d = _TrainingData(reader, set_name, syn_pts, layout, n_real, syn_src,
                      FaceShardSource(reader, 1, seed, syn_labels, indices=syn_val)
                      .gather(np.arange(len(syn_val))))
    if real_labeled is not None:
        d.real = load_real_faces(real_labeled)
        d.real_train, d.real_val = _split(len(d.real), real_val_fraction, seed, len(d.real))
    if mixed:
        assert d.real is not None and d.real_train is not None and d.real_val is not None
        pad = _real_labels(d.real, d.real_train, layout, layout.num_dense / N68)
        d.source = ConcatSource(syn_src, ArraySource(d.real.images[d.real_train], n_real,
                                                     seed + 2, labels=pad))
        if len(d.real_val):
            vpad = _real_labels(d.real, d.real_val, layout, 1.0)
            d.val_source = {"image": d.real.nchw(d.real_val),
                            **{k: torch.from_numpy(v) for k, v in vpad.items()}}
    if target is not None:
        d.target = load_real_faces(target, require_labels=False)
        t_train, t_val = _split(len(d.target), 0.2, seed, VAL_TARGET_MAX)
        d.target_source = ArraySource(d.target.images[t_train], batch_size, seed + 1)
        d.val_target = {"image": d.target.nchw(t_val if len(t_val) else t_train)}
    return d


def _real_labels(real: RealFaces, idx: np.ndarray, layout: OutputLayout,
                 weight: float) -> dict[str, np.ndarray]:
    pts = real.points[idx].astype(np.float32)
    return _pad(pts, np.ones(pts.shape[:2], np.float32), layout, real=True, real_weight=weight)


def train_landmarks(settings: Settings, *, method: str = "source_only", steps: int, seed: int,
                    out: str, source: str | None = None, n_source: int = 10_000,
                    real_labeled: str | None = None, real_fraction: float = 0.5,
                    real_val_fraction: float = 0.1, target: str | None = None,
                    model: str = "hourglass_s", model_kwargs: dict[str, Any] | None = None,
                    points: str = "dense", dense_set: str | None = None,
                    supervise_occluded: bool = True, batch_size: int = 16,
                    lr: float | None = None, trade_off: float = 1.0, transfer_steps: int = 2000,
                    device: str = "cpu", register: bool = True, run_name: str | None = None,
                    log=print, train_overrides: dict[str, Any] | None = None) -> LandmarkRun:
    """Train a landmark model on a synthetic face batch, log it to MLflow experiment
    ``synthloop-landmarks`` and register it (with its output route) as
    ``synthloop-landmarks``.

    Args:
        method: ``source_only``, ``dann`` or ``daln`` (the latter two need ``target``).
        source: a face batch folder; None generates ``n_source`` faces (default model and
            distribution) under the project home, reused by later runs.
        real_labeled: a folder of real images + ``.pts``: fits the label-transfer network
            after training and, with ``real_fraction > 0``, trains syn+real (module
            docstring). ``real_val_fraction`` of it is held out to pick the route (and,
            syn+real, the checkpoint).
        target: unlabeled real faces for DANN/DALN: images with ``.pts`` (used only to
            place the crop, as at test time) or already-cropped faces.
        points: ``"dense"`` (the batch's dense set, or ``dense_set``) or ``"68"``.
        train_overrides: any further :class:`models.train.TrainConfig` fields.

    Cost (hourglass_s, dense500, batch 16, one CPU thread, measured): ~0.7 s per
    source-only step, ~0.9 s syn+real (568 channels), ~1.5 s DANN and ~2.1 s DALN (16 + 16
    images per step); 0.3 s with ``points="68"``. The dense heads and their soft-argmax
    dominate, hence the 68-point option for quick runs.
    """
    import mlflow

    from models.registry import create_method, list_methods
    from models.train import TrainConfig, train
    from synthloop import tracking

    if method not in list_methods():
        raise ValueError(f"method must be one of {list_methods()}, got {method!r}")
    needs_target = create_method(method, feature_dim=8).needs_target
    if needs_target and target is None:
        raise ValueError(f"method {method!r} needs target (unlabeled real faces)")
    if not 0.0 <= real_fraction < 1.0:
        raise ValueError(f"real_fraction must be in [0, 1), got {real_fraction}")
    mixed = real_labeled is not None and real_fraction > 0
    if mixed and method != "source_only":
        raise ValueError(f"syn+real training (real_fraction={real_fraction}) with {method!r} would "
                         "put real faces in the source domain; use real_fraction=0 (label "
                         "transfer after DA) or method='source_only'")

    d = _training_data(settings, source=source, n_source=n_source, seed=seed, points=points,
                       dense_set=dense_set, supervise_occluded=supervise_occluded,
                       real_labeled=real_labeled, real_fraction=real_fraction if mixed else 0.0,
                       real_val_fraction=real_val_fraction,
                       target=target if needs_target else None, batch_size=batch_size, log=log)
    if target is not None and not needs_target:
        log(f"note: {method} trains without target images; --target {target} is ignored")
    reader, layout, set_name, real, real_val = d.reader, d.layout, d.set_name, d.real, d.real_val
    tgt, n_real = d.target, d.n_real

    kw: dict[str, Any] = dict(task="landmarks", model=model,
                              model_kwargs={**(model_kwargs or {}), "num_points": layout.num_points},
                              method=method, steps=steps, batch_size=batch_size,
                              trade_off=trade_off, seed=seed, device=device, select="source_error")
    if lr is not None:
        kw["lr"] = lr
    kw.update(train_overrides or {})
    cfg = TrainConfig(**kw)

    real_key = _data_key(real_labeled) if real_labeled is not None else None
    target_key = _data_key(target) if tgt is not None else None
    _claim_checkpoint_dir(Path(out), {
        "source_batch": reader.batch_id, "point_set": set_name, "real_labeled": real_key,
        "real_paths": _fingerprint(real.face_set.image_paths) if real is not None else None,
        "real_fraction": real_fraction if mixed else 0.0, "target": target_key,
        "target_paths": _fingerprint(tgt.face_set.image_paths) if tgt is not None else None})
    tracking.configure(settings.tracking_uri, "landmarks", settings.artifact_root)
    with mlflow.start_run(run_name=run_name or f"{method}{'-synreal' if mixed else ''}-s{seed}") as run:
        run_id = run.info.run_id
        mlflow.set_tags({"task": "landmarks", "method": method, "source_batch": reader.batch_id,
                         "distribution": reader.distribution.id, "point_set": set_name,
                         "real_labeled": real_key or "", "syn_real": str(mixed).lower(),
                         "target": target_key or "", "selection_metric": "source_nme_crop",
                         "selection_data": "real_val" if mixed and len(real_val) else "synthetic_val"})
        mlflow.log_params(tracking.flat_params({
            **cfg.to_dict(), "source_batch": reader.batch_id, "source_n": reader.n,
            "source_status": reader.status.status, "distribution_id": reader.distribution.id,
            "point_set": set_name, "num_dense": layout.num_dense, "real_head": layout.real_head,
            "supervise_occluded": supervise_occluded, "real_n_train": _n(d.real_train),
            "real_n_val": _n(real_val), "real_fraction": real_fraction if mixed else 0.0,
            "real_per_batch": n_real, "transfer_steps": transfer_steps if real else 0,
            "target_n": len(tgt) if tgt is not None else 0, **_crop_params()}))
        mlflow.log_dict(reader.manifest, "source_manifest.json")
        _log_samples(reader, d.syn_points, settings)

        t0 = time.perf_counter()
        result = train(cfg, d.source, d.target_source, out, val_source=d.val_source,
                       val_target=d.val_target, callback=tracking.MetricLogger(run_id))
        mlflow.log_metric("train_seconds", time.perf_counter() - t0)
        mlflow.log_metric("samples_per_s", float(result.samples_per_s))
        from analysis.plots import learning_curves

        curves = learning_curves(result.history, settings.outputs_dir / f"curves-{run_id}.png",
                                 title=f"landmarks {method} seed {seed}")
        mlflow.log_artifact(str(curves), "plots")

        from models.checkpoint import load_model

        net = load_model(out).to(device)
        route, transfer, route_nme = _choose_route(net, d, transfer_steps, seed, Path(out))
        mlflow.set_tag("route", route)
        for name in ("best.pt", "last.pt", TRANSFER_FILE, LAYOUT_FILE):
            if (Path(out) / name).is_file():
                mlflow.log_artifact(str(Path(out) / name), "checkpoint")

        uri = version = None
        promoted = False
        final = {k: float(v) for k, v in (result.final_metrics or {}).items()
                 if isinstance(v, int | float)}
        if register:
            predictor = make_predictor(net.cpu(), layout, route, transfer)
            example = d.val_source["image"][:4]
            uri, version = tracking.log_model_and_register(predictor, example, "landmarks", run_id)
            held = [real.face_set.names[i] for i in real_val] if real is not None else []
            promoted = _promote(version, result, route_nme, route, real_key, held, set_name)
    return LandmarkRun(run_id, Path(out), uri, version, promoted, final, route, layout.to_dict(),
                       route_nme)


def _choose_route(net: nn.Module, d: _TrainingData, transfer_steps: int, seed: int,
                  out: Path) -> tuple[str, nn.Module | None, dict[str, float]]:
    """With real labeled faces: fit the transfer network on the training ones, score
    every route on the held-out ones and take the best (module docstring). Writes the
    layout record (``landmarks.json``) that :func:`load_landmark_predictor` reads.
    Returns ``(route, transfer or None, {route: held-out NME io})``."""
    import mlflow

    transfer, route_nme = None, {}
    if d.real is not None and d.real_train is not None and d.real_val is not None:
        transfer = _fit_and_save_transfer(net, d.real, d.real_train, d.layout, transfer_steps,
                                          seed, out)
        if len(d.real_val):
            dev = next(net.parameters()).device
            coords = _coords(net, d.real.nchw(d.real_val).to(dev))
            route_nme = _route_errors(coords, d.real.points[d.real_val], d.layout, transfer)
            mlflow.log_metrics({f"real_val_nme_inter_ocular_{k}": v for k, v in route_nme.items()})
    route = (min(route_nme, key=route_nme.get) if route_nme
             else _default_route(d.layout, transfer is not None))
    record = {"layout": d.layout.to_dict(), "route": route,
              "transfer": TRANSFER_FILE if transfer is not None else None,
              "real_val_nme_inter_ocular": route_nme, "crop_size": _input_size(net)}
    (out / LAYOUT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return route, transfer, route_nme


def _n(idx: np.ndarray | None) -> int:
    return 0 if idx is None else int(len(idx))


def _input_size(net: nn.Module) -> int:
    return int(getattr(net, "input_size", 128))


def _crop_params() -> dict[str, float]:
    """Both sides of the crop protocol, so a mismatch shows in the run (it would be a
    domain cue of its own)."""
    from realdata.face_crop import DEFAULT_ENLARGE
    from synth.face_renderer import CROP_SCALE

    return {"crop_enlarge_real": float(DEFAULT_ENLARGE), "crop_scale_synthetic": float(CROP_SCALE)}


def _fit_and_save_transfer(net: nn.Module, real: RealFaces, idx: np.ndarray, layout: OutputLayout,
                           steps: int, seed: int, out: Path) -> nn.Module:
    """Fit the label-transfer network on the trained dense head's predictions for the
    real training faces; saved as ``out/transfer.pt`` (self-describing)."""
    from models.label_transfer import fit_label_transfer, save_label_transfer

    dev = next(net.parameters()).device
    a, b = layout.channels("transfer")
    dense = _coords(net, real.nchw(idx).to(dev))[:, a:b]
    fit = fit_label_transfer(dense, torch.from_numpy(real.points[idx]).float(), steps, seed)
    save_label_transfer(out / TRANSFER_FILE, fit)
    import mlflow

    mlflow.log_metrics({"transfer_baseline_error_px": fit.baseline_error,
                        "transfer_train_error_px": fit.train_error})
    return fit.model


def _promote(version: str, result: Any, route_nme: dict[str, float], route: str,
             real_key: str | None, held_out: list[str], point_set: str) -> bool:
    """Move the champion alias. On held-out real faces when the run had them (comparable
    only with runs that held out the same faces), else on the synthetic validation NME
    (comparable only with runs on the same point set; a weak comparison, since each batch
    has its own validation faces, but the same one the gaze jobs make)."""
    import mlflow

    from synthloop import tracking

    if route_nme:
        metric, score = "real_val_nme_inter_ocular", route_nme[route]
        mlflow.set_tag("real_val", _fingerprint(held_out))
        comparable = {"real_labeled": real_key or "", "real_val": _fingerprint(held_out)}
    else:
        metric = "source_nme_crop_best"
        score = float(result.best_score) if result.best_score is not None else float("nan")
        comparable = {"selection_data": "synthetic_val", "point_set": point_set}
    mlflow.log_metric(metric, score)
    decision = tracking.maybe_promote("landmarks", version, metric, score, higher_is_better=False,
                                      comparable_on=comparable)
    mlflow.set_tag("champion_decision", json.dumps(decision, default=str))
    return bool(decision.get("promoted"))


# ------------------------------------------------------------------------- evaluate


def _is_uri(ref: str) -> bool:
    return "://" in ref or ref.startswith(("models:/", "runs:/"))


def _read_layout_record(ckpt: Path) -> dict[str, Any] | None:
    p = (ckpt if ckpt.is_dir() else ckpt.parent) / LAYOUT_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(p, f"not valid JSON ({e})") from None


def load_landmark_predictor(ref: str | Path | nn.Module, route: str | None = None) -> Any:
    """A LandmarkPredictor (68 points out) from an MLflow URI (``models:/synthloop-landmarks@
    champion``), a run folder / checkpoint written by :func:`train_landmarks`, a
    predictor, or a bare landmark network. ``route`` overrides the recorded one (a run
    folder offers every route it trained; a registered model only its own, and
    ``dense68``/``head68`` from its network)."""
    from models.predictor import LandmarkPredictor

    transfer = None
    if isinstance(ref, nn.Module):
        loaded = ref
    elif _is_uri(str(ref)):
        import mlflow.pytorch

        loaded = mlflow.pytorch.load_model(str(ref), map_location="cpu")
    else:
        from models.checkpoint import load_model

        path = Path(ref)
        net = load_model(path)
        rec = _read_layout_record(path)
        if rec is None:
            layout, recorded = OutputLayout.infer(net), "dense68"
        else:
            layout, recorded = OutputLayout.from_dict(rec["layout"]), rec["route"]
            if rec.get("transfer"):
                base = path if path.is_dir() else path.parent
                transfer = load_model(base / rec["transfer"])
        return make_predictor(net, layout, route or recorded, transfer)
    if isinstance(loaded, LandmarkPredictor):
        info = dict(getattr(loaded, "layout", {}) or {})
        layout = (OutputLayout.from_dict(info) if "num_dense" in info
                  else OutputLayout.infer(loaded.net))
        recorded = info.get("route") or ("transfer" if loaded.transfer is not None else "dense68")
        if route is None or route == recorded:
            return loaded
        return make_predictor(loaded.net, layout, route, loaded.transfer)
    if getattr(loaded, "task", None) == "landmarks":
        return make_predictor(loaded, OutputLayout.infer(loaded), route or "dense68")
    raise ValueError(f"{type(loaded).__name__} is not a landmark model")


def _face_set(data: str | Path | FaceSet) -> FaceSet:
    from realdata.landmarks import read_landmark_folder

    return data if isinstance(data, FaceSet) else read_landmark_folder(data)


def _data_key(data: Any) -> str:
    """A folder's resolved path, or for an in-memory FaceSet (a split) its folder plus a
    fingerprint of its names: what the MLflow tags and the champion comparison key on."""
    if isinstance(data, str | Path):
        return str(Path(data).resolve())
    fs = getattr(data, "face_set", data)
    return f"{fs.source}#{len(fs.names)}:{_fingerprint(fs.names)}"


def _describe(ref: Any) -> str:
    return str(ref) if isinstance(ref, str | Path) else f"<in-memory {type(ref).__name__}>"


def _describe_data(data: Any, faces: RealFaces) -> str:
    if isinstance(data, str | Path):
        return str(Path(data).resolve())
    return f"{faces.face_set.source} ({len(faces)} faces, names {_fingerprint(faces.face_set.names)})"


def evaluate_landmarks_model(model_ref: str | Path | nn.Module, data: str | Path | FaceSet, *,
                             route: str | None = None, batch_size: int = 64,
                             device: str = "cpu") -> dict[str, Any]:
    """Score a landmark model on real labeled faces; returns ONE JSON-able dict.

    ``data``: a folder of images with sibling ``.pts`` files, or a FaceSet (e.g. a half
    of :func:`split_lfpw`). Faces are cropped by the shared protocol from their true
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
    pred = predictor.predict_batches(faces.nchw().to(dev), batch_size).float().cpu().numpy()
    if pred.shape[1:] != (N68, 2):
        raise ValueError(f"model predicts {pred.shape[1:]} points, not the 68 iBug points")
    original = np.stack([tf.from_crop(p) for tf, p in zip(faces.transforms, pred, strict=True)])
    res = evaluate_landmarks(original, faces.face_set.points)
    info = dict(getattr(predictor, "layout", {}) or {})
    return {"task": "landmarks", "model": _describe(model_ref), "route": info.get("route"),
            "layout": {k: v for k, v in info.items() if k != "route"},
            "data": _describe_data(data, faces), "data_kind": "real",
            "crop": {"size": size, "enlarge": float(DEFAULT_ENLARGE), "box": "true landmarks"},
            **res}


# ------------------------------------------------------------------------- benchmark helpers


class TransferredModel(NamedTuple):
    predictor: Any  # LandmarkPredictor on the "transfer" route
    fit: Any  # models.label_transfer.LabelTransferFit (errors, history, params)


def fit_transfer_on_real(model: str | Path | nn.Module, real: str | Path | FaceSet | RealFaces,
                         steps: int = 2000, seed: int = 0, **fit_kwargs: Any) -> TransferredModel:
    """Test-time label transfer: keep the trained network, fit only the label-transfer
    network from its dense predictions on real labeled faces (e.g. the train half of
    :func:`split_lfpw`) to their 68 points. ``fit_kwargs`` go to
    :func:`models.label_transfer.fit_label_transfer` (hidden, layers, lr...)."""
    from models.label_transfer import fit_label_transfer

    base = load_landmark_predictor(model)
    info = dict(getattr(base, "layout", {}) or {})
    layout = OutputLayout.from_dict(info) if "num_dense" in info else OutputLayout.infer(base.net)
    size = int(getattr(base.net, "input_size", 128))
    faces = load_real_faces(real, size)
    a, b = layout.channels("transfer")
    dev = next(base.net.parameters()).device
    dense = _coords(base.net, faces.nchw().to(dev))[:, a:b]
    fit = fit_label_transfer(dense, torch.from_numpy(faces.points).float(), steps, seed, **fit_kwargs)
    return TransferredModel(make_predictor(base.net, layout, "transfer", fit.model.to(dev)), fit)
