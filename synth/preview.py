"""Sample grids: generated eyes with their gaze drawn as arrows, optionally beside real
patches. Pure matplotlib (Agg), no display needed."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np


def _tile(ax, images: np.ndarray, cols: int, title: str):
    h, w = images.shape[1:3]
    rows = int(np.ceil(len(images) / cols))
    canvas = np.full((rows * (h + 2), cols * (w + 2)), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im if im.ndim == 2 else im.mean(-1)
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return h, w


def eye_grid(images: np.ndarray, pitchyaw: np.ndarray | None, pupils: np.ndarray | None,
             out: str | Path, *, real: np.ndarray | None = None, cols: int = 8,
             title: str = "synthetic", real_title: str = "real") -> Path:
    """Save a PNG grid of eyes with their gaze arrows, beside real patches when given."""
    panels = [EyePanel(images, title, pitchyaw, pupils)]
    if real is not None and len(real):
        panels.append(EyePanel(real[: len(images)], real_title))
    return eye_panels(panels, out, cols=cols)


class EyePanel(NamedTuple):
    images: np.ndarray
    title: str
    pitchyaw: np.ndarray | None = None  # arrows when given
    pupils: np.ndarray | None = None  # arrow starts (default: the patch centre)


def eye_panels(panels: list[EyePanel], out: str | Path, *, cols: int = 8) -> Path:
    """Save grids side by side. Arrows start at the projected pupil and point along the
    image-plane projection of the gaze vector g = (-cos p sin y, -sin p, ...): right = +x,
    down = +y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = panels[0].images.shape[1:3]
    rows = int(np.ceil(len(panels[0].images) / cols))
    panel_w = 7.0
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(panel_w * len(panels),
                                      panel_w * rows * (h + 2) / (cols * (w + 2)) + 0.5))
    for ax, panel in zip(axes[0], panels, strict=True):
        h, w = _tile(ax, panel.images, cols, panel.title)
        if panel.pitchyaw is None:
            continue
        for i, (p, y) in enumerate(panel.pitchyaw):
            r, c = divmod(i, cols)
            x0 = c * (w + 2) + (panel.pupils[i, 0] if panel.pupils is not None else w / 2)
            y0 = r * (h + 2) + (panel.pupils[i, 1] if panel.pupils is not None else h / 2)
            dx, dy = -np.cos(p) * np.sin(y), -np.sin(p)
            ax.arrow(x0, y0, dx * 22, dy * 22, color="#ffcc00", width=0.35, head_width=2.2,
                     length_includes_head=True)
    return save_figure(fig, out, dpi=110)


def batch_grid(reader, out: str | Path, *, real: np.ndarray | None = None, count: int = 64,
               title: str | None = None, real_title: str = "real") -> Path:
    """The first ``count`` samples of a batch (a BatchReader) with their gaze arrows,
    beside real patches when given (``real_title`` names them)."""
    k = min(count, reader.n)
    meta = reader.metadata.iloc[:k]
    return eye_grid(reader.images(np.arange(k)), meta[["pitch", "yaw"]].to_numpy(),
                    meta[["pupil_x_px", "pupil_y_px"]].to_numpy(), out,
                    real=None if real is None else real[:k],
                    title=title or f"synthetic {reader.batch_id} (arrows: gaze)",
                    real_title=real_title)


def save_figure(fig, out: str | Path, dpi: int = 100) -> Path:
    """tight_layout, create the folder, save, close (figures are not kept in memory)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
