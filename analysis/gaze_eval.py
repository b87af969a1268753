"""Gaze evaluation: overall angular error plus errors per slice of the true gaze angle.

The slices are what the feedback loop acts on: a bin of true pitch or yaw where the model
is much worse than average is a region of label space the synthetic distribution should
cover better (``worst_slices`` -> ``SceneDistribution.reweight``).

Angles are (pitch, yaw) in radians, MPIIGaze convention (DESIGN.md); the error is the
angle between the predicted and true 3D gaze vectors, in degrees, as
:func:`models.da_losses.angular_error_deg` computes it (here in numpy, float64).
Everything returned is plain Python (floats, ints, lists, dicts, None): ``json.dumps``
takes it as is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["angular_errors_deg", "evaluate_gaze", "mean_ci95", "worst_slices"]

AXES = ("pitch", "yaw")


def _pitchyaw(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1 and a.shape == (2,):
        a = a[None]
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) (pitch, yaw) radians, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values")
    return a


def _vectors(py: np.ndarray) -> np.ndarray:
    p, y = py[:, 0], py[:, 1]
    return np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], 1)


def angular_errors_deg(pred_pitchyaw: Any, true_pitchyaw: Any) -> np.ndarray:
    """Per-sample angle (degrees) between predicted and true gaze vectors,
    ``acos(g_pred . g_true)`` with ``g = (-cos p sin y, -sin p, -cos p cos y)``."""
    pred, true = _pitchyaw(pred_pitchyaw, "pred_pitchyaw"), _pitchyaw(true_pitchyaw, "true_pitchyaw")
    if pred.shape != true.shape:
        raise ValueError(f"pred and true shapes differ: {pred.shape} vs {true.shape}")
    cos = np.sum(_vectors(pred) * _vectors(true), 1)  # both unit vectors
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def mean_ci95(x: np.ndarray) -> list[float] | None:
    r"""Two-sided 95 % t-interval of the mean, :math:`\bar x \pm t_{0.975,\,n-1}\, s/\sqrt n`
    (``s`` the sample standard deviation), lower end clipped at 0 since errors are
    non-negative. Deterministic (no resampling). ``None`` when ``n < 2``."""
    from scipy.stats import t as student_t

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return None
    m = float(x.mean())
    half = float(student_t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return [max(m - half, 0.0), m + half]


def evaluate_gaze(pred_pitchyaw: Any, true_pitchyaw: Any, *, slice_deg: float = 10.0,
                  groups: Any = None, slice_by: dict[str, Any] | None = None) -> dict[str, Any]:
    """Angular-error summary, bias and spread, per-slice errors and, given the people,
    per-person errors.

    Args:
        pred_pitchyaw, true_pitchyaw: ``(N, 2)`` radians (numpy, lists or tensors).
        slice_deg: width of the slices of the TRUE pitch and yaw, in degrees. Slices
            are aligned to multiples of the width: a true angle ``a`` (degrees) falls in
            ``[lo, lo + slice_deg)`` with ``lo = floor(a / slice_deg) * slice_deg``.
        groups: the person of each sample (or None). Samples of one person are
            correlated, so the error's interval that holds for the next person is the one
            over per-person means (``subject_ci95``), not over samples.
        slice_by: further variables to slice by, ``{name: (N,) values}`` (e.g. head pose
            in degrees); each value is its own slice when there are at most 12 distinct
            ones, else slices are ``slice_deg`` wide.

    Returns:
        ``{"n", "mean_angular_error_deg", "median_angular_error_deg", "p90", "ci95",
        "bias_deg", "spread_deg", "slice_deg", "slices"}``, where ``p90`` is the 90th
        percentile of the errors (degrees), ``ci95`` the t-interval of the mean
        (:func:`mean_ci95`), ``bias_deg`` the mean signed error of pitch and of yaw
        (prediction minus truth) and ``spread_deg`` their standard deviations, ``gain``
        the least-squares slope of predicted on true pitch and on yaw (1: the answer
        follows a change of the angle in full; below 1 it shrinks toward a constant;
        None where the true angle does not vary), and
        ``slices`` a list of ``{"axis", "lo_deg", "hi_deg", "n", "mean_error_deg",
        "ci95"}`` ordered by axis (pitch, yaw, then ``slice_by``) then ``lo_deg``;
        empty slices are left out. ``recalibrated_deg``: the error left after the best
        gain and offset per angle, fitted with these labels (a bound on what
        recalibrating the outputs can buy, not a method). With ``groups``: ``subjects``
        (``[{"subject", "n", "mean_error_deg", "bias_deg"}]``), ``n_subjects``,
        ``subject_mean_deg`` (the mean of per-person means), ``subject_ci95`` (the
        t-interval over them) and ``subject_offsets_removed_deg`` (the error left after
        removing each person's mean signed error: the bound of a per-person offset).
    """
    if not (slice_deg > 0 and math.isfinite(slice_deg)):
        raise ValueError(f"slice_deg must be positive, got {slice_deg}")
    err = angular_errors_deg(pred_pitchyaw, true_pitchyaw)
    if len(err) == 0:
        raise ValueError("no samples to evaluate")
    true_deg = np.degrees(_pitchyaw(true_pitchyaw, "true_pitchyaw"))
    pred_deg = np.degrees(_pitchyaw(pred_pitchyaw, "pred_pitchyaw"))
    signed = pred_deg - true_deg
    variables = {axis: true_deg[:, i] for i, axis in enumerate(AXES)}
    for name, values in (slice_by or {}).items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != err.shape:
            raise ValueError(f"slice_by[{name!r}] must be ({len(err)},), got {v.shape}")
        variables[name] = v
    slices: list[dict[str, Any]] = []
    for axis, values in variables.items():
        slices += _slices(axis, values, err, slice_deg, discrete=axis not in AXES)
    out = {
        "n": int(len(err)),
        "mean_angular_error_deg": float(err.mean()),
        "median_angular_error_deg": float(np.median(err)),
        "p90": float(np.percentile(err, 90)),
        "ci95": mean_ci95(err),
        "bias_deg": {axis: float(signed[:, i].mean()) for i, axis in enumerate(AXES)},
        "spread_deg": {axis: float(signed[:, i].std()) for i, axis in enumerate(AXES)},
        "gain": {axis: _gain(true_deg[:, i], pred_deg[:, i]) for i, axis in enumerate(AXES)},
        "slice_deg": float(slice_deg),
        "slices": slices,
        "recalibrated_deg": _recalibrated_error(pred_deg, true_deg),
    }
    if groups is not None:
        out.update(_per_subject(err, pred_deg, true_deg, groups))
    return out


def _mean_error_deg(pred_deg: np.ndarray, true_deg: np.ndarray) -> float:
    return float(angular_errors_deg(np.radians(pred_deg), np.radians(true_deg)).mean())


def _recalibrated_error(pred_deg: np.ndarray, true_deg: np.ndarray) -> float:
    """Mean angular error after the least-squares affine map (gain and offset) of each
    predicted angle onto the true one, fitted on these very samples (least squares per
    angle, so a bound in the squared error and close to one in the mean angle): about
    the best a scale and an offset of the outputs can do. When it is close to the error
    itself, the error is noise in the predictions, not a calibration to fix."""
    fitted = np.empty_like(pred_deg)
    for i in range(2):
        design = np.stack([pred_deg[:, i], np.ones(len(pred_deg))], 1)
        coef, *_ = np.linalg.lstsq(design, true_deg[:, i], rcond=None)
        fitted[:, i] = design @ coef
    return _mean_error_deg(fitted, true_deg)


def _gain(true: np.ndarray, pred: np.ndarray) -> float | None:
    var = float(np.var(true))
    if var < 1e-12:
        return None
    return float(np.mean((true - true.mean()) * (pred - pred.mean())) / var)


def _slices(axis: str, values: np.ndarray, err: np.ndarray, width: float,
            discrete: bool) -> list[dict[str, Any]]:
    distinct = np.unique(values)
    if discrete and len(distinct) <= 12:
        bins = [(v, v, values == v) for v in distinct]
    else:
        # tiny tolerance so that e.g. 10 deg given as radians lands in [10, 20), not [0, 10)
        idx = np.floor(values / width + 1e-9).astype(np.int64)
        bins = [(b * width, (b + 1) * width, idx == b) for b in np.unique(idx)]
    return [{"axis": axis, "lo_deg": float(lo), "hi_deg": float(hi), "n": int(mask.sum()),
             "mean_error_deg": float(err[mask].mean()), "ci95": mean_ci95(err[mask])}
            for lo, hi, mask in bins]


def _per_subject(err: np.ndarray, pred_deg: np.ndarray, true_deg: np.ndarray,
                 groups: Any) -> dict[str, Any]:
    """Per-person errors and biases; ``subject_offsets_removed_deg`` is the error left
    after taking each person's bias off their answers: about the best a per-person
    offset (a one-point calibration per user) could reach, exactly so in the squared
    error."""
    names = np.asarray([str(g) for g in groups])
    if names.shape != err.shape:
        raise ValueError(f"groups must name one person per sample ({len(err)}), got {names.shape}")
    signed = pred_deg - true_deg
    offset = np.empty_like(signed)
    rows = []
    for g in np.unique(names):
        m = names == g
        offset[m] = signed[m].mean(0)
        rows.append({"subject": str(g), "n": int(m.sum()), "mean_error_deg": float(err[m].mean()),
                     "bias_deg": {axis: float(offset[m][0, i]) for i, axis in enumerate(AXES)}})
    means = np.array([r["mean_error_deg"] for r in rows])
    return {"subjects": rows, "n_subjects": len(rows), "subject_mean_deg": float(means.mean()),
            "subject_ci95": mean_ci95(means),
            "subject_offsets_removed_deg": _mean_error_deg(pred_deg - offset, true_deg)}


def worst_slices(result: dict[str, Any], k: int = 3, min_n: int = 20) -> list[dict[str, Any]]:
    """The ``k`` slices with the highest mean error among those with at least ``min_n``
    samples (small slices have wide intervals and would dominate by chance), worst
    first; ties broken by axis then ``lo_deg``. Returns copies."""
    if k < 0 or min_n < 1:
        raise ValueError(f"need k >= 0 and min_n >= 1, got k={k}, min_n={min_n}")
    ok = [s for s in result["slices"] if s["n"] >= min_n]
    ok.sort(key=lambda s: (-s["mean_error_deg"], s["axis"], s["lo_deg"]))
    return [dict(s) for s in ok[:k]]
