"""Batched tensor augmentation for eye patches, seeded per step, on CPU or CUDA.

One call augments a whole batch on the device it lives on (no per-image Python, no
DataLoader workers). Every random number comes from the ``torch.Generator`` passed in,
drawn in a fixed order and for every sample whether or not an op then fires, so the
same generator seed gives the same output (on the same device type) and a checkpoint
needs no augmentation state: the loop seeds the generator from ``(seed, step)``.

Ops, in order (geometry, optics, then photometrics, then the sensor):

1. translation by an integer offset in ``[-max_shift, max_shift]`` px per axis, via
   edge-replicate padding and a per-sample crop (exact, no resampling);
2. Gaussian blur with a per-sample sigma (separable, grouped conv, replicate border);
3. contrast stretch between per-sample 2nd/98th percentiles: a cheap stand-in for the
   histogram equalisation real normalised patches (MPIIGaze) have been through;
4. gamma, contrast about the sample mean, brightness offset;
5. additive Gaussian noise with a per-sample sigma; clamp to ``[0, 1]``.

**Never flips horizontally** (nor rotates by large angles): a mirrored eye patch
has its yaw label negated and a left eye turned into a right one, so a flip without
relabelling teaches the wrong gaze. Labels are untouched by every op here; a +-2 px
shift moves the eye in the patch but not the gaze direction in the normalised camera.

Face crops with landmarks (:func:`augment_landmarks`): a random scale about the crop
centre and a sub-pixel translation, applied to the image (bilinear resampling) *and* to
the points (the same affine map, exactly), then the photometric ops above without their
label-blind integer shift. No flips there either: a mirrored face needs the 68 points
re-indexed (left eye <-> right eye), which a dense set would need its own table for.

Examples::

    >>> g = torch.Generator().manual_seed(step_seed(seed, step, 1))
    >>> x = augment(batch["image"], g)         # uint8 (B,1,36,60) -> float32 in [0, 1]
    >>> x, pts = augment_landmarks(faces, g, points)   # (B,3,128,128), (B,K,2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from synth.camera import camera_operators, gaussian_blur

__all__ = [
    "FACE_PHOTOMETRIC",
    "AugmentConfig",
    "GeometryConfig",
    "augment",
    "augment_landmarks",
    "scale_translate",
    "translate",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths and per-sample probabilities. ``AugmentConfig.off()`` is the identity
    (up to the uint8 -> float conversion)."""

    max_shift: int = 2
    p_shift: float = 0.8
    max_blur_sigma: float = 1.0
    p_blur: float = 0.3
    p_stretch: float = 0.2
    max_log_gamma: float = math.log(1.5)
    p_gamma: float = 0.5
    contrast: float = 0.3  # factor in [1 - c, 1 + c]
    p_contrast: float = 0.5
    brightness: float = 0.12  # offset in [-b, b]
    p_brightness: float = 0.5
    max_noise: float = 0.03  # sigma in [0, max_noise]
    p_noise: float = 0.5

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(**{k: 0.0 if k.startswith("p_") else v for k, v in asdict(cls()).items()})


