"""The mean patch for faces, taken in the face's own coordinates: the mean real face minus
the mean synthetic face, each face first warped onto one canonical shape by its 68 points
(:mod:`models.face_warp`), and added back to every synthetic face warped onto its own
points:

    refined = image + strength * warp_to(points, fade * (mean_canon(real) - mean_canon(synthetic)))

A plain mean patch (:mod:`models.mean_patch`) works for eye patches, which share one
shading at one place; faces turn and move inside their crops, so the same difference
taken per pixel paints a ghost of a frontal face over every pose (docs/refinement.md).
Aligned by the points, the difference carries what real faces share and ours lack where
it belongs: darker brows and lash lines, redder lips, the skin's tone and shading.

The synthetic points are the batch's exact labels; the real ones come from a landmark
model (the real images are unlabeled here). Triangles with a hidden point (the far side of
a turned head, a hand, a mask) neither feed the synthetic mean nor get patched, and the
difference fades to zero over ``fade_px`` inside the face's outline, so no seam is drawn
along the jaw, where the labels are.

The refiner reads each image's points and visibility (``conditioned_on``): ``(B, 68, 3)``,
x and y in crop pixels and 1 where visible, beside the images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.configs import strict_from_dict
from models.face_warp import piecewise_affine_grid, triangulate, warp_images
from models.refiner import ConditionedPatch, as_float_images
from models.registration import register_model

__all__ = ["CONDITION", "LandmarkPatchConfig", "LandmarkPatchRefiner", "canonical_mean",
           "fit_landmark_patch"]

N_POINTS = 68
#: what the refiner reads per image: the 68 points (x, y) and their visibility
CONDITION = "points68_visible"
_FEATHER_PX = 5  # a hidden triangle's edge is softened over this many pixels
#: the face -> canonical map is found on 2 x 2 blocks and interpolated (models.face_warp):
#: 4x cheaper, and the difference it samples is smooth at that scale
_GRID_STRIDE = 2


@dataclass(frozen=True)
class LandmarkPatchConfig:
    """``shape``: the canonical 68 points (x0, y0, x1, ...) in crop pixels; ``triangles``:
    its triangulation (i, j, k, ...); ``strength``: how far toward the real mean."""

    channels: int = 3
    height: int = 128
    width: int = 128
    shape: tuple[float, ...] = ()
    triangles: tuple[int, ...] = ()
    strength: float = 1.0
    fade_px: float = 8.0
    conditioned_on: str = CONDITION

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(float(v) for v in self.shape))
        object.__setattr__(self, "triangles", tuple(int(v) for v in self.triangles))
        if len(self.shape) != 2 * N_POINTS or not all(np.isfinite(self.shape)):
            raise ValueError(f"shape must hold {2 * N_POINTS} finite numbers, got {len(self.shape)}")
        t = self.triangles
        if not t or len(t) % 3 or min(t) < 0 or max(t) >= N_POINTS:
            raise ValueError(f"triangles must be triples of point indices 0-{N_POINTS - 1}")
        if self.channels not in (1, 3) or self.height < 1 or self.width < 1:
            raise ValueError(f"bad image shape: {self.channels} x {self.height} x {self.width}")
        if not 0.0 <= self.strength <= 4.0:
            raise ValueError(f"strength must be in [0, 4], got {self.strength}")
        if self.fade_px < 0:
            raise ValueError(f"fade_px must be >= 0, got {self.fade_px}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape), "triangles": list(self.triangles)}


class LandmarkPatchRefiner(ConditionedPatch):
    model_name = "landmark_patch_refiner"

    def __init__(self, cfg: LandmarkPatchConfig):
        super().__init__()
        self.cfg = cfg
        # the faded difference of the canonical means, [0, 1] intensity units, (C, H, W)
        self.delta = nn.Parameter(torch.zeros(cfg.channels, cfg.height, cfg.width),
                                  requires_grad=False)
        self.register_buffer("shape", torch.tensor(cfg.shape, dtype=torch.float64).view(N_POINTS, 2),
                             persistent=False)
        self.register_buffer("triangles", torch.tensor(cfg.triangles, dtype=torch.long).view(-1, 3),
                             persistent=False)

    def residual(self, x: Tensor, points_visible: Tensor) -> Tensor:
        c = self.cfg
        if tuple(x.shape[1:]) != tuple(self.delta.shape):
            raise ValueError(f"the landmark patch was fitted on {tuple(self.delta.shape)} "
                             f"images (C, H, W), got {tuple(x.shape[1:])}")
        pv = torch.as_tensor(points_visible, dtype=torch.float64)
        if pv.shape != (len(x), N_POINTS, 3):
            raise ValueError(f"expected each image's {N_POINTS} points and visibility "
                             f"({len(x)}, {N_POINTS}, 3), got {tuple(pv.shape)}")
        usable = (pv[..., 2] > 0.5)[:, self.triangles].all(-1)
        grid, mask = piecewise_affine_grid(pv[..., :2], self.shape, self.triangles, c.height,
                                           c.width, usable=usable, stride=_GRID_STRIDE)
        mask = torch.nn.functional.avg_pool2d(mask[:, None], _FEATHER_PX, 1, _FEATHER_PX // 2)[:, 0]
        delta = self.delta.float().expand(len(x), -1, -1, -1)
        return (c.strength * warp_images(delta, grid.to(x.device), mask.to(x.device))).to(x.dtype)

    def forward(self, x: Tensor, points_visible: Tensor) -> Tensor:
        x = as_float_images(x)
        return x + self.residual(x, points_visible)


@register_model("landmark_patch_refiner", task="refiner")
def landmark_patch_refiner(**cfg: Any) -> LandmarkPatchRefiner:
    return LandmarkPatchRefiner(strict_from_dict(LandmarkPatchConfig, cfg))


def canonical_mean(images: np.ndarray, points: np.ndarray, visible: np.ndarray | None,
                   shape: np.ndarray, triangles: np.ndarray, chunk: int = 64
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The mean of uint8 faces ``(N, H, W, C)`` warped onto ``shape`` by their ``points``
    ``(N, 68, 2)`` as ``(C, H, W)`` in [0, 1], and how many faces covered each pixel
    ``(H, W)``; with ``visible`` ``(N, 68)``, triangles with a hidden point are left out."""
    n, h, w, _ = images.shape
    tri = torch.from_numpy(np.asarray(triangles, dtype=np.int64))
    canon = torch.from_numpy(np.asarray(shape, dtype=np.float64))
    total = torch.zeros(images.shape[-1], h, w, dtype=torch.float64)
    count = torch.zeros(h, w, dtype=torch.float64)
    for i in range(0, n, chunk):
        x = torch.from_numpy(images[i:i + chunk]).permute(0, 3, 1, 2).float() / 255.0
        p = torch.from_numpy(np.asarray(points[i:i + chunk], dtype=np.float64))
        usable = (None if visible is None
                  else torch.from_numpy(np.array(visible[i:i + chunk], dtype=bool))[:, tri].all(-1))
        grid, mask = piecewise_affine_grid(canon, p, tri, h, w, usable=usable)
        total += warp_images(x, grid, mask).double().sum(0)
        count += mask.double().sum(0)
    return (total / count.clamp(min=1)).numpy(), count.numpy()


