r"""Per-sample errors sliced by anything observable on real data, and the domain gap per slice.

The distribution update acts on *where* the model fails. On real data the scene factors
are unknown, so slices are taken over variables one can observe there: the true gaze
angles (labeled data), per-image statistics (:mod:`analysis.image_stats`: brightness,
contrast, blur, noise, ...), and for faces head pose or face size when the caller has
them. All of these are just named per-sample arrays here (:func:`observed_variables`
builds the usual dict), sliced the same way:

* :func:`slice_errors`: for each variable :math:`v` with edges
  :math:`e_0 < \dots < e_K`, slice :math:`k` holds the samples with
  :math:`e_k \le v_i < e_{k+1}` (the last slice also takes :math:`v_i = e_K`), and reports
  :math:`n_k`, the mean error :math:`\bar\epsilon_k` and its 95 % t-interval
  (:func:`analysis.gaze_eval.mean_ci95`). Default edges are the variable's quantiles
  :math:`Q(j/K)`, so every slice is populated (ties may merge slices).
* :func:`worst`: the ``k`` worst slices with at least ``min_n`` samples.
* :func:`domain_gap_by_slice`: for *unlabeled* real data, where no error exists, the
  squared MMD (:func:`analysis.domain_gap.mmd_rbf`) between the synthetic features and
  the real features of each slice: a slice far from everything synthetic is one the
  generator does not cover. One kernel bandwidth serves all slices, so their MMDs are
  comparable.

Everything returned is plain Python (floats, ints, lists, dicts, None): JSON-able as is.
Pure module: numpy/scipy only, no side effects on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis.domain_gap import as_2d, mmd_rbf, sq_dists
from analysis.gaze_eval import mean_ci95

__all__ = ["domain_gap_by_slice", "observed_variables", "slice_edges", "slice_errors", "worst"]


def slice_edges(values: Any, n_bins: int = 5) -> list[float]:
    """Quantile edges ``Q(j / n_bins)``, ``j = 0..n_bins``, of the finite values, with
    repeated edges merged (a discrete variable gets fewer, populated slices). A constant
    variable gives the single edge pair ``[v, v]``; no finite value gives ``[]``."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return []
    e = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(e) == 1:
        return [float(e[0]), float(e[0])]
    return [float(v) for v in e]


