"""Inference over many images: a model's outputs in chunks, float32, in the model's
current mode (call ``model.eval()`` first for inference)."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

__all__ = ["predict", "predict_pitchyaw_shift_averaged", "predict_points",
           "predict_points_flip_averaged"]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, amp: bool = True, chunk: int = 512):
    """The model's outputs (its NamedTuple, float32) over ``images`` in chunks. Holds
    every output field for every image: for landmark models over many images, use
    :func:`predict_points`, which keeps only the coordinates."""
    device = _device_of(model)
    parts = []
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with (torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda"
              else contextlib.nullcontext()):
            out = model(x)
        parts.append([t.float() for t in out])
    return type(out)(*(torch.cat(ts) for ts in zip(*parts, strict=True)))


@torch.no_grad()
def predict_points(model: nn.Module, images: Tensor, *, amp: bool = True, chunk: int = 64) -> Tensor:
    """Predicted ``(N, K, 2)`` points (float32, on the model's device) of a landmark model
    in chunks; only the coordinates are kept, so memory stays at one chunk."""
    return torch.cat([predict(model, images[i:i + chunk], amp, chunk).coords
                      for i in range(0, images.shape[0], chunk)])


@torch.no_grad()
def predict_points_flip_averaged(model: nn.Module, images: Tensor, mirror, *, amp: bool = True,
                                 chunk: int = 64) -> Tensor:
    """Test-time flip averaging: the mean of the points predicted on ``images`` and, mapped
    back (mirrored x, points re-indexed by the layout's left/right permutation ``mirror``),
    on the horizontally flipped images. Halves the variance a model's left/right
    asymmetries add, at twice the inference cost."""
    from models.landmark_augment import hflip_points

    plain = predict_points(model, images, amp=amp, chunk=chunk)
    flipped = predict_points(model, images.flip(-1), amp=amp, chunk=chunk)
    return 0.5 * (plain + hflip_points(flipped, images.shape[-1], mirror))


@torch.no_grad()
def predict_pitchyaw_shift_averaged(model: nn.Module, images: Tensor, shift: int, *,
                                    amp: bool = True, chunk: int = 512,
                                    unshifted: Tensor | None = None) -> Tensor:
    """Test-time shift averaging for a gaze model: the mean ``(N, 2)`` pitch and yaw over
    ``images`` (uint8 or float in [0, 1], ``(N, 1, H, W)``) shifted by every integer offset
    of up to ``shift`` px per axis, edge-replicated as training's augmentation shifts them
    (:func:`models.augment.translate`); ``(2 shift + 1)^2`` forward passes, and ``shift``
    = 0 is plain prediction. A model that reads where the eye sits in the patch then
    answers as for the patch's neighbourhood, which training's +-2 px shifts taught it is
    the same gaze. ``unshifted``: the ``(N, 2)`` answer for the patches as given, when the
    caller has it already (that pass is then not run again)."""
    from models.augment import translate

    if shift < 0:
        raise ValueError(f"shift must be >= 0 px, got {shift}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    n = len(x)
    total = torch.zeros(n, 2, device=x.device)
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            if dy == dx == 0 and unshifted is not None:
                total += unshifted.to(x.device)
                continue
            d = torch.full((n,), dy, device=x.device), torch.full((n,), dx, device=x.device)
            total += predict(model, translate(x, *d, shift), amp=amp, chunk=chunk).pitchyaw.to(x.device)
    return total / (2 * shift + 1) ** 2
