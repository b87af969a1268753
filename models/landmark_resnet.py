"""A small ResNet with FPN-style top-down fusion and soft-argmax heatmaps: the landmark
network sized for CPU training (the hourglass family stays for GPUs).

Layout (``w`` = width, ``F`` = head channels, ``K`` landmarks, 112 px input)::

    (N, 3, 112, 112) -> conv3x3/2 (w/2) -> conv3x3/2 (w)        stem: stride 4, 28 x 28
    stage 1: BasicBlocks, w,  stride 4   (28 x 28)  -- c1
    stage 2: BasicBlocks, 2w, stride 8   (14 x 14)  -- c2
    stage 3: BasicBlocks, 4w, stride 16  ( 7 x  7)  -- c3
    stage 4: BasicBlocks, 8w, stride 32  ( 4 x  4)  -- c4
    top-down (Lin et al., "Feature pyramid networks", CVPR 2017):
        p4 = lat(c4);  p_i = lat(c_i) + upsample(p_{i+1})   down to the heatmap stride
    head features h = conv3x3-BN-ReLU(p) (N, F, H, W)   -> conv1x1 -> K heatmap logits

The heatmap stride is 4 (28 x 28 maps at 112 px) or 8 (14 x 14), chosen by measurement
(``benchmarks/bench_landmark_step.py``: one core, 32 crops, bf16 + channels_last). The K
maps, their softmax and its backward grow with ``K * H * W``: at stride 4 a step with 1001
points takes ~3x one with 68 (~420 against ~135 ms), at stride 8 the 500-point head costs
what the 68 head does and the 1001-point one ~1.15x. Soft-argmax keeps sub-cell accuracy
on the coarser grid: on LFPW (68 points, 645/160, 800 steps of a short recipe, 2 seeds)
stride 8 scored 5.81 and 5.49 % inter-ocular NME against 5.70 and 5.76 at stride 4.
``heatmap_stride=0`` (the default) takes 4 below :data:`DENSE_FROM` points and 8 from there
on, so the dense heads (and a dense + 68 syn+real layout) run at stride 8.

Outputs are :class:`models.hourglass.LandmarkOutput` with one stack (``S = 1``), and the
properties and ``heatmap_head`` are the hourglass's, so training, DANN/DALN, label
transfer, the predictor and evaluation take either family unchanged.

Input: ``uint8`` crops are divided by 255 inside ``forward``; float crops are taken as in
``[0, 1]`` (the stem's BatchNorm absorbs the offset). The net is fully convolutional (the
last stage rounds its size up: 4 x 4 at 112 px); ``input_size`` is the size it is trained
and served at, which the data path reads to crop faces (``models.registry.model_input_size``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.heatmaps import soft_argmax
from models.hourglass import LandmarkOutput
from models.registration import register_model

__all__ = [
    "DENSE_FROM",
    "LandmarkResNet",
    "LandmarkResNetConfig",
    "landmark_resnet_m",
    "landmark_resnet_s",
]

#: from this many points on, ``heatmap_stride=0`` puts the heatmaps at stride 8
DENSE_FROM = 256


@dataclass(frozen=True)
class LandmarkResNetConfig:
    """Everything that fixes the architecture; ``asdict`` of it rebuilds the model."""

    num_points: int = 68
    width: int = 32  # stage-1 channels; stages are w, 2w, 4w, 8w
    depths: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per stage (four stages)
    head_channels: int = 64  # FPN channels, = head features, = feature_dim
    heatmap_stride: int = 0  # 4 or 8; 0: 4 below DENSE_FROM points, else 8
    in_chans: int = 3
    input_size: int = 112
    beta: float = 1.0  # initial inverse temperature of the spatial softmax
    learn_beta: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        if self.num_points < 1 or self.in_chans < 1:
            raise ValueError(f"need num_points, in_chans >= 1, got {self}")
        if len(self.depths) != 4 or min(self.depths) < 1:
            raise ValueError(f"depths must be four stages of >= 1 block, got {self.depths}")
        if self.width < 8 or self.width % 2 or self.head_channels < 8:
            raise ValueError(f"width must be even and >= 8, head_channels >= 8: {self}")
        if self.heatmap_stride not in (0, 4, 8):
            raise ValueError(f"heatmap_stride must be 0 (auto), 4 or 8, got {self.heatmap_stride}")
        if self.input_size % 16 or self.input_size < 32:
            raise ValueError(f"input_size {self.input_size} must be a multiple of 16, >= 32")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")

    @property
    def resolved_stride(self) -> int:
        if self.heatmap_stride:
            return self.heatmap_stride
        return 4 if self.num_points < DENSE_FROM else 8

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LandmarkResNetConfig:
        return strict_from_dict(cls, d)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """He et al.'s two-3x3 residual block; a strided 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x), inplace=True)


