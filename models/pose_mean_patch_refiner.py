"""The mean patch per head pose (:mod:`models.pose_mean_patch`) as a refiner that
``synthloop refine`` fits, checkpoints and applies shard by shard, like the plain mean
patch (:mod:`models.mean_patch`), with one difference: each image's move depends on its
head yaw, which the refiner reads from the batch's metadata (column ``conditioned_on``,
radians, as the eye renderer writes it), so it takes that column beside the images:

    refined = refiner(images, head_yaw)

The pose differences are frozen parameters (the checkpoint carries them); the poses, the
pairing of the two yaw conventions and the strength are its config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.pose_mean_patch import MAX_POSES, fit_pose_mean_patch, pose_weights
from models.refiner import ConditionedPatch, as_float_images
from models.registration import register_model

__all__ = ["PoseMeanPatchConfig", "PoseMeanPatchRefiner", "fit_pose_mean_patch_refiner"]


@dataclass(frozen=True)
class PoseMeanPatchConfig:
    """``poses_deg``: the real head poses (sorted); a synthetic eye with head yaw ``y``
    (degrees) takes the difference at the pose nearest ``sign * y``."""

    channels: int = 1
    height: int = 36
    width: int = 60
    poses_deg: tuple[float, ...] = (0.0,)
    sign: int = 1
    strength: float = 1.0
    conditioned_on: str = "head_yaw"  # the batch metadata column (radians) read per image

    def __post_init__(self) -> None:
        object.__setattr__(self, "poses_deg", tuple(float(p) for p in self.poses_deg))
        p = self.poses_deg
        if not 1 <= len(p) <= MAX_POSES or list(p) != sorted(set(p)) \
                or not all(math.isfinite(v) for v in p):
            raise ValueError(f"poses_deg must be 1-{MAX_POSES} distinct finite values in "
                             f"ascending order, got {p}")
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {self.sign}")
        if self.channels not in (1, 3) or self.height < 1 or self.width < 1:
            raise ValueError(f"bad image shape: {self.channels} x {self.height} x {self.width}")
        if not 0.0 <= self.strength <= 4.0:
            raise ValueError(f"strength must be in [0, 4], got {self.strength}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "poses_deg": list(self.poses_deg)}


class PoseMeanPatchRefiner(ConditionedPatch):
    model_name = "pose_mean_patch_refiner"

    def __init__(self, cfg: PoseMeanPatchConfig | None = None):
        super().__init__()
        self.cfg = cfg or PoseMeanPatchConfig()
        c = self.cfg
        # real minus synthetic mean image at each pose, [0, 1] intensity units (K, C, H, W)
        self.deltas = nn.Parameter(torch.zeros(len(c.poses_deg), c.channels, c.height, c.width),
                                   requires_grad=False)

    def forward(self, x: Tensor, head_yaw: Tensor | np.ndarray) -> Tensor:
        """``x`` (B, C, H, W) uint8 or [0, 1] float; ``head_yaw`` (B,) radians. Float out,
        not clipped."""
        x = as_float_images(x)
        if tuple(x.shape[1:]) != tuple(self.deltas.shape[1:]):
            raise ValueError(f"the pose mean patch was fitted on {tuple(self.deltas.shape[1:])} "
                             f"images (C, H, W), got {tuple(x.shape[1:])}")
        if isinstance(head_yaw, Tensor):
            head_yaw = head_yaw.detach().cpu().numpy()
        yaw = np.asarray(head_yaw, dtype=np.float64).reshape(-1)
        if len(yaw) != len(x):
            raise ValueError(f"{len(x)} images but {len(yaw)} head yaws")
        if not np.isfinite(yaw).all():
            raise ValueError("head yaw holds missing or infinite values")
        w = torch.from_numpy(pose_weights(np.array(self.cfg.poses_deg), self.cfg.sign,
                                          np.degrees(yaw)))
        shift = torch.einsum("bk,kchw->bchw", w.to(self.deltas), self.deltas)
        return x + (self.cfg.strength * shift).to(x.dtype)


@register_model("pose_mean_patch_refiner", task="refiner")
def pose_mean_patch_refiner(**cfg: Any) -> PoseMeanPatchRefiner:
    return PoseMeanPatchRefiner(strict_from_dict(PoseMeanPatchConfig, cfg))


def fit_pose_mean_patch_refiner(synthetic: np.ndarray, synthetic_head_yaw: np.ndarray,
                                real: np.ndarray, real_pose_deg: np.ndarray,
                                strength: float = 1.0) -> PoseMeanPatchRefiner:
    """Fit on uint8 grayscale eyes ``(N, H, W)``: the synthetic ones with their head yaw
    (radians, the batch's metadata) and the real ones with their head pose (degrees, in
    the frame of the images as given: negated for mirrored eyes)."""
    if synthetic.ndim != 3:
        raise ValueError(f"the pose mean patch takes grayscale (N, H, W) images, got "
                         f"{tuple(synthetic.shape)}")
    fit = fit_pose_mean_patch(synthetic, np.degrees(np.asarray(synthetic_head_yaw, np.float64)),
                              real, real_pose_deg, strength)
    k, h, w = fit.deltas.shape
    net = PoseMeanPatchRefiner(PoseMeanPatchConfig(
        channels=1, height=h, width=w, poses_deg=tuple(fit.poses_deg.tolist()), sign=fit.sign,
        strength=strength))
    with torch.no_grad():
        net.deltas.copy_(torch.from_numpy(fit.deltas[:, None] / 255.0))
    return net.eval()
