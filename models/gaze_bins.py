"""L2CS-style gaze binning: one angle as classification over bins + expected value.

L2CS-Net (Abdelrahman et al. 2022) predicts each of pitch and yaw with its own head of
bin logits; the angle is the softmax-weighted mean of the bin centres, so one head gives
both a cross-entropy target and a differentiable regression output. Bins are fixed
width over ``[lo_deg, hi_deg]``; angles outside the range fall into the end bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PITCH_BINS", "YAW_BINS", "GazeBins"]


@dataclass(frozen=True)
class GazeBins:
    """Equal-width bins over ``[lo_deg, hi_deg]`` for one gaze angle.

    Attributes:
        lo_deg: lower edge of the first bin, degrees.
        hi_deg: upper edge of the last bin, degrees.
        n_bins: number of bins.
    """

    lo_deg: float = -45.0
    hi_deg: float = 45.0
    n_bins: int = 30

    def __post_init__(self) -> None:
        if not self.hi_deg > self.lo_deg:
            raise ValueError(f"need hi_deg > lo_deg, got {self.lo_deg}, {self.hi_deg}")
        if self.n_bins < 2:
            raise ValueError(f"need at least 2 bins, got {self.n_bins}")

    @property
    def width_deg(self) -> float:
        return (self.hi_deg - self.lo_deg) / self.n_bins

    def centres(self, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
        """Bin centres in radians, shape ``(n_bins,)``."""
        w = self.width_deg
        deg = torch.arange(self.n_bins, device=device, dtype=torch.float64) * w + self.lo_deg + w / 2
        return torch.deg2rad(deg).to(dtype)

    def to_bin(self, angle_rad: Tensor) -> Tensor:
        """Index of the bin holding each angle (int64, same shape); clamped to the ends."""
        deg = torch.rad2deg(angle_rad.double())
        idx = torch.floor((deg - self.lo_deg) / self.width_deg).long()
        return idx.clamp_(0, self.n_bins - 1)

    def expectation(self, logits: Tensor) -> Tensor:
        """Softmax-weighted bin centre, radians: ``(..., n_bins) -> (...)``.

        Computed in float32 at least, so it stays accurate under autocast.
        """
        p = torch.softmax(logits.float(), dim=-1)
        return p @ self.centres(logits.device)

    def soft_targets(self, angle_rad: Tensor, sigma_deg: float | None = None) -> Tensor:
        """Gaussian label smoothing over bin centres: ``(...) -> (..., n_bins)``, rows sum to 1.

        ``sigma_deg`` defaults to half a bin width, which puts most mass on the true bin
        and its neighbours. Usable as ``F.cross_entropy(logits, soft_targets(y))``.
        """
        sigma = math.radians(sigma_deg if sigma_deg is not None else self.width_deg / 2)
        d = angle_rad.float().unsqueeze(-1) - self.centres(angle_rad.device)  # (..., n_bins)
        return torch.softmax(-0.5 * (d / sigma) ** 2, dim=-1)


#: Defaults: 3-degree bins covering pitch +-45 and yaw +-51 (MPIIGaze eyes stay well inside).
PITCH_BINS = GazeBins(-45.0, 45.0, 30)
YAW_BINS = GazeBins(-51.0, 51.0, 34)
