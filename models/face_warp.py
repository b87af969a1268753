"""Piecewise-affine warps between face shapes, batched in torch: the map that carries an
image from one set of 68 points to another, one affine map per triangle of a fixed
triangulation (the classic active-appearance-model warp).

:func:`piecewise_affine_grid` answers, for every pixel of a destination image whose face
has points ``dst``, where it comes from in a source image whose face has points ``src``
(a ``grid_sample`` grid) and whether that pixel is covered at all. A pixel is covered when
it lies in a triangle that keeps its orientation in both shapes: a triangle that flips
between them (the far side of a face turned away, where the projected points fold over)
carries no texture either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["piecewise_affine_grid", "triangulate", "warp_images"]

_EPS = 1e-4  # barycentric slack, so a pixel on a shared edge belongs to a triangle


def triangulate(points: np.ndarray) -> np.ndarray:
    """A Delaunay triangulation ``(K, 3)`` of one shape's points ``(P, 2)``, each triangle
    listed counter-clockwise in image coordinates (y down) so orientation checks agree."""
    from scipy.spatial import Delaunay, QhullError

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ValueError(f"expected finite (P, 2) points, got shape {pts.shape}")
    try:
        tri = Delaunay(pts).simplices.astype(np.int64)
    except QhullError:
        raise ValueError(f"the {len(pts)} points span no area (all on one line or one spot): "
                         "no shape to triangulate") from None
    flip = (_signed_area(torch.from_numpy(pts[tri])) < 0).numpy()
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri


def _signed_area(t: Tensor) -> Tensor:
    """Twice the signed area of triangles ``(..., 3, 2)``."""
    a, b, c = t[..., 0, :], t[..., 1, :], t[..., 2, :]
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def _pixel_centres(height: int, width: int) -> Tensor:
    """Every pixel's (x, y) ``(H * W, 2)``, row by row."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def _barycentric(q: Tensor, t: Tensor) -> Tensor:
    """The barycentric coordinates ``(..., HW, K, 3)`` of pixels ``q`` ``(HW, 2)`` in
    triangles ``t`` ``(..., K, 3, 2)`` (a degenerate triangle's are finite and meaningless:
    callers drop it by its area)."""
    e1, e2 = t[..., 1, :] - t[..., 0, :], t[..., 2, :] - t[..., 0, :]  # (..., K, 2)
    det = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    det = torch.where(det.abs() > 1e-9, det, torch.ones_like(det))[..., None, :]
    r = q[:, None, :] - t[..., None, :, 0, :]  # (..., HW, K, 2)
    l1 = (r[..., 0] * e2[..., None, :, 1] - r[..., 1] * e2[..., None, :, 0]) / det
    l2 = (e1[..., None, :, 0] * r[..., 1] - e1[..., None, :, 1] * r[..., 0]) / det
    return torch.stack([1.0 - l1 - l2, l1, l2], -1)


