"""Plots people look at instead of tables: learning curves, errors by slice."""

from __future__ import annotations

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
