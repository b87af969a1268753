"""The tables Great Expectations validates, built from a batch with pandas and numpy only.

``sample_frame``: one row per sample, the batch metadata plus statistics of each image
(blank, saturated, duplicated and noise-like images show up here). ``coverage_frame``:
one row per scene factor, how well the samples match the distribution the manifest names.

This module does not import great_expectations (it is slow to import and the frames are
useful without it, e.g. in notebooks and in the distribution-update analysis).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from synth.distribution import Factor, coverage_pvalues
from synth.shards import BatchReader

#: Pixel values at or below / at or above these count as crushed blacks / blown highlights.
DARK_LEVEL = 5
BRIGHT_LEVEL = 250
#: 16 bytes = 128 bits: collisions between distinct images are out of reach, and the hex
#: strings stay short (32 chars) in a 50k-row frame.
HASH_BYTES = 16

IMAGE_STAT_COLUMNS = ("img_mean", "img_std", "frac_dark", "frac_bright", "img_roughness",
                      "image_hash")  # the hash last: the others are numbers
COVERAGE_COLUMNS = ("factor", "p_value", "n_out_of_support", "tv_distance")


def image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics of a uint8 array (k, H, W) or (k, H, W, C), vectorised."""
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    k = len(images)
    flat = np.ascontiguousarray(images).reshape(k, -1)
    npx = flat.shape[1]
    # Integer sums are exact; float64 only for the final moments (no cancellation issue
    # at 8-bit depth: sum of squares < 2**53 for any realistic patch).
    s1 = flat.sum(axis=1, dtype=np.int64)
    sq = flat.astype(np.uint16)
    sq *= sq  # 255**2 fits in uint16
    s2 = sq.sum(axis=1, dtype=np.int64)
    mean = s1 / npx
    var = np.maximum(s2 / npx - mean * mean, 0.0)
    return {
        "img_mean": mean.astype(np.float64),
        "img_std": np.sqrt(var),
        "frac_dark": np.count_nonzero(flat <= DARK_LEVEL, axis=1) / npx,
        "frac_bright": np.count_nonzero(flat >= BRIGHT_LEVEL, axis=1) / npx,
        "img_roughness": roughness(images),
        "image_hash": np.array(
            [hashlib.blake2b(row, digest_size=HASH_BYTES).hexdigest() for row in flat], dtype=object),
    }


def roughness(images: np.ndarray) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels (right and below, every
    channel), in pixel units: how far an image is from smooth. Rendered scenes are mostly
    smooth (eye patches average ~14, histogram-equalised noisy ones reach ~60; faces ~4),
    uniform random bytes average 85: a shard of noise with a repaired checksum is not a
    batch of images. 0 for an image without neighbours (1 x 1)."""
    x = np.asarray(images)
    x = x if x.ndim == 4 else x[..., None]  # (k, H, W, C)
    total = np.zeros(len(x), dtype=np.int64)
    pairs = 0
    for axis in (1, 2):
        if x.shape[axis] > 1 and len(x):
            d = np.abs(np.diff(x.astype(np.int16), axis=axis))
            total += d.reshape(len(x), -1).sum(axis=1, dtype=np.int64)
            pairs += d[0].size
    return total / pairs if pairs else np.zeros(len(x))


def sample_frame(reader: BatchReader, chunk: int = 4096) -> pd.DataFrame:
    """The batch metadata (one row per sample) plus ``img_mean``, ``img_std`` (pixel units,
    0-255), ``frac_dark`` (pixels <= 5), ``frac_bright`` (>= 250), ``img_roughness``
    (:func:`roughness`) and ``image_hash`` (blake2b of the image bytes, hex)."""
    meta = reader.metadata.reset_index(drop=True)
    parts: list[dict[str, np.ndarray]] = [image_stats(imgs) for imgs in reader.iter_images(chunk)]
    stats = {c: np.concatenate([p[c] for p in parts]) if parts else np.empty(0) for c in IMAGE_STAT_COLUMNS}
    if len(stats["img_mean"]) != len(meta):  # BatchReader already checks both against n
        raise AssertionError(f"{len(stats['img_mean'])} images but {len(meta)} metadata rows")
    clash = [c for c in IMAGE_STAT_COLUMNS if c in meta.columns]
    if clash:
        meta = meta.drop(columns=clash)
    out = meta.assign(**{c: stats[c] for c in IMAGE_STAT_COLUMNS[:-1]})
    out["image_hash"] = pd.array(stats["image_hash"], dtype="str")
    return out


def float32_tolerance(value: float) -> float:
    """One float32 ulp at ``value``: the metadata table stores factors as float32, so a value
    drawn just inside a support edge can round to just outside it (about 3 % of 50k-sample
    batches of the default eye distribution would otherwise show one such value)."""
    return float(np.spacing(np.abs(np.float32(value))))


def snap_to_support(factor: Factor, x: np.ndarray) -> np.ndarray:
    """Undo float32 storage rounding: values within one float32 ulp of a support edge (or of
    an allowed categorical value) are moved onto it; everything else is left as it is."""
    x = np.asarray(x, dtype=np.float64).copy()
    if factor.kind == "continuous":
        lo, hi = factor.support
        x = np.where((x < lo) & (x >= lo - float32_tolerance(lo)), lo, x)
        return np.where((x > hi) & (x <= hi + float32_tolerance(hi)), hi, x)
    for v in factor.values:
        x = np.where(np.abs(x - v) <= float32_tolerance(v), v, x)
    return x


def coverage_frame(reader: BatchReader, meta: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per factor of the batch's distribution: ``p_value`` (chi-square goodness of
    fit of the bin histogram against the bin probabilities), ``n_out_of_support`` (values
    outside the support or not an allowed categorical value, NaN included) and
    ``tv_distance`` (total variation between empirical and expected bin frequencies, with
    out-of-support values as an extra bin of expected mass 0).

    A factor column missing from the metadata gives p_value 0 and every sample out of support.
    """
    dist = reader.distribution
    meta = reader.metadata if meta is None else meta
    n = len(meta)
    samples: dict[str, np.ndarray] = {}
    rows = []
    for f in dist.factors:
        if f.name not in meta.columns:
            rows.append((f.name, n, 1.0))
            continue
        x = snap_to_support(f, meta[f.name].to_numpy(dtype=np.float64, na_value=np.nan))
        samples[f.name] = x
        idx = f.bin_index(x)
        n_out = int(np.count_nonzero(idx < 0))
        counts = np.bincount(idx[idx >= 0], minlength=f.n_bins)
        tv = 0.5 * (np.abs(counts / n - np.asarray(f.weights)).sum() + n_out / n) if n else np.nan
        rows.append((f.name, n_out, float(tv)))
    # A missing column stands in as one NaN: coverage_pvalues gives it p = 0.
    pvals = coverage_pvalues(dist, {f.name: samples.get(f.name, np.array([np.nan]))
                                    for f in dist.factors})
    return pd.DataFrame({
        "factor": pd.array([r[0] for r in rows], dtype="str"),
        "p_value": np.array([pvals[r[0]] for r in rows], dtype=np.float64),
        "n_out_of_support": np.array([r[1] for r in rows], dtype=np.int64),
        "tv_distance": np.array([r[2] for r in rows], dtype=np.float64),
    })
