"""The gaze task's loss (L2CS-Net: bin classification plus regression of the expected
angle) and its metric (the angle between 3D gaze vectors)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from models.gaze_bins import GazeBins

__all__ = ["angular_error_deg", "gaze_loss", "gaze_vectors"]


def gaze_loss(out: Any, pitchyaw: Tensor, bins: tuple[GazeBins, GazeBins], alpha: float = 1.0,
              reg: str = "mse", soft_sigma_deg: float | None = None) -> dict[str, Tensor]:
    r"""L2CS-Net loss per angle: cross-entropy over bins + alpha * regression of the
    expected angle, summed over pitch and yaw:

    .. math::
        \mathcal{L} = \sum_{a \in \{p, y\}} \mathrm{CE}(z_a, \mathrm{bin}(a))
                      + \alpha\, \ell\big(\textstyle\sum_k \mathrm{softmax}(z_a)_k c_k,\; a\big)

    The regression term is in *degrees*, as in L2CS (``reg="mse"``: deg^2, ``"l1"``: deg),
    so a 1-degree error weighs like one nat of cross-entropy at ``alpha=1``.

    Args:
        out: anything with ``pitch_logits``, ``yaw_logits`` and ``pitchyaw`` (a
            :class:`~models.gaze_net.GazeOutput` or ``HeadOutput``).
        pitchyaw: ``(N, 2)`` true (pitch, yaw) in radians.
        bins: ``(pitch_bins, yaw_bins)``, e.g. ``model.bins``.
        soft_sigma_deg: if set, cross-entropy against Gaussian-smoothed bin targets.

    Returns:
        ``{"gaze": total, "ce_pitch", "ce_yaw", "reg_pitch", "reg_yaw"}``.
    """
    losses: dict[str, Tensor] = {}
    for i, (name, logits, b) in enumerate((("pitch", out.pitch_logits, bins[0]),
                                           ("yaw", out.yaw_logits, bins[1]))):
        target = pitchyaw[:, i]
        if soft_sigma_deg is None:
            losses[f"ce_{name}"] = F.cross_entropy(logits.float(), b.to_bin(target))
        else:
            losses[f"ce_{name}"] = F.cross_entropy(logits.float(), b.soft_targets(target, soft_sigma_deg))
        err = torch.rad2deg(out.pitchyaw[:, i].float() - target.float())
        if reg == "mse":
            losses[f"reg_{name}"] = err.square().mean()
        elif reg == "l1":
            losses[f"reg_{name}"] = err.abs().mean()
        else:
            raise ValueError(f"reg must be 'mse' or 'l1', got {reg!r}")
    total = losses["ce_pitch"] + losses["ce_yaw"] + alpha * (losses["reg_pitch"] + losses["reg_yaw"])
    return {"gaze": total, **losses}


def gaze_vectors(pitchyaw: Tensor) -> Tensor:
    """(pitch, yaw) radians ``(..., 2)`` -> unit gaze vectors ``(..., 3)``, MPIIGaze convention:
    ``g = (-cos p sin y, -sin p, -cos p cos y)``."""
    p, y = pitchyaw[..., 0], pitchyaw[..., 1]
    return torch.stack([-torch.cos(p) * torch.sin(y), -torch.sin(p), -torch.cos(p) * torch.cos(y)], -1)


def angular_error_deg(pred_pitchyaw: Tensor, true_pitchyaw: Tensor, reduction: str = "mean") -> Tensor:
    """Angle between predicted and true 3D gaze vectors, degrees (the gaze metric).

    Computed in float64: in float32, ``acos`` of a cosine near 1 cannot resolve errors
    below ~0.02 degrees. A metric, not a loss (``acos`` has an infinite slope at 0).

    Args:
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one error per sample).
    """
    a = gaze_vectors(pred_pitchyaw.double())
    b = gaze_vectors(true_pitchyaw.double())
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    err = torch.acos(cos.clamp(-1.0, 1.0)) * (180.0 / math.pi)
    if reduction == "mean":
        return err.mean()
    if reduction == "none":
        return err
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
