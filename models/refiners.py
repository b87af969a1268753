"""The refiner kinds that refine a synthetic batch (``synthloop refine``) or a training
source on the fly (:class:`models.refined_source.RefinedSource`): each maps uint8 or
[0, 1] float images ``(B, C, H, W)`` to float images of the same shape, names its
channels in ``cfg.channels`` and its registry entry in ``model_name``. A refiner whose
move depends on each image's scene (the per-pose mean patch) names the batch metadata
column it reads in ``conditioned_on`` and takes that column as a second argument."""

from __future__ import annotations

from torch import nn

from models.mean_patch import MeanPatchRefiner
from models.pose_mean_patch_refiner import PoseMeanPatchRefiner
from models.refiner import Refiner

__all__ = ["REFINER_TYPES", "conditioned_on"]

#: SimGAN's trained refiner and the fitted mean-patch shifts (shared, and per head pose)
REFINER_TYPES = (Refiner, MeanPatchRefiner, PoseMeanPatchRefiner)


def conditioned_on(refiner: nn.Module) -> str | None:
    """The metadata column ``refiner`` reads per image, or None (images alone)."""
    return getattr(refiner, "conditioned_on", None)
