"""The mean-patch refiner: every synthetic image moved by the difference between the mean
real image and the mean synthetic image,

    refined = image + strength * (mean(real) - mean(synthetic)),

fitted in one pass over both sets, without labels and without training. It is the
first-moment, per-pixel part of what a SimGAN refiner (:mod:`models.refiner`) learns: the
shading that real patches share and ours lack (on Columbia eyes the real mean is darker
along the lid line and toward the nasal corner, brighter below the eye and on the brow;
``docs/refinement.md``). It cannot move anything an image does not share with the mean,
so gaze, which moves the iris within each image, is left where it was.

Same interface as :class:`models.refiner.Refiner` (uint8 or [0, 1] float in, float out,
not clipped; ``cfg.channels``), so a batch refined with it, ``synthloop train --refiner``
and :class:`models.refined_source.RefinedSource` take either. The difference is kept as
a frozen parameter so that the checkpoint carries it and ``.parameters()`` names the
device, as for a trained refiner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.refiner import as_float_images
from models.registration import register_model

__all__ = ["MeanPatchConfig", "MeanPatchRefiner", "fit_mean_patch", "mean_image"]


@dataclass(frozen=True)
class MeanPatchConfig:
    """``strength``: how far toward the real mean a synthetic image moves (1: the refined
    set's mean is the real set's, before clipping)."""

    channels: int = 1
    height: int = 36
    width: int = 60
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"mean-patch channels must be 1 or 3, got {self.channels}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"mean-patch size must be positive, got {self.height} x {self.width}")
        if not 0.0 <= self.strength <= 4.0:
            raise ValueError(f"strength must be in [0, 4], got {self.strength}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MeanPatchRefiner(nn.Module):
    model_name = "mean_patch_refiner"

    def __init__(self, cfg: MeanPatchConfig | None = None):
        super().__init__()
        self.cfg = cfg or MeanPatchConfig()
        c = self.cfg
        # mean(real) - mean(synthetic) in [0, 1] intensity units, (C, H, W)
        self.delta = nn.Parameter(torch.zeros(c.channels, c.height, c.width), requires_grad=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def residual(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != tuple(self.delta.shape):
            raise ValueError(f"the mean-patch refiner was fitted on {tuple(self.delta.shape)} "
                             f"images (C, H, W), got {tuple(x.shape[1:])}")
        return (self.cfg.strength * self.delta).to(x.dtype).expand_as(x)

    def forward(self, x: Tensor) -> Tensor:
        x = as_float_images(x)
        return x + self.residual(x)


@register_model("mean_patch_refiner", task="refiner")
def mean_patch_refiner(**cfg: Any) -> MeanPatchRefiner:
    return MeanPatchRefiner(strict_from_dict(MeanPatchConfig, cfg))


def mean_image(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The mean of uint8 images ``(N, H, W)`` or ``(N, H, W, C)`` as ``(C, H, W)`` in
    [0, 1], summed in float64 a chunk at a time (a large batch is never copied whole)."""
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"expected a non-empty stack of (H, W) or (H, W, C) images, got "
                         f"shape {tuple(images.shape)}")
    total = np.zeros(images.shape[1:], dtype=np.float64)
    for i in range(0, len(images), chunk):
        total += images[i:i + chunk].astype(np.float64).sum(0)
    mean = total / (len(images) * 255.0)
    return mean[None] if mean.ndim == 2 else np.moveaxis(mean, -1, 0)


def fit_mean_patch(synthetic: np.ndarray, real: np.ndarray, strength: float = 1.0
                   ) -> MeanPatchRefiner:
    """The refiner that moves ``synthetic`` images toward ``real`` ones (both uint8, the
    same image shape; labels play no part)."""
    if tuple(synthetic.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(f"synthetic images are {tuple(synthetic.shape[1:])}, real ones "
                         f"{tuple(real.shape[1:])}: the mean patch needs one size")
    delta = mean_image(real) - mean_image(synthetic)
    c, h, w = delta.shape
    net = MeanPatchRefiner(MeanPatchConfig(channels=c, height=h, width=w, strength=strength))
    with torch.no_grad():
        net.delta.copy_(torch.from_numpy(delta.astype(np.float32)))
    return net.eval()
