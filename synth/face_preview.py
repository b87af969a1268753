"""Sample grids of generated faces with their landmarks drawn on: 68 points (filled when
visible, hollow red when occluded) and the dense points (small, visible ones only).
Samples are sorted by head yaw so a grid reads as a sweep across poses.

    python -m synth.face_preview [--out docs/img/face_grid.png] [--n 32] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synth.preview import save_figure


def face_grid(images: np.ndarray, points68: np.ndarray, visible68: np.ndarray, out: str | Path,
              *, dense: np.ndarray | None = None, dense_visible: np.ndarray | None = None,
              yaw: np.ndarray | None = None, cols: int = 8, title: str = "synthetic faces",
              captions: list[str] | None = None, palette: bool = False) -> Path:
    """Save a PNG grid. ``images`` (N, H, W, 3) uint8; points in 0-based pixel-centre
    coordinates. With ``yaw`` the tiles are ordered by it (left-most = most negative).
    ``palette`` stores 256 colours (a third of the size; for images kept in the repo)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(yaw, kind="stable") if yaw is not None else np.arange(len(images))
    n = len(images)
    rows = int(np.ceil(n / cols))
    h, w = images.shape[1:3]
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.1 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, i in enumerate(order):
        ax = axes.ravel()[k]
        ax.imshow(images[i], interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        if dense is not None:
            dv = dense_visible[i] if dense_visible is not None else np.ones(len(dense[i]), bool)
            ax.scatter(dense[i, dv, 0], dense[i, dv, 1], s=0.6, c="#38d9ff", linewidths=0)
        v = visible68[i]
        ax.scatter(points68[i, v, 0], points68[i, v, 1], s=5, c="#7CFC00", linewidths=0)
        ax.scatter(points68[i, ~v, 0], points68[i, ~v, 1], s=9, facecolors="none",
                   edgecolors="#ff3030", linewidths=0.6)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        if captions is not None:
            ax.set_title(captions[i], fontsize=6, pad=1.5)
    fig.suptitle(title, fontsize=10)
    path = save_figure(fig, out, dpi=100)
    if palette:
        from PIL import Image

        with Image.open(path) as im:
            q = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
        q.save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> Path:
    from synth.face_distribution import default_face_distribution
    from synth.face_generator import FaceGenerator
    from synth.face_loading import load_face_model

    ap = argparse.ArgumentParser(description="render a grid of synthetic faces with landmarks")
    ap.add_argument("--out", default="docs/img/face_grid.png")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args(argv)
    model = load_face_model()
    gen = FaceGenerator(default_face_distribution(args.size), model=model)
    images, scenes, labels = gen.render_all(args.n, args.seed)
    caps = [f"yaw {np.degrees(y):+.0f}  pitch {np.degrees(p):+.0f}"
            for y, p in zip(scenes["head_yaw"], scenes["head_pitch"], strict=True)]
    name = "builtin fallback head" if model.is_fallback else "ICT-FaceKit"
    return face_grid(images, labels["points68"], labels["visible68"], args.out,
                     dense=labels["dense500"], dense_visible=labels["dense500_visible"],
                     yaw=scenes["head_yaw"], captions=caps, palette=True,
                     title=f"{name}, default distribution, seed {args.seed}: 68 points (red rings = "
                           f"occluded), 500 dense points; sorted by yaw")


if __name__ == "__main__":
    print(main())
