"""The refiner kinds that refine a synthetic batch (``synthloop refine``) or a training
source on the fly (:class:`models.refined_source.RefinedSource`): each maps uint8 or
[0, 1] float images ``(B, C, H, W)`` to float images of the same shape, names its
channels in ``cfg.channels`` and its registry entry in ``model_name``. A refiner whose
move depends on each image's scene (the per-pose mean patch, the face-aligned patch) names
what it reads per image in ``conditioned_on`` (a batch metadata column, or the task's
labels: :meth:`synthloop.taskspec.TaskSpec.refine_condition`) and takes it as a second
argument."""

from __future__ import annotations

from torch import nn

from models.landmark_patch import LandmarkPatchRefiner
from models.mean_patch import MeanPatchRefiner
from models.pose_mean_patch_refiner import PoseMeanPatchRefiner
from models.refiner import Refiner

__all__ = ["REFINER_TYPES", "conditioned_on"]

#: SimGAN's trained refiner and the fitted mean-patch shifts (shared, per head pose, and
#: warped onto each face's points)
REFINER_TYPES = (Refiner, MeanPatchRefiner, PoseMeanPatchRefiner, LandmarkPatchRefiner)


def conditioned_on(refiner: nn.Module) -> str | None:
    """What ``refiner`` reads per image beside it, or None (images alone)."""
    return getattr(refiner, "conditioned_on", None)
