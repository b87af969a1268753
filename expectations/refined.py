"""Label preservation of a refined batch: the per-sample frame its extra suite reads.

A refined batch (its manifest names a ``parent``) keeps the parent's labels, so the
refiner must not have moved what the labels describe. The frame compares each refined
image with its parent image:

- gaze (suite ``refined_eyes.labels``): the label probe stored in the batch
  (``refiner/label_probe.pt``: a gaze model trained on the unrefined parent, frozen) is
  run on both images; ``label_shift_deg`` is the angle between its two answers.
- gaze refined by a patch, which adds the same pattern whatever the eye shows (suite
  ``refined_eyes.learnability``, where the batch carries ``refiner/learnability.csv``):
  the frozen probe would read the pattern itself as gaze, so instead the table of two
  fresh probes' held-out errors, one trained on the unrefined and one on the refined eyes,
  is read; ``relative_error_excess`` is how much worse the refined eyes taught each
  held-out eye's label, as a fraction of the unrefined probe's mean error (so its mean is
  the relative loss of learnability, whatever the probe's own error level).
- landmarks (suite ``refined_faces.labels``): no model; around every visible 68-point
  landmark, the 9x9 window of gradient magnitude in the refined image is correlated with
  the parent's (normalised cross-correlation); ``landmark_structure_ncc`` is the mean over
  the landmarks. Texture and colour may change; an edge that moved off its landmark (a
  lid, a lip line, the jaw) lowers it.

Anything that stops the comparison (the parent folder gone, a different batch there, no
probe) is a validation failure naming the problem, not a crash and not a pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from realdata.errors import DataFormatError, first_line
from synth.shards import BatchReader

__all__ = ["LEARNABILITY_FILE", "PROBE_FILE", "LabelCheckUnavailable", "face_structure_frame",
           "gaze_label_shift_frame", "label_check_summary", "landmark_window_ncc",
           "learnability_frame", "open_parent"]

PROBE_FILE = "refiner/label_probe.pt"
LEARNABILITY_FILE = "refiner/learnability.csv"
_LEARNABILITY_COLUMNS = ("sample", "parent_error_deg", "refined_error_deg")


class LabelCheckUnavailable(Exception):
    """The label check of a refined batch cannot run; the message says why."""


def open_parent(reader: BatchReader) -> BatchReader:
    """The parent batch the manifest names, checked to be that batch and the same size."""
    parent = reader.manifest["parent"]
    try:
        p = BatchReader(parent["path"])
    except DataFormatError as e:
        raise LabelCheckUnavailable(f"parent batch {parent['batch_id']}: {e}") from None
    if p.batch_id != parent["batch_id"]:
        raise LabelCheckUnavailable(f"parent folder {parent['path']} now holds batch {p.batch_id}, "
                                    f"not {parent['batch_id']}")
    if p.n != reader.n or p.image_shape != reader.image_shape:
        raise LabelCheckUnavailable(f"parent batch {p.batch_id} has {p.n} images of "
                                    f"{p.image_shape}, this batch {reader.n} of {reader.image_shape}")
    return p


def gaze_label_shift_frame(reader: BatchReader, chunk: int = 1024) -> pd.DataFrame:
    """``sample, label_shift_deg``: the probe's answer on the refined image vs the parent's."""
    import torch

    from analysis.gaze_eval import angular_errors_deg
    from models.registry import load_model

    parent = open_parent(reader)
    probe_path = reader.path / PROBE_FILE
    if PROBE_FILE not in reader.extra_files:
        raise LabelCheckUnavailable(f"{PROBE_FILE} is not among the batch's files")
    probe = load_model(probe_path).eval()  # weights only
    shifts = []
    with torch.no_grad():
        for i in range(0, reader.n, chunk):
            idx = np.arange(i, min(i + chunk, reader.n))
            a = probe(torch.from_numpy(parent.images(idx)).unsqueeze(1)).pitchyaw
            b = probe(torch.from_numpy(reader.images(idx)).unsqueeze(1)).pitchyaw
            shifts.append(angular_errors_deg(b.numpy(), a.numpy()))
    return pd.DataFrame({"sample": np.arange(reader.n, dtype=np.int64),
                         "label_shift_deg": np.concatenate(shifts).astype(np.float64)})


def learnability_frame(reader: BatchReader) -> pd.DataFrame:
    """``sample, relative_error_excess``: the refined-eye probe's held-out error minus the
    unrefined-eye probe's, per held-out eye, over the unrefined probe's mean error, from
    the batch's learnability table."""
    path = reader.path / LEARNABILITY_FILE
    if LEARNABILITY_FILE not in reader.extra_files or not path.is_file():
        raise LabelCheckUnavailable(f"{LEARNABILITY_FILE} is not among the batch's files")
    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise LabelCheckUnavailable(f"{path}: not a readable CSV table ({first_line(e)})") from None
    missing = [c for c in _LEARNABILITY_COLUMNS if c not in table.columns]
    if missing or table.empty:
        raise LabelCheckUnavailable(f"{path}: needs rows with columns {', '.join(_LEARNABILITY_COLUMNS)}"
                                    + (f" (missing {', '.join(missing)})" if missing else ""))
    try:
        values = table[list(_LEARNABILITY_COLUMNS)].to_numpy(np.float64)
    except ValueError:
        raise LabelCheckUnavailable(f"{path}: holds values that are not numbers") from None
    sample = values[:, 0]
    if not np.isfinite(values).all() or (values[:, 1:] < 0).any() or values[:, 1].mean() <= 0:
        raise LabelCheckUnavailable(f"{path}: errors must be finite and >= 0 deg, the "
                                    "unrefined probe's not all 0")
    if (sample != np.round(sample)).any() or sample.min() < 0 or sample.max() >= reader.n \
            or len(np.unique(sample)) != len(sample):
        raise LabelCheckUnavailable(f"{path}: samples must be distinct indices of the "
                                    f"batch's {reader.n} images")
    return pd.DataFrame({"sample": sample.astype(np.int64),
                         "relative_error_excess": (values[:, 2] - values[:, 1]) / values[:, 1].mean()})


