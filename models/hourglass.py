"""Stacked hourglass landmark network (Newell, Yang & Deng, "Stacked hourglass networks
for human pose estimation", ECCV 2016) for 128x128 RGB face crops, with soft-argmax
coordinates (:mod:`models.heatmaps`).

Layout (``C`` channels, ``S`` stacks, ``K`` landmarks)::

    (N, 3, 128, 128) -> conv7x7/2 -> Res -> maxpool/2 -> Res -> Res   stem: (N, C, 32, 32)
    stack s:  hourglass(depth 4: 32 -> 16 -> 8 -> 4 -> 2 and back) -> Res
              -> conv1x1-BN-ReLU = head features h_s (N, C, 32, 32)
              -> conv1x1 -> heatmap logits (N, K, 32, 32)          (intermediate supervision)
              x <- x + conv1x1(h_s) + conv1x1(heatmaps)            (merge, all but the last)

Residual units are the paper's pre-activation bottlenecks (BN-ReLU-conv1x1 C/2, 3x3 C/2,
1x1 C, plus a 1x1 projection when widths differ). Each hourglass level keeps one residual
on the full-resolution branch and three on the pooled branch, nearest upsampling, sum.

Outputs (:class:`LandmarkOutput`) are what training, DA and evaluation need:

- heatmap logits of every stack, already multiplied by the inverse temperature beta
  (learnable by default), so ``softmax`` over ``H*W`` of them *is* the spatial
  distribution whose mean is the coordinate;
- coordinates of the last stack (and of every stack, for intermediate supervision);
- ``features``: the last stack's head features averaged over space, ``(N, C)``, for
  DANN's discriminator;
- ``head_features``: the same before pooling, ``(N, C, 32, 32)``: what the last heatmap
  head reads, so DALN can run the head a second time on gradient-reversed features.

Input: ``uint8`` crops are divided by 255 inside ``forward``; float crops are taken as in
``[0, 1]`` (the stem's BatchNorm absorbs the offset, so no dataset mean/std is baked in).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.heatmaps import soft_argmax
from models.registration import register_model

__all__ = [
    "HourglassConfig",
    "HourglassNet",
    "LandmarkOutput",
    "hourglass_l",
    "hourglass_m",
    "hourglass_s",
]


class LandmarkOutput(NamedTuple):
    """Every field has the batch first, so ``type(out)(*(t[:n] for t in out))`` slices it."""

    heatmaps: Tensor  # (N, S, K, H, W) beta-scaled logits of every stack
    coords: Tensor  # (N, K, 2) (x, y) input pixels, soft-argmax of the last stack
    features: Tensor  # (N, C) pooled head features of the last stack (DANN)
    spatial_probs: Tensor  # (N, K, H*W) spatial softmax of the last stack
    stack_coords: Tensor  # (N, S, K, 2) soft-argmax of every stack
    head_features: Tensor  # (N, C, H, W) input of the last heatmap head (DALN)


@dataclass(frozen=True)
class HourglassConfig:
    """Everything that fixes the architecture; ``asdict`` of it rebuilds the model."""

    num_points: int = 68
    stacks: int = 2
    channels: int = 64
    depth: int = 4
    in_chans: int = 3
    input_size: int = 128
    beta: float = 1.0  # initial inverse temperature of the spatial softmax
    learn_beta: bool = True

    def __post_init__(self) -> None:
        if self.num_points < 1 or self.stacks < 1 or self.depth < 1:
            raise ValueError(f"need num_points, stacks, depth >= 1, got {self}")
        if self.channels % 4 or self.channels < 8:
            raise ValueError(f"channels must be a multiple of 4 and >= 8, got {self.channels}")
        if self.input_size % (4 * 2 ** self.depth):
            raise ValueError(f"input_size {self.input_size} must be divisible by 4 * 2**depth")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HourglassConfig:
        return strict_from_dict(cls, d)


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1(c/2), BN-ReLU-3x3(c/2), BN-ReLU-1x1(c) + skip."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        mid = c_out // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=False), nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, c_out, 1),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """One recursive hourglass: ``up(x) + upsample(low(maxpool(x)))``, ``depth`` levels."""

    def __init__(self, depth: int, c: int):
        super().__init__()
        self.up = Residual(c, c)
        self.low1 = Residual(c, c)
        self.low2 = Hourglass(depth - 1, c) if depth > 1 else Residual(c, c)
        self.low3 = Residual(c, c)

    def forward(self, x: Tensor) -> Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class HourglassNet(nn.Module):
    """Stacked hourglass: ``forward(x) -> LandmarkOutput``; ``heatmap_head(h)`` re-applies
    the last stack's heatmap head (with beta) to head features, for DALN."""

    task = "landmarks"

    def __init__(self, cfg: HourglassConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = HourglassConfig.from_dict({**asdict(cfg or HourglassConfig()), **overrides})
        self.cfg = cfg
        c, k = cfg.channels, cfg.num_points
        # the stem at 64x64 dominates CPU time at full width; Newell's 64-128-128-256 for
        # C=256, scaled down proportionally for narrower nets
        c1, c2 = max(c // 4, 8), c // 2
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_chans, c1, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            Residual(c1, c2), nn.MaxPool2d(2), Residual(c2, c2), Residual(c2, c),
        )
        self.hourglasses = nn.ModuleList(Hourglass(cfg.depth, c) for _ in range(cfg.stacks))
        self.post = nn.ModuleList(Residual(c, c) for _ in range(cfg.stacks))
        self.lin = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            for _ in range(cfg.stacks))
        self.heads = nn.ModuleList(nn.Conv2d(c, k, 1) for _ in range(cfg.stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(cfg.stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(k, c, 1) for _ in range(cfg.stacks - 1))
        log_beta = torch.tensor(math.log(cfg.beta))
        if cfg.learn_beta:
            self.log_beta = nn.Parameter(log_beta)
        else:
            self.register_buffer("log_beta", log_beta)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # heads start near zero: flat heatmaps, every point predicted at the crop centre,
        # and small gradients into the backbone until the heads have learnt something
        for head in self.heads:
            nn.init.normal_(head.weight, std=1e-3)

    @property
    def config(self) -> dict[str, Any]:
        """Plain-dict config: ``create_model(name, **model.config)`` rebuilds this model."""
        return asdict(self.cfg)

    @property
    def feature_dim(self) -> int:
        return self.cfg.channels

    @property
    def num_points(self) -> int:
        return self.cfg.num_points

    @property
    def input_size(self) -> int:
        return self.cfg.input_size

    @property
    def heatmap_size(self) -> int:
        return self.cfg.input_size // 4

    @property
    def stride(self) -> float:
        """Input pixels per heatmap cell (4 for 128 -> 32)."""
        return self.cfg.input_size / self.heatmap_size

    @property
    def beta(self) -> Tensor:
        return self.log_beta.exp()

    def _head(self, s: int, h: Tensor) -> Tensor:
        """Stack ``s``'s heatmap logits, in float32 even under autocast: a bf16 logit of
        size ~10 is off by up to 0.04, which moves the soft-argmax by a tenth of a pixel,
        the scale of the errors being measured. The 1x1 head is a small part of the cost."""
        if torch.is_autocast_enabled(h.device.type):
            with torch.autocast(h.device.type, enabled=False):
                return self.heads[s](h.float())
        return self.heads[s](h)

    def heatmap_head(self, head_features: Tensor) -> Tensor:
        """The last stack's head: ``(N, C, H, W) -> (N, K, H, W)`` beta-scaled logits."""
        return self._head(self.cfg.stacks - 1, head_features) * self.beta

    def forward(self, x: Tensor) -> LandmarkOutput:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = self.stem(x)
        beta = self.beta
        maps: list[Tensor] = []
        h = x
        for s in range(self.cfg.stacks):
            h = self.lin[s](self.post[s](self.hourglasses[s](x)))
            logits = self._head(s, h)
            maps.append(logits * beta)
            if s < self.cfg.stacks - 1:
                x = x + self.merge_features[s](h) + self.merge_heatmaps[s](logits)
        heatmaps = torch.stack(maps, dim=1)  # (N, S, K, H, W)
        stack_coords, probs = soft_argmax(heatmaps, self.stride)
        return LandmarkOutput(
            heatmaps=heatmaps,
            coords=stack_coords[:, -1],
            features=h.mean(dim=(2, 3)),
            spatial_probs=probs[:, -1],
            stack_coords=stack_coords,
            head_features=h,
        )


@register_model("hourglass_s", task="landmarks")
def hourglass_s(**cfg: Any) -> HourglassNet:
    """Small: 2 stacks, 64 channels; 0.43 M parameters at 68 points (0.56 M at 703).

    One source-only train step of 16 crops on one CPU thread (augmentation included):
    ~0.37 s at 68 points, ~1.2 s at 703 (the 703-wide heads and soft-argmax dominate)."""
    return HourglassNet(HourglassConfig(stacks=2, channels=64), **cfg)


@register_model("hourglass_m", task="landmarks")
def hourglass_m(**cfg: Any) -> HourglassNet:
    """Medium: 2 stacks, 128 channels; 1.7 M parameters at 68 points (1.9 M at 703);
    ~1.1 s / ~2.3 s per 16-crop CPU step (one thread): meant for a GPU or many cores."""
    return HourglassNet(HourglassConfig(stacks=2, channels=128), **cfg)


@register_model("hourglass_l", task="landmarks")
def hourglass_l(**cfg: Any) -> HourglassNet:
    """Large: 4 stacks, 256 channels (Newell et al.'s width; 8 stacks in the paper);
    12.9 M parameters at 68 points (14.1 M at 703); ~4.6 s / ~8.6 s per 16-crop CPU step
    (one thread): a GPU model."""
    return HourglassNet(HourglassConfig(stacks=4, channels=256), **cfg)
