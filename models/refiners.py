"""The refiner kinds that refine a synthetic batch (``synthloop refine``) or a training
source on the fly (:class:`models.refined_source.RefinedSource`): each maps uint8 or
[0, 1] float images ``(B, C, H, W)`` to float images of the same shape, names its
channels in ``cfg.channels`` and its registry entry in ``model_name``."""

from __future__ import annotations

from models.mean_patch import MeanPatchRefiner
from models.refiner import Refiner

__all__ = ["REFINER_TYPES"]

#: SimGAN's trained refiner and the fitted mean-patch shift
REFINER_TYPES = (Refiner, MeanPatchRefiner)
