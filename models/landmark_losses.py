r"""The landmark loss (integral regression on soft-argmax coordinates) and the NME metric.

**Loss** (:func:`landmark_loss`). Integral regression on the soft-argmax coordinates
of every stack (intermediate supervision, Newell et al. 2016), normalised by the crop
size, with per-point weights :math:`w_{nk}` (0 for invisible or missing points):

.. math::
    \mathcal{L}_{coord}^{(s)} = \frac{\sum_{n,k} w_{nk}\,
        \tfrac12 \big(\ell(\hat x^{(s)}_{nk} - x_{nk}) + \ell(\hat y^{(s)}_{nk} - y_{nk})\big) / L}
        {\sum_{n,k} w_{nk}}, \qquad
    \mathcal{L} = \lambda_c \frac{1}{S}\sum_s \mathcal{L}_{coord}^{(s)}
                + \lambda_h \frac{1}{S}\sum_s \mathcal{L}_{KL}^{(s)}

with :math:`\ell` = L1, smooth-L1 or Wing (:func:`wing`), :math:`L` the crop size and
:math:`\mathcal{L}_{KL}` the weighted mean of :func:`models.heatmaps.heatmap_kl`
(off by default: :math:`\lambda_h = 0`). Stacks are *averaged*, not summed as in the
paper, so the task loss, and with it the DA trade-off, means the same for 2 and 4 stacks.

**Metrics.** NME = 100 x mean point error / normaliser (DESIGN.md): inter-ocular
(outer eye corners, points 36 and 45 of the 0-based iBug 68) or the crop size; always
named in the key (``source_nme_io``, ``source_nme_crop``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from models.heatmaps import heatmap_kl

__all__ = [
    "IBUG_OUTER_EYE_CORNERS",
    "landmark_loss",
    "wing",
    "nme",
    "point_errors",
    "point_weights",
]

#: 0-based indices of the outer eye corners in the iBug 68 layout (inter-ocular NME).
IBUG_OUTER_EYE_CORNERS = (36, 45)
IBUG_LEFT_EYE = tuple(range(36, 42))
IBUG_RIGHT_EYE = tuple(range(42, 48))



# --------------------------------------------------------------------------- loss


def point_weights(points: Tensor, visible: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(weights (N, K) float, points with missing entries zeroed)``.

    A point counts with weight ``visible`` (bool or float in [0, 1]; 1 if None) and weight
    0 wherever its coordinates are not finite (missing labels may be NaN). Zeroing the
    missing coordinates keeps NaNs out of the graph: ``0 * nan`` would poison gradients.
    """
    finite = torch.isfinite(points).all(-1)
    w = finite.float() if visible is None else visible.float() * finite
    return w, torch.where(finite.unsqueeze(-1), points.float(), torch.zeros_like(points, dtype=torch.float32))


def wing(d: Tensor, w: float, eps: float) -> Tensor:
    r"""The Wing loss of Feng et al. ("Wing loss for robust facial landmark localisation
    with CNNs", CVPR 2018) of the errors ``d``, elementwise:
    :math:`w \ln(1 + |d|/\epsilon)` for :math:`|d| < w`, else :math:`|d| - C` with
    :math:`C = w - w \ln(1 + w/\epsilon)`, which joins the two pieces continuously. Its
    log part keeps a large gradient for small errors, where L1's is constant and L2's
    vanishes: what the last pixel of accuracy needs."""
    a = d.abs()
    c = w - w * torch.log1p(torch.tensor(w / eps, dtype=a.dtype, device=a.device))
    return torch.where(a < w, w * torch.log1p(a / eps), a - c)


def _weighted_mean(values: Tensor, w: Tensor) -> Tensor:
    """``sum(w * v) / sum(w)`` over everything; 0 (with zero gradient) when all weights are 0."""
    return (values * w).sum() / w.sum().clamp_min(1e-12)