def piecewise_affine_grid(dst: Tensor, src: Tensor, triangles: Tensor, height: int, width: int,
                          usable: Tensor | None = None, chunk: int = 4, stride: int = 1
                          ) -> tuple[Tensor, Tensor]:
    """For faces with points ``dst`` ``(B, P, 2)`` in a ``height x width`` image (pixel
    units, x then y, pixel centres at integers), the ``grid_sample`` grid ``(B, H, W, 2)``
    (align_corners=False) into an image of the same size whose face has points ``src``
    (``(B, P, 2)``, or ``(P, 2)`` for one shape shared by all), and the float mask
    ``(B, H, W)`` of covered pixels. ``triangles``: ``(K, 3)`` point indices;
    ``usable``: ``(B, K)`` bool, the triangles that may cover a pixel (e.g. those whose
    three points are visible), all where None. ``dst`` given as one shape ``(P, 2)`` with
    ``src`` ``(B, P, 2)`` (faces onto a canonical shape) costs a gather per face.

    Otherwise every pixel is tested against every triangle; ``stride`` s > 1 does that on
    the centres of s x s blocks only and interpolates grid and mask bilinearly (s^2 times
    cheaper; the grid is exact at block centres and off by a fraction of a pixel where a
    block straddles two triangles, the mask's edge is soft over s pixels)."""
    if dst.ndim == 2 and src.ndim == 3:
        return _onto_one_shape(dst, src, triangles, height, width, usable)
    if dst.ndim != 3 or dst.shape[-1] != 2:
        raise ValueError(f"dst points must be (B, P, 2), got {tuple(dst.shape)}")
    if stride > 1:
        return _strided(dst, src, triangles, height, width, usable, chunk, stride)
    src = src.expand_as(dst) if src.ndim == 2 else src
    if src.shape != dst.shape:
        raise ValueError(f"src points {tuple(src.shape)} do not match dst {tuple(dst.shape)}")
    dst, src = dst.double(), src.double()
    q = _pixel_centres(height, width)
    grids, masks = [], []
    for i in range(0, len(dst), chunk):
        d, s = dst[i:i + chunk][:, triangles], src[i:i + chunk][:, triangles]  # (b, K, 3, 2)
        keep = (_signed_area(d) > 0) & (_signed_area(s) > 0)  # (b, K): not folded in either
        if usable is not None:
            keep = keep & usable[i:i + chunk]
        lam = _barycentric(q, d)  # (b, HW, K, 3)
        # each pixel takes the kept triangle it lies deepest in (its least barycentric
        # coordinate is largest), so a pixel outside them all extends its nearest one's
        # map smoothly: what a coarse grid interpolates across the outline
        depth = lam.amin(-1).masked_fill(~keep[:, None, :], -torch.inf)
        best, k = depth.max(-1)  # (b, HW)
        covered = best >= -_EPS
        lam = lam.gather(2, k[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
        s_k = s.gather(1, k[..., None, None].expand(-1, -1, 3, 2))  # (b, HW, 3, 2)
        pos = (lam[..., None] * s_k).sum(-2)  # (b, HW, 2) source pixels
        grids.append(_normalised(pos, height, width))
        masks.append(covered.reshape(-1, height, width).float())
    return torch.cat(grids), torch.cat(masks)


def _strided(dst: Tensor, src: Tensor, triangles: Tensor, height: int, width: int,
             usable: Tensor | None, chunk: int, s: int) -> tuple[Tensor, Tensor]:
    """:func:`piecewise_affine_grid` at the centres of ``s x s`` blocks, interpolated."""
    import math

    f = torch.nn.functional
    h, w = math.ceil(height / s), math.ceil(width / s)
    # block centres in the coarse grid's own pixel units: x_full = s * x_coarse + (s - 1) / 2
    shift = (s - 1) / 2.0
    grid, mask = piecewise_affine_grid((dst.double() - shift) / s, src, triangles, h, w, usable,
                                       chunk)
    # grid values are normalised source positions of the full-size image already (src in
    # full pixels); only the destination sampling is coarse
    grid = grid * torch.tensor([w / width, h / height]) + torch.tensor([w / width - 1, h / height - 1])
    full = f.interpolate(grid.permute(0, 3, 1, 2), scale_factor=s, mode="bilinear",
                         align_corners=False)[..., :height, :width].permute(0, 2, 3, 1)
    m = f.interpolate(mask[:, None], scale_factor=s, mode="bilinear", align_corners=False)
    return full.contiguous(), m[:, 0, :height, :width].contiguous()


def _normalised(pos: Tensor, height: int, width: int) -> Tensor:
    """Source pixel positions ``(b, HW, 2)`` as a ``grid_sample`` grid ``(b, H, W, 2)``."""
    norm = torch.stack([(2 * pos[..., 0] + 1) / width - 1, (2 * pos[..., 1] + 1) / height - 1], -1)
    return norm.reshape(-1, height, width, 2).float()


def _onto_one_shape(dst: Tensor, src: Tensor, triangles: Tensor, height: int, width: int,
                    usable: Tensor | None) -> tuple[Tensor, Tensor]:
    """:func:`piecewise_affine_grid` with one ``dst`` shape: each pixel's triangle and
    barycentric coordinates are found once, then every face is a gather."""
    q = _pixel_centres(height, width)
    t = dst.double()[triangles]  # (K, 3, 2)
    lam = _barycentric(q, t)  # (HW, K, 3)
    inside = (lam >= -_EPS).all(-1) & (_signed_area(t) > 0)[None]
    k = inside.to(torch.int8).argmax(-1)  # (HW,)
    lam_k = lam[torch.arange(len(q)), k]  # (HW, 3)
    s = src.double()[:, triangles]  # (B, K, 3, 2)
    keep = _signed_area(s) > 0
    if usable is not None:
        keep = keep & usable
    pos = (lam_k[None, :, :, None] * s[:, k]).sum(-2)  # (B, HW, 2)
    covered = inside.any(-1)[None] & keep[:, k]
    return _normalised(pos, height, width), covered.reshape(-1, height, width).float()


def warp_images(images: Tensor, grid: Tensor, mask: Tensor) -> Tensor:
    """``images`` ``(B, C, H, W)`` float sampled through ``grid`` (bilinear, border
    padding), zero where ``mask`` is."""
    out = torch.nn.functional.grid_sample(images.float(), grid, mode="bilinear",
                                          padding_mode="border", align_corners=False)
    return out * mask[:, None]