def _stage(c_in: int, c_out: int, depth: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(c_in, c_out, stride),
                         *(BasicBlock(c_out, c_out) for _ in range(depth - 1)))


class LandmarkResNet(nn.Module):
    """``forward(x) -> LandmarkOutput`` (one stack); ``heatmap_head(h)`` re-applies the
    heatmap head (with beta) to head features, for DALN."""

    task = "landmarks"

    def __init__(self, cfg: LandmarkResNetConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = LandmarkResNetConfig.from_dict({**asdict(cfg or LandmarkResNetConfig()), **overrides})
        self.cfg = cfg
        w, f = cfg.width, cfg.head_channels
        widths = (w, 2 * w, 4 * w, 8 * w)
        self.stem = nn.Sequential(_conv_bn(cfg.in_chans, w // 2, 2), _conv_bn(w // 2, w, 2))
        self.stages = nn.ModuleList(
            _stage(widths[i - 1] if i else w, widths[i], cfg.depths[i], 1 if i == 0 else 2)
            for i in range(4))
        # FPN levels from the heatmap's stride up: stride 4 fuses stages 1-4, stride 8 2-4
        self.first_level = {4: 0, 8: 1}[cfg.resolved_stride]
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i], f, 1) for i in range(self.first_level, 4))
        self.smooth = _conv_bn(f, f)
        # the 1x1 heatmap head as a (K, F) matrix, without bias: the spatial softmax is
        # blind to a per-point offset, so a bias would never be trained
        self.head_weight = nn.Parameter(torch.empty(cfg.num_points, f))
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
        for m in self.modules():
            # each residual branch starts as the identity (Goyal et al. 2017): the deep
            # stack trains like a shallow one at first
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
        # the head starts near zero: flat heatmaps, every point at the crop centre, and
        # small gradients into the backbone until the head has learnt something
        nn.init.normal_(self.head_weight, std=1e-3)

    @property
    def config(self) -> dict[str, Any]:
        """Plain-dict config: ``create_model(name, **model.config)`` rebuilds this model."""
        return asdict(self.cfg)

    @property
    def feature_dim(self) -> int:
        return self.cfg.head_channels

    @property
    def num_points(self) -> int:
        return self.cfg.num_points

    @property
    def input_size(self) -> int:
        return self.cfg.input_size

    @property
    def heatmap_size(self) -> int:
        return self.cfg.input_size // self.cfg.resolved_stride

    @property
    def stride(self) -> float:
        """Input pixels per heatmap cell (4 for 112 -> 28, 8 for 112 -> 14)."""
        return self.cfg.input_size / self.heatmap_size

    @property
    def beta(self) -> Tensor:
        return self.log_beta.exp()

    @torch.no_grad()
    def grown(self, rows: Any) -> LandmarkResNet:
        """A copy with heatmap channels appended, channel ``K + i`` starting as channel
        ``rows[i]``: how a syn+real model (dense channels + a real 68 head) starts from a
        model pre-trained on the dense set alone, its 68 head at the dense set's iBug
        vertices (the set's first 68 points) rather than at random. The heatmap stride
        must not change with the point count (both sides of ``DENSE_FROM``)."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        cfg = replace(self.cfg, num_points=self.cfg.num_points + len(rows))
        if cfg.resolved_stride != self.cfg.resolved_stride:
            raise ValueError(f"{self.cfg.num_points} -> {cfg.num_points} points changes the "
                             "heatmap stride; set heatmap_stride explicitly")
        out = LandmarkResNet(cfg)
        state = dict(self.state_dict())
        state["head_weight"] = torch.cat([self.head_weight, self.head_weight[rows]])
        out.load_state_dict(state)
        return out

    @torch.no_grad()
    def narrowed(self, rows: Any) -> LandmarkResNet:
        """A model of ``len(rows)`` points at its own heatmap stride, point ``i`` starting
        as channel ``rows[i]``: how a model pre-trained on a dense set starts a fine-tune
        on the real 68 points alone (``rows`` = the set's iBug vertices, its first 68).

        Shared: the stem, the stages, the FPN laterals of the levels both strides fuse,
        the smoothing conv, beta. A narrower model at stride 4 also fuses stage 1, whose
        lateral a stride-8 model lacks: it starts at zero, so the fused features start as
        the upsampled stride-8 ones; the 3x3 smoothing then sees them at twice the
        resolution, so the first predictions are near the dense model's, not equal."""
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        out = LandmarkResNet(replace(self.cfg, num_points=len(rows), heatmap_stride=0))
        state = {k: v for k, v in self.state_dict().items()
                 if not k.startswith("lateral.") and k != "head_weight"}
        state["head_weight"] = self.head_weight[rows]
        shift = self.first_level - out.first_level  # lateral i here is lateral i + shift there
        for i, layer in enumerate(out.lateral):
            j = i - shift
            if 0 <= j < len(self.lateral):
                layer.load_state_dict(self.lateral[j].state_dict())
            else:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        missing, unexpected = out.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("lateral.") for k in missing):
            raise ValueError(f"narrowing left {missing} unset, {unexpected} unused")
        return out

    def heatmap_head(self, head_features: Tensor) -> Tensor:
        """``(N, F, H, W) -> (N, K, H, W)`` beta-scaled logits, float32.

        Beta scales the ``(K, F)`` weights rather than the ``K`` maps, and the product is
        a batched matmul whose output is already the contiguous ``(N, K, H*W)`` layout the
        softmax reads: with 1001 points the maps are most of a step's memory traffic.

        In training under autocast the product runs in bf16 (8x faster than float32 on
        an AVX512-BF16 core): its rounding, up to 2**-9 of a logit, moves a soft-argmax
        by up to about a tenth of a pixel, zero-mean noise next to the errors being
        trained away. In eval mode it stays float32, as the hourglass's head does, so
        measured errors carry no rounding."""
        n, f, h, w = head_features.shape
        weight = self.head_weight * self.beta  # (K, F)
        x = head_features.flatten(2)  # (N, F, HW): a view, also of channels_last features
        dev = head_features.device.type
        if torch.is_autocast_enabled(dev) and self.training:
            dtype = torch.get_autocast_dtype(dev)
        else:
            dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(dev, enabled=False):
            # cast before expanding: the (N, K, F) expansion stays a view
            z = torch.bmm(weight.to(dtype).expand(n, -1, -1), x.to(dtype))
        return z.float().unflatten(-1, (h, w))

    def backbone(self, x: Tensor) -> Tensor:
        """Head features ``(N, F, H, W)`` of crops ``x`` (uint8 or float in [0, 1])."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        levels = feats[self.first_level:]
        p = self.lateral[-1](levels[-1])
        for lat, c in zip(reversed(self.lateral[:-1]), reversed(levels[:-1]), strict=True):
            p = lat(c) + F.interpolate(p, size=c.shape[-2:], mode="nearest")
        return self.smooth(p)

    def forward(self, x: Tensor) -> LandmarkOutput:
        h = self.backbone(x)
        heatmaps = self.heatmap_head(h).unsqueeze(1)  # (N, 1, K, H, W)
        stack_coords, probs = soft_argmax(heatmaps, self.stride)
        return LandmarkOutput(
            heatmaps=heatmaps,
            coords=stack_coords[:, -1],
            features=h.mean(dim=(2, 3)),
            spatial_probs=probs[:, -1],
            stack_coords=stack_coords,
            head_features=h,
        )


@register_model("landmark_resnet_s", task="landmarks")
def landmark_resnet_s(**cfg: Any) -> LandmarkResNet:
    """Small: width 32, two BasicBlocks per stage, 64 FPN channels, 112 px crops; 2.9 M
    parameters. One training step of 32 crops on one CPU core (bf16 + channels_last,
    ``benchmarks/bench_landmark_step.py``, shared machine): ~130 ms at 68 points, ~125-135
    at 500, ~150-175 at 1001; ~80 ms on two threads; float32 ~1.7x slower."""
    return LandmarkResNet(LandmarkResNetConfig(), **cfg)


@register_model("landmark_resnet_m", task="landmarks")
def landmark_resnet_m(**cfg: Any) -> LandmarkResNet:
    """Medium: width 48, blocks 2/2/3/2, 96 FPN channels, 128 px crops; 7.1 M parameters;
    ~2.5x the small one's step (~370 ms for 32 crops on one core, bf16): for more cores."""
    return LandmarkResNet(LandmarkResNetConfig(width=48, depths=(2, 2, 3, 2), head_channels=96,
                                               input_size=128), **cfg)
