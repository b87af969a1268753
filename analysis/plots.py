"""Plots people look at instead of tables: learning curves, errors by slice, how a
distribution update moved bin weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from synth.preview import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: Sequence[dict], out: str | Path, keys: Sequence[str] | None = None,
                    title: str = "") -> Path:
    """One panel per metric present in ``history`` (a list of {step, metric: value})."""
    plt = _plt()
    keys = list(keys or sorted({k for h in history for k in h if k != "step"}))
    keys = [k for k in keys if any(k in h for h in history)]
    cols = min(3, max(1, len(keys)))
    rows = (len(keys) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, k in zip(axes.flat, keys, strict=False):
        pts = [(h["step"], h[k]) for h in history if k in h and h[k] is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, lw=1.2)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def slice_errors(result: dict, out: str | Path, title: str = "") -> Path:
    """Bar charts of mean angular error (with 95% CI) per true-pitch and true-yaw slice,
    from ``analysis.gaze_eval.evaluate_gaze`` output."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), squeeze=False)
    for ax, axis in zip(axes[0], ("pitch", "yaw"), strict=True):
        sl = [s for s in result.get("slices", []) if s["axis"] == axis]
        if sl:
            x = [0.5 * (s["lo_deg"] + s["hi_deg"]) for s in sl]
            y = [s["mean_error_deg"] for s in sl]
            lo = [s["mean_error_deg"] - s["ci95"][0] for s in sl]
            hi = [s["ci95"][1] - s["mean_error_deg"] for s in sl]
            w = 0.8 * (sl[0]["hi_deg"] - sl[0]["lo_deg"])
            ax.bar(x, y, width=w, yerr=[lo, hi], capsize=2, color="#4c72b0")
            for xi, s in zip(x, sl, strict=True):
                ax.text(xi, 0, str(s["n"]), ha="center", va="bottom", fontsize=6, color="white")
        ax.set_xlabel(f"true {axis} (deg)")
        ax.set_ylabel("mean angular error (deg)")
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def _factor_axis(f) -> tuple[list[float], list[float], list[str] | None]:
    """x positions, bar widths and (categorical) tick labels of a factor's bins; angles
    (unit ``rad``) in degrees, which people read at a glance."""
    if f.kind == "continuous":
        scale = 180.0 / math.pi if f.unit == "rad" else 1.0
        e = [scale * v for v in f.edges]
        return [0.5 * (a + b) for a, b in zip(e[:-1], e[1:], strict=True)], \
            [b - a for a, b in zip(e[:-1], e[1:], strict=True)], None
    return list(range(f.n_bins)), [1.0] * f.n_bins, [f"{v:g}" for v in f.values]


def distribution_change(before, after, factors: Sequence[str] | None = None,
                        path: str | Path | None = None, title: str = ""):
    """Old vs new bin weights, one small bar panel per factor (bins at their midpoints;
    categorical values side by side), the total variation moved in each panel's title.

    ``before``/``after`` are :class:`synth.distribution.SceneDistribution` versions with
    the same factors; ``factors`` defaults to those whose weights differ (all if none).
    Returns the matplotlib Figure; with ``path`` it is also saved (and closed)."""
    import numpy as np

    plt = _plt()
    if factors is None:
        factors = [f.name for f in before.factors
                   if f.weights != after.factor(f.name).weights] or list(before.factor_names)
    factors = list(factors)
    cols = min(4, max(1, len(factors)))
    rows = max(1, -(-len(factors) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.5 * rows), squeeze=False)
    for ax, name in zip(axes.flat, factors, strict=False):
        f0, f1 = before.factor(name), after.factor(name)
        x, w, labels = _factor_axis(f0)
        x, w = np.asarray(x), 0.4 * np.asarray(w)
        ax.bar(x - w / 2, f0.weights, width=w, color="#9aa7b8", label="before")
        ax.bar(x + w / 2, f1.weights, width=w, color="#c44e52", label="after")
        if labels is not None:
            ax.set_xticks(x, labels)
        tv = 0.5 * float(np.abs(np.subtract(f0.weights, f1.weights)).sum())
        ax.set_title(f"{name} (TV {tv:.3f})", fontsize=9)
        ax.set_xlabel("deg" if f0.unit == "rad" else (f0.unit or "value"), fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(factors):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def slice_error_bars(slices: Sequence[dict], path: str | Path | None = None, title: str = "",
                     ylabel: str = "mean error"):
    """Mean error with its 95 % interval per slice, one panel per variable, the slice's
    sample count on each bar; ``slices`` as :func:`analysis.slices.slice_errors` returns
    them (the gaze-only :func:`slice_errors` above reads ``evaluate_gaze`` output).
    Returns the matplotlib Figure; with ``path`` it is also saved (and closed)."""
    import numpy as np

    plt = _plt()
    variables = list(dict.fromkeys(s["variable"] for s in slices)) or ["(no slices)"]
    cols = min(3, len(variables))
    rows = -(-len(variables) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, var in zip(axes.flat, variables, strict=False):
        ss = [s for s in slices if s["variable"] == var]
        x = np.arange(len(ss))
        m = np.array([s["mean_error"] for s in ss], dtype=float)
        ci = [s["ci95"] or [v, v] for s, v in zip(ss, m, strict=True)]
        lo = np.array([c[0] for c in ci], dtype=float)
        hi = np.array([c[1] for c in ci], dtype=float)
        ax.bar(x, m, color="#4c72b0")
        if len(ss):
            ax.errorbar(x, m, yerr=[m - lo, hi - m], fmt="none", ecolor="k", capsize=2, lw=0.8)
        for xi, s in zip(x, ss, strict=True):
            ax.text(xi, 0, str(s["n"]), ha="center", va="bottom", fontsize=6, color="white")
        ax.set_xticks(x, [f"{s['lo']:.3g}..{s['hi']:.3g}" for s in ss], rotation=45, fontsize=6)
        ax.set_title(var, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(variables):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def tuning_history(trials: Sequence[dict], direction: str, path: str | Path | None = None,
                   title: str = "", ylabel: str = "objective"):
    """Objective per trial (pruned trials as grey crosses at their last reported value)
    and the best value so far over the completed ones; ``trials`` as
    ``[{"number", "state", "value"}]`` in any order, ``direction`` ``minimize`` or
    ``maximize``."""
    plt = _plt()
    rows = sorted(trials, key=lambda t: t["number"])
    done = [t for t in rows if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in rows if t["state"] == "PRUNED" and t["value"] is not None]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if done:
        ax.plot([t["number"] for t in done], [t["value"] for t in done], "o", color="#4c72b0",
                label="trial")
        pick = min if direction == "minimize" else max
        best, xs, ys = None, [], []
        for t in done:
            best = t["value"] if best is None else pick(best, t["value"])
            xs.append(t["number"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="#c44e52", lw=2, label="best so far")
    if pruned:
        ax.plot([t["number"] for t in pruned], [t["value"] for t in pruned], "x", color="#999999",
                label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def loop_error_curve(rounds: Sequence[dict], path: str | Path, title: str, unit: str = "deg") -> Path:
    """Held-out real error per round of a feedback loop (``[{"round", "real_error"}]``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ks = [r["round"] for r in rounds]
    ax.plot(ks, [r["real_error"] for r in rounds], "o-")
    ax.set_xlabel("round")
    ax.set_ylabel(f"held-out real error ({unit})")
    ax.set_xticks(ks)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=110)
