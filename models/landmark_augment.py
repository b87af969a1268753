"""Batched augmentation of face crops that moves the landmarks with the pixels.

One call augments a whole batch on its device: a random affine per sample (horizontal
flip, rotation, scale, aspect, translation) applied to the images with one
``affine_grid``/``grid_sample`` and to the points with the same matrix, then occlusion,
colour, the photometric ops of :func:`models.augment.augment` (blur, contrast stretch,
gamma, contrast, brightness, noise) and a JPEG round trip. As in :mod:`models.augment`
every random number comes from the ``torch.Generator`` passed in, drawn in a fixed order
for every sample whether or not its op fires: the same seed gives the same output, and a
change of one probability does not reshuffle the others.

**Points** are ``(x, y)`` pixel-centre coordinates of the crop (``(0, 0)`` is the centre
of the top-left pixel). With ``c = ((W - 1) / 2, (H - 1) / 2)`` a sample's map is
``p' = A (p - c) + c + t``, ``A = R(angle) diag(s a, s / a) F`` with ``F`` the flip
``diag(-1, 1)`` or the identity. ``grid_sample`` (``align_corners=False``) places pixel
centre ``x`` at ``u = (2x + 1) / W - 1 = 2 (x - c_x) / W``, so with ``N = diag(2/W, 2/H)``
the output pixel ``u'`` samples the input at ``N A^-1 N^-1 u' - N A^-1 t``: that is the
``theta`` below, and images and points agree to interpolation error (tests: blobs
rendered at known points land where the points say). A flip alone maps pixel centres
onto pixel centres (``x -> W - 1 - x``), so it does not resample at all.

**Flips re-index the points.** A mirrored left eye is a right eye: point ``k`` of the
flipped face is the mirror image of point ``mirror[k]`` of the original. ``mirror`` is
:data:`IBUG68_MIRROR` for the 68 iBug points and the stored ``<set>_mirror`` array of a
synthetic batch for a dense set (``synth.face_model.FaceModel.dense_mirror``: the dense
sets are sampled in mirror pairs on the symmetric face mesh); :func:`layout_mirror` joins
them for a model whose channels hold a dense set and a 68 head. Visibility flags and
per-point weights move with the same permutation.

**Occlusion** paints one rectangle of a random colour into the crop (after the
geometry, so it is an object in front of the face). Points under it keep their labels:
300-W annotators label every point, occluded or not, and the project supervises
occluded synthetic points by default; ``occluded_weight < 1`` scales their weights
instead (0 turns a boolean visibility flag off).

**Why our own and not kornia or albumentations.** Neither is installed (``.venv`` has
neither, nor OpenCV or torchvision) and nothing may be fetched at run time; and neither
fits as is. albumentations works per image in numpy/OpenCV (a Python loop per sample,
its own random state), which breaks the batched, on-device, one-generator contract of
:mod:`models.augment` that makes a step's augmentation reproducible from ``(seed, step)``.
kornia is batched, but its horizontal flip moves keypoints without re-indexing them
(left eye stays labelled left eye), so the mirror permutation and its checks would be
ours anyway, and keeping one pixel-centre convention with ``grid_sample`` is easier in
the 100 lines below than across a library's conventions. The pieces it would have
given are here: one affine per sample, Gaussian blur and JPEG (both shared with the
renderer's camera pipeline, :mod:`synth.camera`), noise, colour, occlusion.

Example (the landmark training task)::

    >>> g = torch.Generator().manual_seed(step_seed(seed, step, 1))
    >>> mirror = layout_mirror(batch_mirror(labels, "dense500"), real_head=True)
    >>> x, pts, w = augment_faces(batch["image"], g, batch["points"], batch["visible"], mirror)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.augment import AugmentConfig, augment
from synth.camera import camera_operators, jpeg_quantise
from synth.face_model import IBUG68_MIRROR

__all__ = [
    "IBUG68_MIRROR",
    "LANDMARK_PHOTOMETRIC",
    "AugmentedFaces",
    "FaceAugmentConfig",
    "augment_faces",
    "batch_mirror",
    "check_mirror",
    "hflip_points",
    "layout_mirror",
    "random_affine",
    "warp_images",
    "warp_points",
]

#: Photometric strengths for faces: no integer shift (it would move the face without its
#: points; the affine above translates both), blur up to the camera blur's reach.
LANDMARK_PHOTOMETRIC = AugmentConfig(max_shift=0, p_shift=0.0, max_blur_sigma=1.5, p_blur=0.3)

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class FaceAugmentConfig:
    """Per-sample probabilities and ranges. ``FaceAugmentConfig.off()`` is the identity
    (up to the uint8 -> float conversion).

    Geometry: flip with ``p_flip``; rotation ``U[-max_rotate_deg, max_rotate_deg]``; scale
    ``exp(U[-max_log_scale, max_log_scale])`` about the crop centre, with an x/y aspect
    ``exp(U[-max_log_aspect, max_log_aspect])`` applied as ``sqrt`` to each axis;
    translation ``U[-max_translate, max_translate]`` of the crop side per axis. Pixels
    outside the source are filled per ``padding`` (a ``grid_sample`` mode).
    Occlusion: one rectangle, each side ``U[occlude_min, occlude_max]`` of the crop's,
    centred anywhere in it, of a random flat colour.
    Colour (RGB only): saturation ``1 + U[-saturation, saturation]``, per-channel gains
    ``1 + U[-channel_gain, channel_gain]``; grey (luma in every channel) with ``p_gray``.
    JPEG: quality ``U[jpeg_quality]`` (the renderer's baseline-JPEG model).
    """

    p_flip: float = 0.5
    p_rotate: float = 0.5
    max_rotate_deg: float = 30.0
    p_scale: float = 0.8
    max_log_scale: float = math.log(1.12)
    max_log_aspect: float = math.log(1.05)
    p_translate: float = 0.8
    max_translate: float = 0.05
    padding: str = "border"
    p_occlude: float = 0.25
    occlude_min: float = 0.1
    occlude_max: float = 0.4
    occluded_weight: float = 1.0
    p_colour: float = 0.5
    saturation: float = 0.3
    channel_gain: float = 0.1
    p_gray: float = 0.05
    photometric: AugmentConfig = field(default_factory=lambda: LANDMARK_PHOTOMETRIC)
    p_jpeg: float = 0.3
    jpeg_quality: tuple[float, float] = (30.0, 95.0)

    @classmethod
    def off(cls) -> FaceAugmentConfig:
        return cls(**{k: 0.0 for k in asdict(cls()) if k.startswith("p_")},
                   photometric=AugmentConfig.off())

    def geometry_only(self) -> FaceAugmentConfig:
        """This geometry, every pixel op off (tests, test-time augmentation)."""
        off = FaceAugmentConfig.off()
        return replace(off, **{k: getattr(self, k) for k in (
            "p_flip", "p_rotate", "max_rotate_deg", "p_scale", "max_log_scale", "max_log_aspect",
            "p_translate", "max_translate", "padding")})


class AugmentedFaces(NamedTuple):
    images: Tensor          # float32 (B, C, H, W) in [0, 1]
    points: Tensor | None   # float32 (B_s, K, 2), or None
    visible: Tensor | None  # (B_s, K), the input's dtype, or None


# --------------------------------------------------------------------------- mirrors


def check_mirror(mirror: Sequence[int] | np.ndarray | Tensor, k: int | None = None) -> np.ndarray:
    """``mirror`` as an int64 array, checked: a permutation of ``0..K-1`` (``K = k`` when
    given) that is its own inverse."""
    m = np.asarray(mirror.cpu() if isinstance(mirror, Tensor) else mirror, dtype=np.int64).reshape(-1)
    if k is not None and len(m) != k:
        raise ValueError(f"mirror permutation of {len(m)} points for {k} points")
    if not np.array_equal(np.sort(m), np.arange(len(m))) or not np.array_equal(m[m], np.arange(len(m))):
        raise ValueError("mirror must be a permutation that is its own inverse")
    return m


def layout_mirror(set_mirror: Sequence[int] | np.ndarray | None, real_head: bool = False) -> np.ndarray | None:
    """The permutation of a landmark network's channels (``models.predictor.OutputLayout``):
    the synthetic set's (``0..D``) and, with a real 68 head, :data:`IBUG68_MIRROR` shifted
    to channels ``D..D+68``. None when the set has none (then do not flip)."""
    if set_mirror is None:
        return None
    m = check_mirror(set_mirror)
    return np.concatenate([m, len(m) + np.asarray(IBUG68_MIRROR)]) if real_head else m


def batch_mirror(labels: Mapping[str, np.ndarray], point_set: str) -> np.ndarray | None:
    """The mirror permutation of a face batch's point set, from its label arrays
    (``synth.generate_faces.read_face_labels``): :data:`IBUG68_MIRROR` for ``points68``,
    the stored ``<set>_mirror`` for a dense set, None for a batch written before dense sets
    were sampled in mirror pairs (its sets are not closed under mirroring)."""
    if point_set == "points68":
        return np.asarray(IBUG68_MIRROR, dtype=np.int64)
    m = labels.get(f"{point_set}_mirror")
    return None if m is None else check_mirror(m, len(labels[f"{point_set}_vertex_ids"])
                                               if f"{point_set}_vertex_ids" in labels else None)


def hflip_points(points: Tensor, width: int, mirror: Sequence[int] | np.ndarray | Tensor) -> Tensor:
    """Points of ``images.flip(-1)``: ``x -> W - 1 - x``, re-indexed by ``mirror`` (for
    test-time flip averaging: predict on the flipped crop, map back with this)."""
    m = torch.as_tensor(check_mirror(mirror, points.shape[-2]), device=points.device)
    out = points.clone()
    out[..., 0] = (width - 1) - points[..., 0]
    return out[..., m, :]


# --------------------------------------------------------------------------- geometry


def _uniform(gen: torch.Generator, shape, lo: float, hi: float, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


def random_affine(b: int, gen: torch.Generator, cfg: FaceAugmentConfig,
                  device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """``(A (B, 2, 2), t (B, 2), flip (B,) bool)`` per the config; ``t`` is a fraction of
    the crop side (scale it by ``(W, H)``). The draws happen in a fixed order, for every
    sample."""
    def fire(p: float) -> Tensor:
        return torch.rand(b, generator=gen, device=device) < p

    flip = fire(cfg.p_flip)
    rot_on = fire(cfg.p_rotate)
    angle = _uniform(gen, b, -cfg.max_rotate_deg, cfg.max_rotate_deg, device) * rot_on
    scale_on = fire(cfg.p_scale)
    log_s = _uniform(gen, b, -cfg.max_log_scale, cfg.max_log_scale, device) * scale_on
    log_a = _uniform(gen, b, -cfg.max_log_aspect, cfg.max_log_aspect, device) * scale_on
    move_on = fire(cfg.p_translate)
    t = _uniform(gen, (b, 2), -cfg.max_translate, cfg.max_translate, device) * move_on.unsqueeze(1)
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    sx = torch.exp(log_s + 0.5 * log_a) * torch.where(flip, -1.0, 1.0)
    sy = torch.exp(log_s - 0.5 * log_a)
    a = torch.stack([torch.stack([cos * sx, -sin * sy], -1),
                     torch.stack([sin * sx, cos * sy], -1)], -2)
    return a, t, flip


def warp_images(images: Tensor, a: Tensor, t_px: Tensor, padding: str = "border") -> Tensor:
    """Each image under ``p' = A (p - c) + c + t`` (module docstring), bilinear."""
    b, _, h, w = images.shape
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    inv = torch.stack([torch.stack([a[:, 1, 1], -a[:, 0, 1]], -1),
                       torch.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], -2) / det.view(b, 1, 1)
    n = torch.tensor([2.0 / w, 2.0 / h], device=images.device, dtype=inv.dtype)
    theta = torch.empty(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, :, :2] = n.view(1, 2, 1) * inv / n.view(1, 1, 2)
    theta[:, :, 2] = -n.view(1, 2) * (inv @ t_px.unsqueeze(-1)).squeeze(-1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def warp_points(points: Tensor, a: Tensor, t_px: Tensor, height: int, width: int) -> Tensor:
    """``p' = A (p - c) + c + t`` for ``(B, K, 2)`` points (the first ``B`` of ``a``, ``t``);
    non-finite points stay non-finite."""
    n = points.shape[0]
    c = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0], device=points.device, dtype=torch.float32)
    p = points.float() - c
    return p @ a[:n].transpose(1, 2) + c + t_px[:n].unsqueeze(1)