def _fade(valid: np.ndarray, fade_px: float) -> np.ndarray:
    """1 deep inside ``valid``, falling linearly to 0 at its edge over ``fade_px``."""
    from scipy.ndimage import distance_transform_edt

    if fade_px <= 0:
        return valid.astype(np.float64)
    return np.clip(distance_transform_edt(valid) / fade_px, 0.0, 1.0)


def fit_landmark_patch(synthetic: np.ndarray, synthetic_points: np.ndarray,
                       synthetic_visible: np.ndarray, real: np.ndarray, real_points: np.ndarray,
                       strength: float = 1.0, fade_px: float = 8.0, min_share: float = 0.05
                       ) -> LandmarkPatchRefiner:
    """The refiner that moves ``synthetic`` faces (uint8 ``(N, H, W, C)``, exact points
    and visibility) toward ``real`` ones (uint8, the same shape; ``real_points`` e.g. a
    landmark model's answer). The canonical shape is the real faces' mean shape; a pixel
    keeps a difference only where at least ``min_share`` of each set covered it."""
    if tuple(synthetic.shape[1:]) != tuple(real.shape[1:]) or synthetic.ndim != 4:
        raise ValueError(f"synthetic faces are {tuple(synthetic.shape[1:])}, real ones "
                         f"{tuple(real.shape[1:])}: the landmark patch needs one (H, W, C) size")
    for name, pts, k in (("synthetic", synthetic_points, len(synthetic)), ("real", real_points, len(real))):
        if np.shape(pts) != (k, N_POINTS, 2) or not np.isfinite(pts).all():
            raise ValueError(f"{name} points must be finite ({k}, {N_POINTS}, 2), got {np.shape(pts)}")
    if np.shape(synthetic_visible) != (len(synthetic), N_POINTS):
        raise ValueError(f"synthetic visibility must be ({len(synthetic)}, {N_POINTS}), got "
                         f"{np.shape(synthetic_visible)}")
    shape = np.asarray(real_points, dtype=np.float64).mean(0)
    triangles = triangulate(shape)
    mean_real, n_real = canonical_mean(real, real_points, None, shape, triangles)
    mean_syn, n_syn = canonical_mean(synthetic, synthetic_points,
                                     np.asarray(synthetic_visible, dtype=bool), shape, triangles)
    valid = (n_real >= max(1.0, min_share * len(real))) & (n_syn >= max(1.0, min_share * len(synthetic)))
    if not valid.any():
        raise ValueError("no pixel of the canonical face is covered by both sets")
    delta = (mean_real - mean_syn) * _fade(valid, fade_px)[None]
    _, h, w = delta.shape
    net = LandmarkPatchRefiner(LandmarkPatchConfig(
        channels=delta.shape[0], height=h, width=w, shape=tuple(shape.reshape(-1)),
        triangles=tuple(triangles.reshape(-1)), strength=strength, fade_px=fade_px))
    with torch.no_grad():
        net.delta.copy_(torch.from_numpy(delta.astype(np.float32)))
    return net.eval()
