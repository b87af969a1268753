"""Synthetic faces set into real photographs: each synthetic face keeps its own pixels
inside the outline of its 68 points, and everything around it (hair, forehead, ears,
neck, background) comes from a real face photograph aligned onto it by those points:

    refined = alpha * colour_matched(image) + (1 - alpha) * warp(real_j, similarity(real_j -> face))

Our renderer draws bald heads on random backdrops; LFPW's crops are framed by hair,
fringes, collars and photographed rooms, which no mean patch can add
(docs/refinement.md). The labels live inside the outline (the jaw line is its edge), so
they stay where they were: ``alpha`` is 1 inside the convex hull of the 68 points and up
to ``margin_px`` beyond it, and falls to 0 over ``feather_px`` further out, so no seam
is drawn along the jaw.

Which photograph: the real faces (a bank of up to ``bank_size``, their points found by
a landmark model, the photographs being unlabeled) are each aligned onto the synthetic
face by the least-squares similarity of the two point sets; of the ``choices`` closest
in shape (the similarity's relative residual), one is taken by a hash of the face's
points, so the answer is a function of the face alone (any chunking, any process) and
faces of one shape still get different photographs. A face no photograph fits (a
profile, where frontal photographs leave a residual above ``max_residual``) is left
as it is.

Colour: inside the outline the synthetic face is moved per channel to the mean and
spread of the photograph's own face there (``colour``: how far, 0-1), so the seam
joins skin to skin of one tone; the spread's gain is kept within 0.8-1.25 (more amplifies the renderer's noise).

Shading (``shading``: how much, 0-1): a rendered face is lit evenly, a photographed one
is not (a shadow beside the nose, a lit cheek, dark eye sockets). Inside the outline the
face's low frequencies (a Gaussian of ``shading_sigma_px``, taken over the inside only)
are moved toward the photograph's own face there, and its high frequencies (the edges of
lids, brows, lips and nostrils that place the points) are kept:

    face + shading * (low(real) - low(face))

The refiner reads each image's 68 points and visibility beside it, as the face-aligned
patch does (:mod:`models.landmark_patch`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.landmark_patch import CONDITION, N_POINTS
from models.refiner import ConditionedPatch, as_float_images
from models.registration import register_model

__all__ = ["RealContextConfig", "RealContextRefiner", "fit_real_context", "hull_distance",
           "similarity_fits"]

_GAIN_RANGE = (0.8, 1.25)
_MIN_SPREAD_PX = 2.0  # real points closer than this to their centre are no face


@dataclass(frozen=True)
class RealContextConfig:
    channels: int = 3
    height: int = 128
    width: int = 128
    bank_size: int = 1
    margin_px: float = 4.0
    feather_px: float = 4.0
    choices: int = 8
    max_residual: float = 0.05
    colour: float = 1.0
    shading: float = 0.0
    shading_sigma_px: float = 6.0
    conditioned_on: str = CONDITION

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or self.height < 1 or self.width < 1:
            raise ValueError(f"bad image shape: {self.channels} x {self.height} x {self.width}")
        if self.bank_size < 1 or self.choices < 1:
            raise ValueError(f"bank_size and choices must be >= 1, got {self.bank_size}, {self.choices}")
        if self.margin_px < 0 or self.feather_px < 0:
            raise ValueError(f"margin_px and feather_px must be >= 0, got {self.margin_px}, "
                             f"{self.feather_px}")
        if not 0.0 < self.max_residual <= 1.0:
            raise ValueError(f"max_residual must be in (0, 1], got {self.max_residual}")
        if not 0.0 <= self.colour <= 1.0:
            raise ValueError(f"colour must be in [0, 1], got {self.colour}")
        if not 0.0 <= self.shading <= 1.0 or self.shading_sigma_px <= 0:
            raise ValueError(f"shading must be in [0, 1] and shading_sigma_px > 0, got "
                             f"{self.shading}, {self.shading_sigma_px}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def similarity_fits(points: Tensor, bank: Tensor) -> tuple[Tensor, Tensor]:
    """For faces ``points`` ``(B, P, 2)`` and real shapes ``bank`` ``(K, P, 2)``: the
    complex factor ``w`` ``(B, K)`` of the least-squares similarity that carries each
    centred real shape onto each centred face (scale |w|, rotation arg w), and its
    residual relative to the face's spread ``(B, K)`` (0: the same shape; 1: nothing in
    common)."""
    zp = torch.complex(points[..., 0].double(), points[..., 1].double())
    zq = torch.complex(bank[..., 0].double(), bank[..., 1].double())
    zp = zp - zp.mean(-1, keepdim=True)
    zq = zq - zq.mean(-1, keepdim=True)
    cross = zp @ zq.conj().T  # (B, K): sum_j p_j conj(q_j)
    nq = (zq.abs() ** 2).sum(-1).clamp(min=1e-12)
    np_ = (zp.abs() ** 2).sum(-1, keepdim=True).clamp(min=1e-12)
    residual = (1.0 - cross.abs() ** 2 / (nq * np_)).clamp(min=0.0)
    return cross / nq, residual


def hull_distance(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Every pixel's distance outside the convex hull of ``points`` ``(P, 2)`` (x, y in
    pixels), ``(H, W)``: the largest signed distance to the hull's edge lines, negative
    inside (exact inside, a lower bound outside, which only matters far from it)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(points)
    except QhullError:
        return np.full((height, width), np.inf)
    eq = hull.equations  # rows (nx, ny, c): n . p + c <= 0 inside, |n| = 1
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.max(eq[:, 0, None, None] * xs + eq[:, 1, None, None] * ys + eq[:, 2, None, None], 0)


def _pick(residual: Tensor, points: Tensor, choices: int) -> Tensor:
    """One bank index per face: of its ``choices`` best-fitting shapes, the one a hash
    of its own points names."""
    k = min(choices, residual.shape[1])
    best = residual.topk(k, dim=1, largest=False).indices  # (B, k), best first
    key = (points.double().abs().sum((1, 2)) * 64.0).round().long() % k
    return best.gather(1, key[:, None])[:, 0]


class RealContextRefiner(ConditionedPatch):
    model_name = "real_context_refiner"

    def __init__(self, cfg: RealContextConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("bank", torch.zeros(cfg.bank_size, cfg.channels, cfg.height, cfg.width,
                                                 dtype=torch.uint8))
        # a parameter, so the refiner has a device to report; never trained
        self.bank_points = nn.Parameter(torch.zeros(cfg.bank_size, N_POINTS, 2), requires_grad=False)

    def forward(self, x: Tensor, points_visible: Any) -> Tensor:
        c = self.cfg
        x = as_float_images(x)
        if tuple(x.shape[1:]) != (c.channels, c.height, c.width):
            raise ValueError(f"the real-context refiner was fitted on {(c.channels, c.height, c.width)} "
                             f"images (C, H, W), got {tuple(x.shape[1:])}")
        pv = torch.as_tensor(np.asarray(points_visible), dtype=torch.float64)
        if pv.shape != (len(x), N_POINTS, 3):
            raise ValueError(f"expected each image's {N_POINTS} points and visibility "
                             f"({len(x)}, {N_POINTS}, 3), got {tuple(pv.shape)}")
        pts = pv[..., :2]
        bank_pts = self.bank_points.detach().double().cpu()
        w, residual = similarity_fits(pts, bank_pts)
        j = _pick(residual, pts, c.choices)
        rows = torch.arange(len(x))
        fits = residual[rows, j] <= c.max_residual
        w = w[rows, j]
        # each output pixel z (complex, pixel centres) comes from mean_q + (z - mean_p) / w
        zp_mean = torch.complex(pts[..., 0].mean(-1), pts[..., 1].mean(-1))
        q = bank_pts[j]
        zq_mean = torch.complex(q[..., 0].mean(-1), q[..., 1].mean(-1))
        ys, xs = torch.meshgrid(torch.arange(c.height, dtype=torch.float64),
                                torch.arange(c.width, dtype=torch.float64), indexing="ij")
        z = torch.complex(xs, ys)[None]
        src = zq_mean[:, None, None] + (z - zp_mean[:, None, None]) / w[:, None, None]
        grid = torch.stack([(src.real + 0.5) / c.width * 2 - 1,
                            (src.imag + 0.5) / c.height * 2 - 1], -1).float()
        real = self.bank[j.to(self.bank.device)].float().div(255.0).to(x.device)
        real = torch.nn.functional.grid_sample(real, grid.to(x.device), mode="bilinear",
                                               padding_mode="border", align_corners=False)
        dist = torch.from_numpy(np.stack([hull_distance(p, c.height, c.width) for p in pts.numpy()]))
        alpha = (1.0 - (dist - c.margin_px) / max(c.feather_px, 1e-6)).clamp(0.0, 1.0)
        alpha = torch.where(fits[:, None, None], alpha, torch.ones_like(alpha)).float().to(x.device)
        inside = (dist < 0).float().to(x.device)[:, None]
        face = self._match_colour(x, real, inside) if c.colour > 0 else x
        if c.shading > 0:
            face = self._take_shading(face, real, inside)
        face = torch.where(fits[:, None, None, None].to(x.device), face, x)
        return alpha[:, None] * face + (1.0 - alpha[:, None]) * real

    def _match_colour(self, x: Tensor, real: Tensor, inside: Tensor) -> Tensor:
        """``x`` moved per channel toward the mean and spread of ``real`` inside the outline."""
        n = inside.sum((2, 3), keepdim=True).clamp(min=1.0)
        mu_s, mu_r = (x * inside).sum((2, 3), keepdim=True) / n, (real * inside).sum((2, 3), keepdim=True) / n
        sd_s = (((x - mu_s) ** 2 * inside).sum((2, 3), keepdim=True) / n).sqrt()
        sd_r = (((real - mu_r) ** 2 * inside).sum((2, 3), keepdim=True) / n).sqrt()
        gain = (sd_r / sd_s.clamp(min=1e-3)).clamp(*_GAIN_RANGE)
        matched = (x - mu_s) * gain + mu_r
        return (x + self.cfg.colour * (matched - x)).clamp(0.0, 1.0)

    def _take_shading(self, face: Tensor, real: Tensor, inside: Tensor) -> Tensor:
        """``face`` with its low frequencies inside the outline moved toward ``real``'s."""
        low = _inside_blur(inside, self.cfg.shading_sigma_px)
        return (face + self.cfg.shading * (low(real) - low(face))).clamp(0.0, 1.0)


