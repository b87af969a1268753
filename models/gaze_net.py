"""A small ResNet for 36x60 eye patches with L2CS-style binned pitch/yaw heads.

Layout (``gaze_resnet_s``: widths 8/16/32/64, blocks 1/1/2/2)::

    (B, C, 36, 60) -> stem conv3x3/2 -> (B,  8, 18, 30)
                   -> stage 1          -> (B,  8, 18, 30)
                   -> stage 2 (/2)     -> (B, 16,  9, 15)
                   -> stage 3 (/2)     -> (B, 32,  5,  8)
                   -> stage 4 (/2)     -> (B, 64,  3,  4)
                   -> global mean      -> (B, 64)
                   -> bottleneck Linear-BN-ReLU -> features (B, feature_dim)
                   -> head: pitch bin logits, yaw bin logits -> expected angles

The bottleneck output is what domain adaptation aligns (TLlib's 256-d bottleneck); the
head is separate so DALN can run it a second time on reversed features.

Input: ``uint8`` patches are divided by 255 inside ``forward``; floating patches are
taken as already in [0, 1]. Either way the stem's BatchNorm absorbs the offset, so no
per-dataset mean/std is baked in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.gaze_bins import PITCH_BINS, YAW_BINS, GazeBins
from models.registration import register_model

__all__ = ["GazeNet", "GazeNetConfig", "GazeOutput", "HeadOutput", "gaze_resnet_m", "gaze_resnet_s"]


class HeadOutput(NamedTuple):
    pitch_logits: Tensor  # (B, n_pitch_bins)
    yaw_logits: Tensor  # (B, n_yaw_bins)
    pitchyaw: Tensor  # (B, 2) radians, expectation over bins

    @property
    def logits(self) -> list[Tensor]:
        """The categorical outputs, one per head, for DALN and unsupervised validators."""
        return [self.pitch_logits, self.yaw_logits]


class GazeOutput(NamedTuple):
    features: Tensor  # (B, feature_dim) bottleneck features
    pitch_logits: Tensor
    yaw_logits: Tensor
    pitchyaw: Tensor

    @property
    def logits(self) -> list[Tensor]:
        return [self.pitch_logits, self.yaw_logits]


@dataclass(frozen=True)
class GazeNetConfig:
    """Everything that fixes the architecture; ``asdict`` of it rebuilds the model.

    Bins are ``(lo_deg, hi_deg, n_bins)`` triples rather than nested dataclasses so the
    config stays a flat JSON-able dict (lists from JSON are turned back into tuples).
    """

    in_chans: int = 1
    widths: tuple[int, ...] = (8, 16, 32, 64)
    depths: tuple[int, ...] = (1, 1, 2, 2)
    feature_dim: int = 128
    dropout: float = 0.0
    pitch_bins: tuple[float, float, int] = (PITCH_BINS.lo_deg, PITCH_BINS.hi_deg, PITCH_BINS.n_bins)
    yaw_bins: tuple[float, float, int] = (YAW_BINS.lo_deg, YAW_BINS.hi_deg, YAW_BINS.n_bins)

    def __post_init__(self) -> None:
        for f in ("widths", "depths", "pitch_bins", "yaw_bins"):
            object.__setattr__(self, f, tuple(getattr(self, f)))
        if len(self.widths) != len(self.depths) or not self.widths:
            raise ValueError(f"widths {self.widths} and depths {self.depths} must match")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GazeNetConfig:
        return strict_from_dict(cls, d)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet v1 basic block; the last BN starts at zero so each block starts as identity."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class GazeNet(nn.Module):
    """ResNet-style gaze CNN: ``forward(x) -> GazeOutput``; ``head(features) -> HeadOutput``."""

    def __init__(self, cfg: GazeNetConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = GazeNetConfig.from_dict({**asdict(cfg or GazeNetConfig()), **overrides})
        self.cfg = cfg
        self.pitch_bins = GazeBins(*cfg.pitch_bins)
        self.yaw_bins = GazeBins(*cfg.yaw_bins)

        w0 = cfg.widths[0]
        # stride-2 stem: full-resolution convs would cost most of the FLOPs, and 18x30
        # still resolves the iris (~10 px across at 36x60). The 18x30 stage is kept thin
        # (8 channels) for the same reason: on one CPU core it dominates the step time.
        self.stem = nn.Sequential(_conv3x3(cfg.in_chans, w0, stride=2), nn.BatchNorm2d(w0),
                                  nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        c = w0
        for i, (w, d) in enumerate(zip(cfg.widths, cfg.depths, strict=True)):
            for j in range(d):
                blocks.append(BasicBlock(c, w, stride=2 if (i > 0 and j == 0) else 1))
                c = w
        self.stages = nn.Sequential(*blocks)
        self.bottleneck = nn.Sequential(nn.Linear(c, cfg.feature_dim), nn.BatchNorm1d(cfg.feature_dim),
                                        nn.ReLU(inplace=True))
        self.drop = nn.Dropout(cfg.dropout)
        self.fc_pitch = nn.Linear(cfg.feature_dim, self.pitch_bins.n_bins)
        self.fc_yaw = nn.Linear(cfg.feature_dim, self.yaw_bins.n_bins)
        # pitch and yaw bin centres as buffers: they follow .to(device) and are saved with
        # the weights, but they are derived from cfg (persistent=False keeps state_dicts lean)
        self.register_buffer("pitch_centres", self.pitch_bins.centres(), persistent=False)
        self.register_buffer("yaw_centres", self.yaw_bins.centres(), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def config(self) -> dict[str, Any]:
        """Plain-dict config: ``create_model(name, **model.config)`` rebuilds this model."""
        return asdict(self.cfg)

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    @property
    def bins(self) -> tuple[GazeBins, GazeBins]:
        return self.pitch_bins, self.yaw_bins

    def forward_features(self, x: Tensor) -> Tensor:
        """Eye patches ``(B, C, 36, 60)`` (uint8 or float in [0, 1]) -> features ``(B, feature_dim)``."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = self.stages(self.stem(x))
        # mean over H, W rather than .view(B, -1) after pooling: works for any memory format
        return self.bottleneck(x.mean(dim=(2, 3)))

    def head(self, features: Tensor) -> HeadOutput:
        """Bin logits and expected angles from features; reused by DALN on reversed features."""
        f = self.drop(features)
        pl, yl = self.fc_pitch(f), self.fc_yaw(f)
        # expectation in float32 even under autocast (bins are 3 degrees, errors ~0.1): the
        # matmul must run with autocast off, or autocast casts it back to bf16
        with torch.autocast(device_type=f.device.type, enabled=False):
            pitch = torch.softmax(pl.float(), dim=1) @ self.pitch_centres.float()
            yaw = torch.softmax(yl.float(), dim=1) @ self.yaw_centres.float()
        return HeadOutput(pl, yl, torch.stack([pitch, yaw], dim=1))

    def forward(self, x: Tensor) -> GazeOutput:
        f = self.forward_features(x)
        return GazeOutput(f, *self.head(f))


@register_model("gaze_resnet_s")
def gaze_resnet_s(**cfg: Any) -> GazeNet:
    """Small: widths 8/16/32/64, blocks 1/1/2/2, 128-d features (0.19 M parameters).

    Forward+backward of 128 patches on one CPU core: ~50 ms channels_last, ~65 ms
    contiguous (measured on the dev machine's Xeon)."""
    return GazeNet(GazeNetConfig(), **cfg)


@register_model("gaze_resnet_m")
def gaze_resnet_m(**cfg: Any) -> GazeNet:
    """Medium: widths 16/32/64/128, two blocks per stage, 256-d features (0.75 M parameters);
    ~175 ms per 128-patch step on one core (channels_last): meant for a GPU or many cores."""
    return GazeNet(GazeNetConfig(widths=(16, 32, 64, 128), depths=(2, 2, 2, 2), feature_dim=256),
                   **cfg)
