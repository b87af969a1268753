"""The SimGAN refiner (Shrivastava et al., CVPR 2017): a fully convolutional ResNet that
maps a synthetic image to a refined one of the same size and channels.

Layout (``simgan_refiner``: width 32, 4 blocks; the paper's is width 64)::

    (B, C, H, W) in [0, 1] -> conv3x3 (C -> w) -> ReLU
                           -> k x ResNet block (conv3x3-ReLU-conv3x3, + skip, ReLU)
                           -> conv1x1 (w -> C) = residual
                           -> refined = image + residual

The refiner predicts a residual and its last convolution starts at zero, so an untrained
refiner is exactly the identity: training starts from the synthetic image, which is what
the paper's refiner pre-training (self-regularisation only) reaches, and the
self-regularisation term measures only what the refiner has added. No padding tricks,
no pooling: every output pixel sees a local window of its input (receptive field
``3 + 4 k`` pixels), which keeps global structure such as the iris position where it was.

``uint8`` input is divided by 255 inside ``forward``; output is float, not clipped
(:func:`to_uint8` rounds and clips when a refined batch is written).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.registration import register_model

__all__ = ["ConditionedPatch", "Refiner", "RefinerConfig", "as_float_images", "simgan_refiner",
           "to_uint8"]


@dataclass(frozen=True)
class RefinerConfig:
    channels: int = 1  # 1 for grayscale eyes, 3 for RGB faces
    width: int = 32
    blocks: int = 4

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"refiner channels must be 1 or 3, got {self.channels}")
        if self.width < 1 or self.blocks < 0:
            raise ValueError(f"refiner width must be >= 1 and blocks >= 0, got {self.width}, "
                             f"{self.blocks}")


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class Refiner(nn.Module):
    model_name = "simgan_refiner"

    def __init__(self, cfg: RefinerConfig | None = None):
        super().__init__()
        self.cfg = cfg or RefinerConfig()
        w = self.cfg.width
        self.stem = nn.Conv2d(self.cfg.channels, w, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(w) for _ in range(self.cfg.blocks)])
        self.out = nn.Conv2d(w, self.cfg.channels, 1)
        nn.init.zeros_(self.out.weight)  # identity at start: refined == synthetic
        nn.init.zeros_(self.out.bias)

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def residual(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(torch.relu(self.stem(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = as_float_images(x)
        return x + self.residual(x)


class ConditionedPatch(nn.Module):
    """Base of the fitted patches whose move depends on each image's scene (the per-pose
    and the face-aligned mean patch): ``cfg`` is a frozen config with ``to_dict()`` and
    ``conditioned_on``, what the refiner reads per image beside it."""

    cfg: Any

    @property
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    @property
    def conditioned_on(self) -> str:
        return self.cfg.conditioned_on


def as_float_images(x: Tensor) -> Tensor:
    """``uint8`` images to float in [0, 1]; float images are taken as already scaled."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def to_uint8(x: Tensor) -> Tensor:
    """Float images in [0, 1] (B, C, H, W) to rounded, clipped ``uint8``."""
    return x.detach().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


@register_model("simgan_refiner", task="refiner")
def simgan_refiner(**cfg: Any) -> Refiner:
    return Refiner(strict_from_dict(RefinerConfig, cfg))