def landmark_loss(out: Any, points: Tensor, visible: Tensor | None = None, *, crop_size: float,
                  stride: float, coord: str = "l1", coord_weight: float = 1.0,
                  heatmap_weight: float = 0.0, sigma: float = 1.0,
                  smooth_l1_beta: float = 0.01, wing_w: float = 0.08,
                  wing_eps: float = 0.016) -> dict[str, Tensor]:
    """The landmark task loss (module docstring) on a :class:`~models.hourglass.LandmarkOutput`.

    Args:
        out: needs ``stack_coords`` ``(N, S, K, 2)``; and ``heatmaps`` ``(N, S, K, H, W)``
            (beta-scaled logits) when ``heatmap_weight > 0``.
        points: ``(N, K, 2)`` true ``(x, y)`` pixel-centre coordinates; NaN = missing.
        visible: ``(N, K)`` bool or float weights, or None (all visible).
        crop_size: input crop size in pixels (the normaliser); stride: pixels per cell.
        coord: ``"l1"``, ``"smooth_l1"`` (``smooth_l1_beta`` in crop units: 0.01 = 1.3 px at
            128 px) or ``"wing"`` (``wing_w``, ``wing_eps`` in crop units; the defaults are
            the paper's w = 10, epsilon = 2 for 128 px faces, scaled to the crop).
        sigma: Gaussian target width in heatmap cells, for the heatmap term.

    Returns:
        ``{"landmarks": total, "coord": last stack, "coord_inter": mean of the earlier
        stacks (if any), "heatmap": mean KL over stacks (if heatmap_weight > 0)}``.
    """
    w, target = point_weights(points, visible)
    stack_coords = out.stack_coords.float()
    n_stacks = stack_coords.shape[1]
    per_stack = []
    for s in range(n_stacks):
        d = (stack_coords[:, s] - target) / crop_size  # (N, K, 2)
        if coord == "l1":
            e = d.abs()
        elif coord == "smooth_l1":
            e = F.smooth_l1_loss(d, torch.zeros_like(d), beta=smooth_l1_beta, reduction="none")
        elif coord == "wing":
            e = wing(d, wing_w, wing_eps)
        else:
            raise ValueError(f"coord must be 'l1', 'smooth_l1' or 'wing', got {coord!r}")
        per_stack.append(_weighted_mean(e.mean(-1), w))
    losses: dict[str, Tensor] = {"coord": per_stack[-1]}
    if n_stacks > 1:
        losses["coord_inter"] = torch.stack(per_stack[:-1]).mean()
    total = coord_weight * torch.stack(per_stack).mean()
    if heatmap_weight > 0:
        kl = heatmap_kl(out.heatmaps, target.unsqueeze(1).expand_as(stack_coords), stride, sigma)
        # every stack carries the same weights, so this is the mean over stacks too
        losses["heatmap"] = _weighted_mean(kl, w.unsqueeze(1).expand_as(kl))  # (N, S, K)
        total = total + heatmap_weight * losses["heatmap"]
    return {"landmarks": total, **losses}


# --------------------------------------------------------------------------- metrics


def point_errors(pred: Tensor, true: Tensor) -> Tensor:
    """Euclidean point errors ``(N, K)`` in pixels (float64); NaN where ``true`` is missing."""
    return (pred.double() - true.double()).norm(dim=-1)


def _normaliser(true: Tensor, norm: str, crop_size: float | None) -> Tensor:
    n = true.shape[0]
    t = true.double()
    if norm == "crop":
        if crop_size is None:
            raise ValueError("norm='crop' needs crop_size")
        return torch.full((n,), float(crop_size), dtype=torch.float64, device=true.device)
    if true.shape[1] != 68:
        raise ValueError(f"norm={norm!r} needs the iBug 68 layout, got {true.shape[1]} points")
    if norm == "inter_ocular":
        a, b = IBUG_OUTER_EYE_CORNERS
        return (t[:, a] - t[:, b]).norm(dim=-1)
    if norm == "inter_pupil":
        left = t[:, list(IBUG_LEFT_EYE)].mean(1)
        right = t[:, list(IBUG_RIGHT_EYE)].mean(1)
        return (left - right).norm(dim=-1)
    raise ValueError(f"norm must be 'inter_ocular', 'inter_pupil' or 'crop', got {norm!r}")


def nme(pred: Tensor, true: Tensor, *, norm: str = "inter_ocular", visible: Tensor | None = None,
        crop_size: float | None = None, reduction: str = "mean") -> Tensor:
    r"""Normalised mean error in percent:
    :math:`\mathrm{NME}_n = 100 \cdot \frac{1}{|V_n|}\sum_{k \in V_n} \|\hat p_{nk} - p_{nk}\| / d_n`.

    Args:
        pred, true: ``(N, K, 2)`` pixels; ``true`` may hold NaN for missing points.
        norm: ``"inter_ocular"`` (||p36 - p45||), ``"inter_pupil"`` (distance of the
            eye-contour centroids 36-41 and 42-47) or ``"crop"`` (``crop_size``).
        visible: ``(N, K)``; points with weight 0 are left out of the mean.
        reduction: ``"mean"`` over samples (those with a finite normaliser and at least
            one point) or ``"none"`` (``(N,)``, NaN for unusable samples).
    """
    w, _ = point_weights(true, visible)
    err = torch.nan_to_num(point_errors(pred, true), nan=0.0)
    w = w.double()
    per_sample = (err * w).sum(1) / w.sum(1)  # NaN for samples without points
    per_sample = 100.0 * per_sample / _normaliser(true, norm, crop_size)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        ok = torch.isfinite(per_sample)
        return per_sample[ok].mean() if bool(ok.any()) else per_sample.new_tensor(float("nan"))
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
