r"""Heatmap <-> coordinate operations for landmark models: soft-argmax, Gaussian targets,
the heatmap KL term and spatial entropy.

**Coordinate convention.** Points are ``(x, y)`` in 0-based *input-pixel-centre*
coordinates: pixel ``(row r, col c)`` of the input crop has its centre at ``(c, r)`` and
covers ``[c - 0.5, c + 0.5) x [r - 0.5, r + 0.5)`` (so a 128-px crop spans
``[-0.5, 127.5)``). The ``.pts`` files of 300-W are 1-based: subtract 1 when reading.

A heatmap of ``H x W`` cells over an input of stride ``s`` (128 / 32 = 4): cell ``i``
covers input pixels ``[i s, (i + 1) s)``, whose centres average to

.. math::
    c_i = (i + \tfrac12)\, s - \tfrac12 .

**Soft-argmax** (integral regression; Sun et al., "Integral human pose regression",
ECCV 2018; Nibali et al. 2018): for logits :math:`z_k \in \mathbb{R}^{H \times W}` of
landmark :math:`k` and an inverse temperature :math:`\beta`,

.. math::
    p_k = \mathrm{softmax}(\beta z_k) \ \text{over all } HW \text{ cells}, \qquad
    \hat x_k = \sum_{i,j} p_{k,ij}\, c_j, \quad \hat y_k = \sum_{i,j} p_{k,ij}\, c_i .

It is differentiable and sub-cell accurate, unlike the argmax; its range is the convex
hull of the cell centres, ``[c_0, c_{W-1}] = [1.5, 125.5]`` for 128 / 32, so points
within 2 px of the border can be approached but not reached.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "cell_centres",
    "gaussian_heatmaps",
    "heatmap_kl",
    "max_spatial_entropy",
    "soft_argmax",
    "spatial_entropy",
]


def cell_centres(n: int, stride: float, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Input-pixel coordinates of the centres of ``n`` heatmap cells: ``(i + 0.5) s - 0.5``."""
    return (torch.arange(n, device=device, dtype=torch.float64) + 0.5).mul(stride).sub(0.5).to(dtype)


def soft_argmax(logits: Tensor, stride: float, beta: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
    """Expected coordinates under the spatial softmax of each heatmap.

    Args:
        logits: ``(..., H, W)`` heatmap logits (any leading dims, e.g. ``(N, K)``).
        stride: input pixels per heatmap cell.
        beta: inverse temperature multiplying the logits (a number or a 0-d tensor, which
            may be a learnable parameter).

    Returns:
        ``(coords, probs)``: ``(..., 2)`` as ``(x, y)`` input-pixel coordinates (module
        docstring) and ``(..., H*W)`` the spatial softmax, both float32 at least, so
        they stay accurate under bf16 autocast.
    """
    h, w = logits.shape[-2:]
    z = logits.float()
    if not (isinstance(beta, (int, float)) and beta == 1):  # a full pass, and one back
        z = z * beta
    probs = torch.softmax(z.flatten(-2), dim=-1)
    grid = probs.unflatten(-1, (h, w))
    cx = cell_centres(w, stride, logits.device, probs.dtype)
    cy = cell_centres(h, stride, logits.device, probs.dtype)
    # multiply-and-sum, not `@`: autocast runs matmuls in bf16 (CPU and CUDA), which
    # would round a coordinate near 100 px to 0.5 px; elementwise ops stay in float32
    x = (grid.sum(-2) * cx).sum(-1)  # marginal over rows (..., W) -> (...)
    y = (grid.sum(-1) * cy).sum(-1)  # marginal over columns (..., H) -> (...)
    return torch.stack([x, y], dim=-1), probs


def gaussian_heatmaps(points: Tensor, size: tuple[int, int], stride: float,
                      sigma: float = 1.0) -> Tensor:
    r"""Unnormalised Gaussian target heatmaps, peak 1 at the (continuous) point:

    .. math::
        g_{ij} = \exp\Big(-\frac{(c_j - x)^2 + (c_i - y)^2}{2 (\sigma s)^2}\Big)

    Args:
        points: ``(..., 2)`` ``(x, y)`` input-pixel coordinates; non-finite points give
            all-zero maps.
        size: ``(H, W)`` of the heatmap.
        sigma: standard deviation in heatmap *cells* (``sigma * stride`` input pixels).

    Returns:
        ``(..., H, W)`` float32. Normalised to sum 1 (``g / g.sum()``), its mean is the
        point away from the border to within 1e-5 px for ``sigma >= 1`` cell (1e-4 px at
        0.8, 0.015 px at 0.6: the sampled Gaussian's mean error grows fast as it narrows),
        so the round trip with :func:`soft_argmax` of ``log g`` is exact in practice.
    """
    h, w = size
    p = points.float()
    finite = torch.isfinite(p).all(-1, keepdim=True)
    p = torch.where(finite, p, torch.zeros_like(p))
    cx = cell_centres(w, stride, p.device)
    cy = cell_centres(h, stride, p.device)
    s2 = 2.0 * (sigma * stride) ** 2
    gx = torch.exp(-(cx - p[..., :1]).square() / s2)  # (..., W)
    gy = torch.exp(-(cy - p[..., 1:]).square() / s2)  # (..., H)
    g = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    return g * finite.unsqueeze(-1).float()


def heatmap_kl(logits: Tensor, points: Tensor, stride: float, sigma: float = 1.0,
               beta: float | Tensor = 1.0) -> Tensor:
    r"""Per-heatmap KL divergence from the normalised Gaussian target to the spatial
    softmax, :math:`\mathrm{KL}(q \,\|\, p) = \sum q (\log q - \log p)`, ``(...,)``.

    The heatmap term that matches soft-argmax: it shapes the same distribution whose mean
    is the prediction (TLlib's ``JointsKLLoss`` does the same over flattened H*W), where
    an MSE on raw maps (Newell et al.) would train a different quantity. Zero exactly
    when ``p = q``. Targets are cut at 1e-12 of the peak so ``q log q`` stays finite.
    """
    h, w = logits.shape[-2:]
    q = gaussian_heatmaps(points, (h, w), stride, sigma).flatten(-2)
    q = q / q.sum(-1, keepdim=True).clamp_min(1e-12)
    log_p = torch.log_softmax(logits.float().flatten(-2) * beta, dim=-1)
    q_log_q = torch.where(q > 1e-12, q * torch.log(q.clamp_min(1e-12)), torch.zeros_like(q))
    return (q_log_q - q * log_p).sum(-1)


def spatial_entropy(probs: Tensor) -> Tensor:
    """Entropy in nats of each spatial distribution: ``(..., HW) -> (...)``; at most
    ``log(HW)`` (a flat map), 0 for all mass in one cell."""
    p = probs.double()
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1).to(probs.dtype)


def max_spatial_entropy(h: int, w: int) -> float:
    """Entropy of a flat ``H x W`` map, ``log(HW)``: the scale to read entropies against."""
    return math.log(h * w)