def _inside_blur(inside: Tensor, sigma: float):
    """A Gaussian blur of ``sigma`` px that averages over ``inside`` ``(B, 1, H, W)`` only
    (normalised convolution), so nothing from around the face leaks into it."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=inside.dtype, device=inside.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()

    def blur(img: Tensor) -> Tensor:
        ch = img.shape[1]
        pad = torch.nn.functional.pad(img, (radius, radius, radius, radius))
        img = torch.nn.functional.conv2d(pad, k.view(1, 1, 1, -1).expand(ch, 1, 1, -1), groups=ch)
        return torch.nn.functional.conv2d(img, k.view(1, 1, -1, 1).expand(ch, 1, -1, 1), groups=ch)

    weight = blur(inside).clamp(min=1e-6)
    return lambda img: blur(img * inside) / weight


@register_model("real_context_refiner", task="refiner")
def real_context_refiner(**cfg: Any) -> RealContextRefiner:
    return RealContextRefiner(strict_from_dict(RealContextConfig, cfg))


def fit_real_context(real: np.ndarray, real_points: np.ndarray, bank_size: int = 256,
                     **settings: Any) -> RealContextRefiner:
    """The refiner that sets faces into the photographs ``real`` (uint8 ``(N, H, W, C)``)
    whose 68 points are ``real_points`` ``(N, 68, 2)`` (e.g. a landmark model's answer);
    up to ``bank_size`` of them, evenly spaced over the set, are kept in the refiner,
    leaving out those whose points sit on one spot (a landmarker that found no face)."""
    if real.ndim != 4 or real.shape[-1] not in (1, 3) or len(real) == 0:
        raise ValueError(f"expected real faces (N, H, W, C) with C 1 or 3, got {real.shape}")
    if np.shape(real_points) != (len(real), N_POINTS, 2) or not np.isfinite(real_points).all():
        raise ValueError(f"real points must be finite ({len(real)}, {N_POINTS}, 2), got "
                         f"{np.shape(real_points)}")
    pts = np.asarray(real_points, dtype=np.float64)
    spread = np.sqrt(((pts - pts.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))
    usable = np.flatnonzero(spread >= _MIN_SPREAD_PX)  # a face, not points on one spot
    if len(usable) == 0:
        raise ValueError(f"the real faces' 68 points span no face (each within "
                         f"{_MIN_SPREAD_PX:g} px of its centre): no photograph to align by")
    keep = usable[np.unique(np.linspace(0, len(usable) - 1,
                                        min(bank_size, len(usable))).round().astype(int))]
    _, h, w, ch = real.shape
    net = RealContextRefiner(RealContextConfig(channels=ch, height=h, width=w,
                                               bank_size=len(keep), **settings))
    with torch.no_grad():
        net.bank.copy_(torch.from_numpy(np.ascontiguousarray(real[keep])).permute(0, 3, 1, 2))
        net.bank_points.copy_(torch.from_numpy(np.asarray(real_points, dtype=np.float32)[keep]))
    return net.eval()
