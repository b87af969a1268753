"""The per-sample table Great Expectations validates for a face (``landmarks``) batch.

``face_sample_frame`` is :func:`expectations.frame.sample_frame` (metadata + image
statistics) plus statistics of each sample's landmark labels, so every label check is a
plain column expectation in ``suites/face_batch.samples.json``:

- ``vis68_frac``: fraction of the 68 points marked visible;
- ``labels_n_visible68``: the same count from the label arrays (must equal the
  metadata's ``n_visible68``: labels and table describe the same sample);
- ``vis68_x_min`` ... ``vis68_y_max``: extent of the visible 68 points in crop pixels
  (NaN when none is visible: there is nothing to place);
- ``dense_outside_crop``: visible dense points whose pixel is not in the crop (the
  renderer only marks a point visible when ``floor(x + 0.5)`` is a pixel of the crop);
- ``visible_nonfinite``: visible points (68 and dense) with a NaN or infinite coordinate.

Coverage of pose and factors needs nothing face-specific: ``coverage_frame`` works on any
batch's metadata and distribution. Like ``frame.py``, no great_expectations import here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from expectations.frame import sample_frame
from realdata.errors import DataFormatError
from synth.generate_faces import LANDMARKS, read_face_labels
from synth.shards import BatchReader

LANDMARK_STAT_COLUMNS = ("vis68_frac", "labels_n_visible68", "vis68_x_min", "vis68_x_max",
                         "vis68_y_min", "vis68_y_max", "dense_outside_crop", "visible_nonfinite")


def _dense_sets(labels: dict[str, np.ndarray]) -> list[str]:
    return sorted(k[: -len("_visible")] for k in labels
                  if k.endswith("_visible") and k != "visible68" and k[: -len("_visible")] in labels)


def landmark_stats(labels: dict[str, np.ndarray], height: int, width: int,
                   rows: slice = slice(None)) -> dict[str, np.ndarray]:
    """The landmark columns for ``rows`` of the label arrays (``read_face_labels``)."""
    p = np.asarray(labels["points68"][rows], dtype=np.float64)
    v = np.asarray(labels["visible68"][rows], dtype=bool)
    k = len(v)
    finite = np.isfinite(p).all(-1)
    placed = v & finite
    out: dict[str, np.ndarray] = {
        "vis68_frac": v.mean(1) if v.shape[1] else np.zeros(k),
        "labels_n_visible68": v.sum(1).astype(np.int64),
        "visible_nonfinite": (v & ~finite).sum(1).astype(np.int64),
        "dense_outside_crop": np.zeros(k, dtype=np.int64),
    }
    any_placed = placed.any(1)
    for axis, name in ((0, "x"), (1, "y")):
        c = p[..., axis]
        lo = np.where(placed, c, np.inf).min(1)
        hi = np.where(placed, c, -np.inf).max(1)
        out[f"vis68_{name}_min"] = np.where(any_placed, lo, np.nan)
        out[f"vis68_{name}_max"] = np.where(any_placed, hi, np.nan)
    for s in _dense_sets(labels):
        d = np.asarray(labels[s][rows], dtype=np.float64)
        dv = np.asarray(labels[f"{s}_visible"][rows], dtype=bool)
        ok = np.isfinite(d).all(-1)
        out["visible_nonfinite"] += (dv & ~ok).sum(1)
        px = np.floor(np.where(ok[..., None], d, 0.0) + 0.5)
        inside = (px[..., 0] >= 0) & (px[..., 0] < width) & (px[..., 1] >= 0) & (px[..., 1] < height)
        out["dense_outside_crop"] += (dv & ok & ~inside).sum(1)
    return out


def face_sample_frame(reader: BatchReader, chunk: int = 4096) -> pd.DataFrame:
    """``sample_frame`` plus the landmark columns (see the module docstring). Labels are
    memory-mapped and summarised ``chunk`` rows at a time. Label arrays that do not hold
    one row per sample raise DataFormatError naming the file."""
    frame = sample_frame(reader, chunk)
    # BatchReader(verify=True) has checked the landmark files already when the manifest
    # lists them; a batch written before it did gets checked against landmarks.json.
    labels = read_face_labels(reader.path, verify=LANDMARKS not in reader.extra_files)
    for name in ("points68", "visible68"):
        if name not in labels:
            raise DataFormatError(reader.path / LANDMARKS, f"lists no {name!r} array")
    for name, arr in labels.items():
        if not name.endswith(("_vertex_ids", "_mirror")) and len(arr) != reader.n:
            raise DataFormatError(reader.path / "landmarks" / f"{name}.npy",
                                  f"{len(arr)} rows, the manifest says {reader.n} samples")
    h, w = reader.image_shape[:2]
    parts = [landmark_stats(labels, h, w, slice(i, i + chunk)) for i in range(0, reader.n, chunk)]
    stats = {c: np.concatenate([q[c] for q in parts]) for c in LANDMARK_STAT_COLUMNS}
    frame = frame.drop(columns=[c for c in LANDMARK_STAT_COLUMNS if c in frame.columns])
    return frame.assign(**stats)