# --------------------------------------------------------------------------- the batch op


def augment_faces(images: Tensor, gen: torch.Generator, points: Tensor | None = None,
                  visible: Tensor | None = None,
                  mirror: Sequence[int] | np.ndarray | Tensor | None = None,
                  cfg: FaceAugmentConfig | None = None) -> AugmentedFaces:
    """Augment face crops and move their landmarks (and visibility) with them.

    Args:
        images: uint8 ``(B, C, H, W)`` or float in [0, 1].
        gen: a generator on ``images.device``; every draw comes from it, in a fixed order.
        points: ``(B_s, K, 2)`` pixel-centre ``(x, y)`` of the first ``B_s <= B`` images
            (a source+target batch puts its labeled part first), or None. NaN marks a
            missing point and stays NaN (in its permuted channel).
        visible: ``(B_s, K)`` flags or weights (any dtype), permuted with a flip, scaled
            by ``occluded_weight`` under an occluder; or None.
        mirror: the ``K``-point left/right permutation (:func:`layout_mirror`); needed
            when points are given and ``cfg.p_flip > 0``.
        cfg: :class:`FaceAugmentConfig` (default: its defaults).

    Returns:
        :class:`AugmentedFaces` ``(images, points, visible)``: float32 images in [0, 1];
        points and visible as given (None stays None). Points may leave the crop; they
        are kept, their labels stay true.
    """
    cfg = cfg or FaceAugmentConfig()
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    dev = images.device
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    b, c, h, w = x.shape
    n_pts = 0
    perm = None
    if points is not None:
        if points.ndim != 3 or points.shape[-1] != 2 or points.shape[0] > b:
            raise ValueError(f"points must be (B_s <= {b}, K, 2), got {tuple(points.shape)}")
        n_pts, k = points.shape[:2]
        if visible is not None and tuple(visible.shape) != (n_pts, k):
            raise ValueError(f"visible must be {(n_pts, k)}, got {tuple(visible.shape)}")
        if mirror is not None:
            perm = torch.as_tensor(check_mirror(mirror, k), device=dev)
        elif cfg.p_flip > 0:
            raise ValueError("flipping labeled faces needs their mirror permutation "
                             "(layout_mirror), or p_flip=0")
    elif visible is not None:
        raise ValueError("visible without points")

    def fire(p: float) -> Tensor:
        return torch.rand(b, generator=gen, device=dev) < p

    # every draw, in a fixed order, before any op runs
    a, t, flip = random_affine(b, gen, cfg, dev)
    t_px = t * torch.tensor([w, h], device=dev, dtype=t.dtype)
    occ_on = fire(cfg.p_occlude)
    occ_size = _uniform(gen, (b, 2), cfg.occlude_min, max(cfg.occlude_max, cfg.occlude_min), dev)
    occ_centre = torch.rand((b, 2), generator=gen, device=dev)
    occ_colour = torch.rand((b, c), generator=gen, device=dev)
    colour_on = fire(cfg.p_colour)
    sat = 1.0 + _uniform(gen, b, -cfg.saturation, cfg.saturation, dev) * colour_on
    gains = 1.0 + _uniform(gen, (b, c), -cfg.channel_gain, cfg.channel_gain, dev) * colour_on.unsqueeze(1)
    gray_on = fire(cfg.p_gray)
    jpeg_on = fire(cfg.p_jpeg)
    quality = _uniform(gen, b, *cfg.jpeg_quality, dev)

    def any_(mask: Tensor) -> bool:  # on CUDA run every op (no host sync)
        return dev.type == "cuda" or bool(mask.any())

    def where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
        return torch.where(mask.view(-1, *([1] * (old.ndim - 1))), new, old)

    moved = (a - torch.eye(2, device=dev)).abs().amax((1, 2)) > 0
    moved |= t.abs().amax(1) > 0
    if any_(moved):  # unmoved samples keep their exact pixels
        x = where(moved, warp_images(x, a, t_px, cfg.padding), x)

    out_points, out_visible = None, visible
    if points is not None:
        out_points = warp_points(points, a, t_px, h, w)
        if perm is not None:
            out_points = where(flip[:n_pts], out_points[:, perm], out_points)
            if visible is not None:
                out_visible = where(flip[:n_pts], visible[:, perm], visible)

    if any_(occ_on):
        # pixel centres inside the box; a point is under it when its pixel is
        half = occ_size * torch.tensor([w, h], device=dev) / 2.0
        centre = occ_centre * torch.tensor([w - 1, h - 1], device=dev)
        cols = (torch.arange(w, device=dev).view(1, w) - centre[:, :1]).abs() <= half[:, :1]
        rows = (torch.arange(h, device=dev).view(1, h) - centre[:, 1:]).abs() <= half[:, 1:]
        box = (rows.view(b, 1, h, 1) & cols.view(b, 1, 1, w)) & occ_on.view(b, 1, 1, 1)
        x = torch.where(box, occ_colour.view(b, c, 1, 1), x)
        if out_visible is not None and cfg.occluded_weight != 1.0:
            px = torch.floor(out_points + 0.5)
            under = ((px - centre[:n_pts, None]).abs() <= half[:n_pts, None]).all(-1)
            under &= occ_on[:n_pts, None]
            if out_visible.dtype == torch.bool:  # a flag turns off only at weight 0
                out_visible = out_visible & ~under if cfg.occluded_weight <= 0 else out_visible
            else:
                out_visible = torch.where(under, out_visible * cfg.occluded_weight, out_visible)

    if c == 3 and any_(colour_on | gray_on):
        luma = torch.tensor(_LUMA, device=dev).view(1, 3, 1, 1)
        grey = (x * luma).sum(1, keepdim=True)
        tinted = ((grey + (x - grey) * sat.view(b, 1, 1, 1)) * gains.view(b, c, 1, 1)).clamp(0.0, 1.0)
        x = where(colour_on, tinted, x)
        x = where(gray_on, (x * luma).sum(1, keepdim=True).expand_as(x), x)

    x = augment(x, gen, cfg.photometric)

    if any_(jpeg_on):
        ops = camera_operators(h, w, dev)

        def jpeg(v: Tensor, q: Tensor) -> Tensor:
            return jpeg_quantise(torch.round(v * 255.0), q, ops) / 255.0

        if dev.type == "cuda":  # whole batch, no host sync
            x = where(jpeg_on, jpeg(x, quality), x)
        else:  # only the selected samples: the block DCTs are this op's whole cost
            sel = jpeg_on.nonzero().squeeze(1)
            x = x.index_copy(0, sel, jpeg(x.index_select(0, sel), quality.index_select(0, sel)))
    return AugmentedFaces(x, out_points, out_visible)