def _assign(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Slice index of each value for edges e_0..e_K: [e_k, e_k+1), last one closed;
    -1 outside [e_0, e_K] or non-finite."""
    e = np.asarray(edges, dtype=np.float64)
    if len(e) < 2 or np.any(np.diff(e) < 0) or (len(e) > 2 and np.any(np.diff(e) == 0)):
        raise ValueError(f"edges must be increasing (or one [v, v] pair), got {list(edges)}")
    k = len(e) - 1
    idx = np.clip(np.searchsorted(e, x, side="right") - 1, 0, k - 1)
    ok = np.isfinite(x) & (x >= e[0]) & (x <= e[-1])
    return np.where(ok, idx, -1)


def _slices_of(
    x: np.ndarray, edges: Sequence[float] | None, n_bins: int
) -> list[tuple[float, float, np.ndarray]]:
    """(lo, hi, boolean mask) for each non-empty slice of one variable."""
    e = slice_edges(x, n_bins) if edges is None else [float(v) for v in edges]
    if not e:
        return []
    idx = _assign(x, e)
    out = []
    for k in range(len(e) - 1):
        mask = idx == k
        if mask.any():
            out.append((e[k], e[k + 1], mask))
    return out


def _check_observed(observed: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, v in observed.items():
        a = np.asarray(v, dtype=np.float64)
        if a.shape != (n,):
            raise ValueError(f"observed {name!r} must have shape ({n},), got {a.shape}")
        out[name] = a
    return out


def slice_errors(
    errors: Any,
    observed: Mapping[str, Any],
    edges: Mapping[str, Sequence[float]] | None = None,
    n_bins: int = 5,
) -> list[dict[str, Any]]:
    """Mean per-sample error in slices of each observed variable.

    Args:
        errors: ``(N,)`` per-sample errors (e.g. angular errors in degrees, or NMEs);
            samples with a non-finite error are left out everywhere.
        observed: ``{variable: (N,) values}``; non-finite values (a head pose that could
            not be estimated) leave the sample out of that variable's slices only.
        edges: explicit slice edges for some variables (e.g. 10-degree gaze bins, as
            :func:`analysis.gaze_eval.evaluate_gaze` uses); values outside them are left
            out. Variables without explicit edges get :func:`slice_edges` quantiles.
        n_bins: number of quantile slices per variable.

    Returns:
        ``[{"variable", "lo", "hi", "n", "mean_error", "ci95"}]``, variables in the order
        of ``observed``, slices by ``lo``; empty slices are left out; ``ci95`` is
        ``None`` for a single-sample slice.
    """
    err = np.asarray(errors, dtype=np.float64).ravel()
    obs = _check_observed(observed, len(err))
    edges = dict(edges or {})
    unknown = sorted(set(edges) - set(obs))
    if unknown:
        raise ValueError(f"edges given for variables not observed: {unknown}")
    ok = np.isfinite(err)
    out: list[dict[str, Any]] = []
    for name, x in obs.items():
        x = np.where(ok, x, np.nan)
        for lo, hi, mask in _slices_of(x, edges.get(name), n_bins):
            e = err[mask]
            out.append({
                "variable": name,
                "lo": lo,
                "hi": hi,
                "n": int(len(e)),
                "mean_error": float(e.mean()),
                "ci95": mean_ci95(e),
            })
    return out


def worst(slices: Sequence[Mapping[str, Any]], k: int = 3, min_n: int = 20) -> list[dict[str, Any]]:
    """The ``k`` slices with the highest ``mean_error`` among those with ``n >= min_n``
    (small slices have wide intervals and would win by chance), worst first; ties broken
    by variable then ``lo``. Returns copies."""
    if k < 0 or min_n < 1:
        raise ValueError(f"need k >= 0 and min_n >= 1, got k={k}, min_n={min_n}")
    ok = [s for s in slices if s["n"] >= min_n]
    ok = sorted(ok, key=lambda s: (-s["mean_error"], s["variable"], s["lo"]))
    return [dict(s) for s in ok[:k]]


def observed_variables(
    *,
    images: Any = None,
    true_pitchyaw: Any = None,
    head_pose: Any = None,
    face_size: Any = None,
    stats: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The per-sample variables observable on real data, as one dict for
    :func:`slice_errors` / :func:`domain_gap_by_slice`; pass what you have.

    * ``images``: adds the statistics of :func:`analysis.image_stats.image_statistics_table`
      (``stats`` picks a subset by name).
    * ``true_pitchyaw``: ``(N, 2)`` radians -> ``gaze_pitch_deg``, ``gaze_yaw_deg``.
    * ``head_pose``: ``(N, 2)`` or ``(N, 3)`` radians (pitch, yaw[, roll]) ->
      ``head_pitch_deg``, ``head_yaw_deg`` [, ``head_roll_deg``].
    * ``face_size``: ``(N,)`` e.g. inter-ocular distance or box size in pixels ->
      ``face_size``.
    """
    out: dict[str, np.ndarray] = {}
    if true_pitchyaw is not None:
        py = np.degrees(np.asarray(true_pitchyaw, dtype=np.float64).reshape(-1, 2))
        out["gaze_pitch_deg"], out["gaze_yaw_deg"] = py[:, 0], py[:, 1]
    if head_pose is not None:
        hp = np.degrees(np.asarray(head_pose, dtype=np.float64))
        if hp.ndim != 2 or hp.shape[1] not in (2, 3):
            raise ValueError(f"head_pose must be (N, 2) or (N, 3) radians, got {hp.shape}")
        for i, name in enumerate(("head_pitch_deg", "head_yaw_deg", "head_roll_deg")[:hp.shape[1]]):
            out[name] = hp[:, i]
    if face_size is not None:
        out["face_size"] = np.asarray(face_size, dtype=np.float64).ravel()
    if images is not None:
        from analysis.image_stats import image_statistics_table

        table = image_statistics_table(images)
        for name in stats or table:
            out[name] = table[name]
    lengths = {len(v) for v in out.values()}
    if len(lengths) > 1:
        sizes = {k: len(v) for k, v in out.items()}
        raise ValueError(f"observed variables differ in length: {sizes}")
    return out


def _median_bandwidth(a: np.ndarray, b: np.ndarray, max_n: int, seed: int) -> float:
    """Median heuristic width sigma_0 = sqrt(median ||x - y||^2 / 2) over a pooled subsample,
    as :func:`analysis.domain_gap.mmd_rbf` computes it per call."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([a, b])
    if len(pooled) > max_n:
        pooled = pooled[np.sort(rng.choice(len(pooled), max_n, replace=False))]
    d = sq_dists(pooled, pooled)[np.triu_indices(len(pooled), 1)]
    med = float(np.median(d)) if len(d) else 0.0
    if med <= 0:
        med = float(d.max()) if len(d) and d.max() > 0 else 1.0
    return math.sqrt(med / 2.0)


def domain_gap_by_slice(
    syn_features: Any,
    real_features: Any,
    real_observed: Mapping[str, Any],
    edges: Mapping[str, Sequence[float]] | None = None,
    n_bins: int = 5,
    *,
    min_n: int = 10,
    max_n: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    r"""Squared MMD between all synthetic features and the real features of each slice.

    Args:
        syn_features: ``(M, D)`` features of synthetic samples (a model's embedding, or
            image statistics stacked as columns).
        real_features: ``(N, D)`` features of real samples.
        real_observed: ``{variable: (N,) values}`` to slice the real samples by.
        edges, n_bins: as in :func:`slice_errors`.
        min_n: slices with fewer real samples get ``"mmd": None`` (too noisy).
        max_n: subsample size per side for each MMD (cost is quadratic).
        seed: makes the subsampling deterministic.

    One bandwidth set for every slice, :math:`\sigma_0\{1/4, 1/2, 1, 2, 4\}` with
    :math:`\sigma_0` the median heuristic on all synthetic and real features pooled, so
    the per-slice values are on one scale (the per-call median heuristic would rescale
    each slice to its own spread).

    Returns:
        ``[{"variable", "lo", "hi", "n", "mmd"}]`` in the order of ``real_observed``,
        slices by ``lo``; the overall ``mmd`` between all synthetic and all real
        samples is the first entry, with ``variable = "all"`` and ``lo = hi = None``.
    """
    syn, real = as_2d(syn_features, "syn_features"), as_2d(real_features, "real_features")
    if syn.shape[1] != real.shape[1]:
        raise ValueError(f"feature dimensions differ: {syn.shape[1]} vs {real.shape[1]}")
    obs = _check_observed(real_observed, len(real))
    edges = dict(edges or {})
    sigma0 = _median_bandwidth(syn, real, max_n, seed)
    bw = [sigma0 * s for s in (0.25, 0.5, 1.0, 2.0, 4.0)]

    def mmd(rows: np.ndarray) -> float | None:
        if len(rows) < max(min_n, 2):
            return None
        return mmd_rbf(syn, rows, bandwidths=bw, max_n=max_n, seed=seed)

    out: list[dict[str, Any]] = [
        {"variable": "all", "lo": None, "hi": None, "n": int(len(real)), "mmd": mmd(real)}
    ]
    for name, x in obs.items():
        for lo, hi, mask in _slices_of(x, edges.get(name), n_bins):
            out.append({"variable": name, "lo": lo, "hi": hi, "n": int(mask.sum()),
                        "mmd": mmd(real[mask])})
    return out