WINDOW = 4  # half-size of the landmark windows (9x9)


def _gradient_magnitude(images: np.ndarray) -> np.ndarray:
    g = images.astype(np.float32).mean(-1) if images.ndim == 4 else images.astype(np.float32)
    gy, gx = np.gradient(g, axis=(1, 2))
    return np.hypot(gx, gy)


def landmark_window_ncc(a: np.ndarray, b: np.ndarray, points: np.ndarray,
                        visible: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Per image, the mean normalised cross-correlation of gradient-magnitude windows
    (``2 window + 1`` px square) around its visible points; windows flat in both images
    count as 1 (nothing to move)."""
    ga, gb = _gradient_magnitude(a), _gradient_magnitude(b)
    n, h, w = ga.shape
    off = np.arange(-window, window + 1)
    ys = np.clip(np.rint(points[..., 1]).astype(int), window, h - 1 - window)
    xs = np.clip(np.rint(points[..., 0]).astype(int), window, w - 1 - window)
    rows = ys[:, :, None, None] + off[None, None, :, None]
    cols = xs[:, :, None, None] + off[None, None, None, :]
    idx = np.arange(n)[:, None, None, None]
    wa = ga[idx, rows, cols].reshape(n, points.shape[1], -1)
    wb = gb[idx, rows, cols].reshape(n, points.shape[1], -1)
    wa = wa - wa.mean(-1, keepdims=True)
    wb = wb - wb.mean(-1, keepdims=True)
    na, nb = np.sqrt((wa * wa).sum(-1)), np.sqrt((wb * wb).sum(-1))
    flat_a, flat_b = na < 1e-3, nb < 1e-3
    ncc = (wa * wb).sum(-1) / np.maximum(na * nb, 1e-12)
    ncc = np.where(flat_a & flat_b, 1.0, np.where(flat_a | flat_b, 0.0, ncc))
    vis = visible.astype(bool)
    return np.where(vis.any(1), (ncc * vis).sum(1) / np.maximum(vis.sum(1), 1), 1.0)


def face_structure_frame(reader: BatchReader, chunk: int = 512) -> pd.DataFrame:
    """``sample, landmark_structure_ncc``: refined vs parent around the 68 points."""
    from synth.generate_faces import read_face_labels

    parent = open_parent(reader)
    labels = read_face_labels(reader.path, verify=False)  # the child's copy = the parent's
    out = []
    for i in range(0, reader.n, chunk):
        idx = np.arange(i, min(i + chunk, reader.n))
        out.append(landmark_window_ncc(parent.images(idx), reader.images(idx),
                                       np.asarray(labels["points68"][idx]),
                                       np.asarray(labels["visible68"][idx])))
    return pd.DataFrame({"sample": np.arange(reader.n, dtype=np.int64),
                         "landmark_structure_ncc": np.concatenate(out).astype(np.float64)})


def label_check_summary(frame: pd.DataFrame) -> dict[str, float]:
    """The label check's column (a shift or a correlation) with its mean, 95th
    percentile and maximum."""
    col = next(c for c in frame.columns if c != "sample")
    x = frame[col].to_numpy()
    return {"column": col, "mean": float(x.mean()), "p95": float(np.percentile(x, 95)),
            "max": float(x.max())}