def translate(x: Tensor, dy: Tensor, dx: Tensor, max_shift: int) -> Tensor:
    """Shift each sample by integer ``(dy[i], dx[i])`` px (``|d| <= max_shift``) with
    edge replication: ``out[i, :, r, c] = x[i, :, clamp(r - dy), clamp(c - dx)]``."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    m = max_shift
    xp = F.pad(x, (m, m, m, m), mode="replicate")
    rows = (m - dy).view(b, 1) + torch.arange(h, device=x.device)  # (B, H)
    cols = (m - dx).view(b, 1) + torch.arange(w, device=x.device)  # (B, W)
    xp = xp.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, xp.shape[3]))
    return xp.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def _stretch(x: Tensor, lo_q: float = 0.02, hi_q: float = 0.98) -> Tensor:
    """Per-sample linear stretch mapping the lo_q/hi_q percentiles to 0/1 (kthvalue is a
    selection, cheaper than the full sort behind torch.quantile)."""
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    lo = flat.kthvalue(max(1, round(lo_q * n)), dim=1).values.view(-1, 1, 1, 1)
    hi = flat.kthvalue(max(1, round(hi_q * n)), dim=1).values.view(-1, 1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-3)).clamp(0.0, 1.0)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def augment(images: Tensor, gen: torch.Generator, cfg: AugmentConfig | None = None) -> Tensor:
    """Augment a batch: uint8 ``(B, C, H, W)`` (or float in [0, 1]) -> float32 in ``[0, 1]``.

    ``gen`` must live on ``images.device``. See the module docstring for the ops; no
    horizontal flips, by design.
    """
    cfg = cfg or AugmentConfig()
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    dev = images.device
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    b = x.shape[0]

    # every draw happens unconditionally and in this order: the stream never depends on
    # which ops fire, so changing one probability does not reshuffle the others
    def fire(p: float) -> Tensor:
        return torch.rand(b, generator=gen, device=dev) < p

    m = int(cfg.max_shift)
    shift_on = fire(cfg.p_shift)
    dy = torch.randint(-m, m + 1, (b,), generator=gen, device=dev) * shift_on
    dx = torch.randint(-m, m + 1, (b,), generator=gen, device=dev) * shift_on
    blur_on = fire(cfg.p_blur)
    sigma = _uniform(gen, b, 0.3, max(cfg.max_blur_sigma, 0.3), dev) * blur_on
    stretch_on = fire(cfg.p_stretch)
    gamma_on = fire(cfg.p_gamma)
    log_gamma = _uniform(gen, b, -cfg.max_log_gamma, cfg.max_log_gamma, dev) * gamma_on
    contrast_on = fire(cfg.p_contrast)
    contrast = 1.0 + _uniform(gen, b, -cfg.contrast, cfg.contrast, dev) * contrast_on
    bright_on = fire(cfg.p_brightness)
    bright = _uniform(gen, b, -cfg.brightness, cfg.brightness, dev) * bright_on
    noise_on = fire(cfg.p_noise)
    noise_sigma = _uniform(gen, b, 0.0, cfg.max_noise, dev) * noise_on
    noise = torch.randn(x.shape, generator=gen, device=dev)

    # on CPU skip ops that fire for no sample; on CUDA always run them (no host sync)
    def any_(mask: Tensor) -> bool:
        return dev.type == "cuda" or bool(mask.any())

    if m > 0 and any_(shift_on):
        x = translate(x, dy, dx, m)
    def on_selected(mask: Tensor, op, *per_sample: Tensor) -> Tensor:
        """``op`` where ``mask`` fires: on a GPU over the whole batch (no host sync), on
        the CPU on the selected samples only (each op is per-sample, so the results are
        the same; the blur's banded GEMMs and the percentiles cost per sample)."""
        if dev.type == "cuda":
            return torch.where(mask.view(b, 1, 1, 1), op(x, *per_sample), x)
        sel = mask.nonzero().squeeze(1)
        return x.index_copy(0, sel, op(x.index_select(0, sel),
                                       *(t.index_select(0, sel) for t in per_sample)))

    if any_(blur_on):
        # the camera pipeline's blur (one implementation of the op in the project)
        ops = camera_operators(x.shape[-2], x.shape[-1], dev)
        x = on_selected(blur_on, lambda v, s: gaussian_blur(v, s, ops), sigma)
    if any_(stretch_on):
        x = on_selected(stretch_on, _stretch)
    view = (b, 1, 1, 1)
    x = x.clamp(0.0, 1.0)
    if any_(gamma_on):
        x = on_selected(gamma_on, lambda v, g: v.pow(torch.exp(g).view(-1, 1, 1, 1)), log_gamma)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(view) + mean + bright.view(view)
    x = x + noise * noise_sigma.view(view)
    return x.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- faces


#: Photometric ops for face crops: everything in :class:`AugmentConfig` except the integer
#: shift, which would move the face without moving its landmark labels.
FACE_PHOTOMETRIC = AugmentConfig(max_shift=0, p_shift=0.0)


@dataclass(frozen=True)
class GeometryConfig:
    """Random similarity (no rotation) for face crops: with probability ``p`` per sample,
    scale ``s ~ U[1 - max_scale, 1 + max_scale]`` about the crop centre and translation
    ``t ~ U[-max_translate, max_translate]`` input pixels per axis. Small by default: the
    real crops come from a face detector, which already fixes scale and centre to a few
    percent."""

    max_scale: float = 0.05
    max_translate: float = 4.0
    p: float = 0.8

    @classmethod
    def off(cls) -> GeometryConfig:
        return cls(p=0.0)


def scale_translate(images: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    r"""Warp each image by ``p' = c + s (p - c) + t`` (pixel-centre coordinates,
    ``c = ((W - 1) / 2, (H - 1) / 2)``), bilinear, border pixels replicated.

    Output pixel ``q`` samples the input at ``c + (q - c - t) / s``; in
    ``grid_sample``'s normalised coordinates (``align_corners=False``, where pixel centre
    ``q`` is ``u = (2q + 1) / W - 1`` and ``c`` is ``u = 0``) that is
    ``u_in = (u - 2 t / W) / s``.

    Args:
        images: float ``(B, C, H, W)``; scale: ``(B,)``; shift: ``(B, 2)`` as ``(t_x, t_y)`` px.
    """
    b, _, h, w = images.shape
    inv = 1.0 / scale
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    theta[:, 0, 2] = -(2.0 * shift[:, 0] / w) * inv
    theta[:, 1, 2] = -(2.0 * shift[:, 1] / h) * inv
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment_landmarks(images: Tensor, gen: torch.Generator, points: Tensor | None = None,
                      geometry: GeometryConfig | None = None,
                      photometric: AugmentConfig | None = None) -> tuple[Tensor, Tensor | None]:
    """Augment face crops and move their landmarks with them.

    Args:
        images: uint8 ``(B, C, H, W)`` (or float in [0, 1]).
        gen: a generator on ``images.device``; all draws come from it in a fixed order
            (geometry first, then :func:`augment`'s), whether or not an op fires.
        points: ``(B_s, K, 2)`` ``(x, y)`` pixel-centre coordinates of the first ``B_s <= B``
            images (the labeled source half of a source+target batch), or None.
        geometry: defaults to :class:`GeometryConfig`; photometric: to :data:`FACE_PHOTOMETRIC`.

    Returns:
        ``(images, points)``: float32 ``(B, C, H, W)`` in [0, 1] and the transformed points
        (non-finite points stay non-finite), or None when ``points`` is None. Points may
        leave the crop; they are kept (their labels stay true).
    """
    geometry = geometry or GeometryConfig()
    photometric = photometric or FACE_PHOTOMETRIC
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    dev = images.device
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    b, _, h, w = x.shape
    on = torch.rand(b, generator=gen, device=dev) < geometry.p
    scale = 1.0 + _uniform(gen, b, -geometry.max_scale, geometry.max_scale, dev) * on
    shift = torch.stack([_uniform(gen, b, -geometry.max_translate, geometry.max_translate, dev),
                         _uniform(gen, b, -geometry.max_translate, geometry.max_translate, dev)],
                        dim=1) * on.unsqueeze(1)
    if dev.type == "cuda" or bool(on.any()):
        # unselected samples keep their exact pixels (an identity resampling is not exact)
        x = torch.where(on.view(b, 1, 1, 1), scale_translate(x, scale, shift), x)
    out_points = None
    if points is not None:
        n = points.shape[0]
        if n > b:
            raise ValueError(f"{n} point sets for {b} images")
        centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=dev, dtype=torch.float32)
        p = points.float()
        out_points = centre + scale[:n].view(n, 1, 1) * (p - centre) + shift[:n].view(n, 1, 2)
    return augment(x, gen, photometric), out_points
