"""The SimGAN local discriminator: a small fully convolutional net that scores every
image patch as real or refined, so the refiner is judged on local texture everywhere
instead of on one global decision it could satisfy with a few artefacts.

Layout (``simgan_discriminator``, width w = 32 is the paper's 96/64/32/32 at w = 32)::

    (B, C, H, W) -> conv3x3/2 (3w) -> lReLU -> conv3x3/2 (2w) -> lReLU -> maxpool3x3/1
                 -> conv3x3 (w) -> lReLU -> conv1x1 (w) -> lReLU -> conv1x1 (1)
                 -> (B, 1, ceil(H/4), ceil(W/4)) logits, one per patch

One logit per patch ("this patch is real") is the paper's two-way softmax with one
degree of freedom removed. Leaky ReLUs (slope 0.2) where the paper has ReLUs: with plain
ReLUs a small discriminator can die (every unit off, every patch scored 0.5), and a
dead discriminator gives the refiner no gradient at all. ``uint8`` input is divided by 255 inside ``forward``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn

from models.configs import strict_from_dict
from models.refiner import as_float_images
from models.registration import register_model

__all__ = ["PatchDiscriminator", "PatchDiscriminatorConfig", "simgan_discriminator"]


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    channels: int = 1
    width: int = 32

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or self.width < 1:
            raise ValueError(f"discriminator channels must be 1 or 3 and width >= 1, got "
                             f"{self.channels}, {self.width}")


class PatchDiscriminator(nn.Module):
    def __init__(self, cfg: PatchDiscriminatorConfig | None = None):
        super().__init__()
        self.cfg = cfg or PatchDiscriminatorConfig()
        c, w = self.cfg.channels, self.cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(c, 3 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(3 * w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(2 * w, w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, w, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 1, 1),
        )

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(as_float_images(x))


@register_model("simgan_discriminator", task="refiner")
def simgan_discriminator(**cfg: Any) -> PatchDiscriminator:
    return PatchDiscriminator(strict_from_dict(PatchDiscriminatorConfig, cfg))
