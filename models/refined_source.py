"""A batch source refined on the fly: each drawn batch goes through a frozen refiner
(SimGAN's or a mean patch, :mod:`models.refiners`) on the training device before the
model sees it. A refiner that reads each image's metadata (the per-pose mean patch) is
refused: training batches carry images and labels, so refine the batch on disk instead.

This is the GPU path of refinement (no refined copy on disk: the refiner's forward pass
costs little next to the training step there). On a CPU the refined batch written once
by ``synthloop refine`` is cheaper: every step here pays a refiner forward pass again.

Refined images are rounded to ``uint8`` exactly as :func:`models.simgan.refine_images`
writes them, so a model trained on the fly sees the bytes a refined batch would hold
(on the same device type) and augmentation treats both alike.

Example::

    >>> src = RefinedSource(ShardSource(reader, 64, seed=0), load_model("refiner.pt"), "cuda")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from models.refiner import to_uint8
from models.refiners import REFINER_TYPES, conditioned_on

__all__ = ["RefinedSource"]


class RefinedSource:
    """``source``'s batches with their ``image`` refined by ``refiner`` on ``device``
    (the images stay there); labels and other keys pass through untouched."""

    def __init__(self, source, refiner: nn.Module, device: str | torch.device | None = None):
        if not isinstance(refiner, REFINER_TYPES):
            raise TypeError(f"expected a refiner (SimGAN or mean patch), got {type(refiner).__name__}")
        if conditioned_on(refiner) is not None:
            raise ValueError(f"this refiner reads each image's {conditioned_on(refiner)!r}, which "
                             "training batches do not carry: refine the batch with "
                             "`synthloop refine` and train on the refined batch")
        self.device = torch.device(device) if device is not None else \
            next(refiner.parameters()).device
        self.source, self.refiner = source, refiner.to(self.device).eval()
        for p in self.refiner.parameters():
            p.requires_grad_(False)
        self.batch_size = source.batch_size
        self.seed = getattr(source, "seed", None)

    def __len__(self) -> int:
        return len(self.source)

    def _refine(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        image = batch["image"]
        if image.dtype != torch.uint8 or image.ndim != 4:
            raise ValueError(f"RefinedSource refines uint8 (B, C, H, W) images, got "
                             f"{image.dtype} {tuple(image.shape)}")
        if image.shape[1] != self.refiner.cfg.channels:
            raise ValueError(f"the refiner takes {self.refiner.cfg.channels}-channel images, "
                             f"the source gives {image.shape[1]}")
        with torch.inference_mode():
            refined = to_uint8(self.refiner(image.to(self.device, non_blocking=True)))
        return {**batch, "image": refined}

    def batch(self, step: int) -> dict[str, Tensor]:
        return self._refine(self.source.batch(step))

    def gather(self, positions: Sequence[int] | np.ndarray) -> dict[str, Tensor]:
        return self._refine(self.source.gather(positions))

    def __repr__(self) -> str:
        return f"RefinedSource({self.source!r}, device={self.device})"
