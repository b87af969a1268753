"""Face crops at the size a landmark model takes: a synthetic batch is rendered at its
distribution's size (128 px) while a model may be trained at another (``landmark_resnet_s``:
112 px), so its batches are resampled on the way in, points with them.

Points follow the pixel-centre convention of :mod:`models.heatmaps` (a crop of ``S``
pixels spans ``[-0.5, S - 0.5)``), so resizing ``S -> T`` maps ``x -> (x + 0.5) T / S - 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ResizedSource", "resize_batch", "resize_crops", "resize_points"]


def resize_crops(images: Tensor, size: int) -> Tensor:
    """``(N, C, S, S)`` uint8 (or float) crops -> ``(N, C, size, size)`` of the same dtype,
    antialiased bilinear (half-pixel centres, as the crop protocol resizes)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    y = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=True)
    if images.dtype == torch.uint8:
        return y.round_().clamp_(0, 255).to(torch.uint8)
    return y.to(images.dtype)


def resize_points(points: Tensor, from_size: int, to_size: int) -> Tensor:
    """Pixel-centre ``(x, y)`` coordinates in an ``from_size`` crop -> in a ``to_size`` one
    (NaN, a missing point, stays NaN)."""
    if from_size == to_size:
        return points
    return (points + 0.5) * (to_size / from_size) - 0.5


def resize_batch(batch: dict[str, Tensor], size: int) -> dict[str, Tensor]:
    """A source's batch with its ``image`` at ``size`` and its ``points`` (if any) moved
    along; other keys unchanged."""
    s = int(batch["image"].shape[-1])
    if s == size:
        return batch
    out = {**batch, "image": resize_crops(batch["image"], size)}
    if "points" in batch:
        out["points"] = resize_points(batch["points"], s, size)
    return out


class ResizedSource:
    """A batch source (:mod:`models.data`) whose batches come at ``size`` px; batches
    already at that size pass through untouched."""

    def __init__(self, source, size: int):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.source, self.size = source, int(size)
        self.batch_size = source.batch_size
        self.seed = getattr(source, "seed", None)

    def __len__(self) -> int:
        return len(self.source)

    def gather(self, positions: Sequence[int] | np.ndarray) -> dict[str, Tensor]:
        return resize_batch(self.source.gather(positions), self.size)

    def batch(self, step: int) -> dict[str, Tensor]:
        return resize_batch(self.source.batch(step), self.size)
