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
from models.real_context import RealContextRefiner
from models.refiner import Refiner

__all__ = ["CONTENT_BLIND", "REFINER_TYPES", "conditioned_on", "reads_image_content"]

#: SimGAN's trained refiner, the fitted mean-patch shifts (shared, per head pose, and
#: warped onto each face's points) and faces set into real photographs
REFINER_TYPES = (Refiner, MeanPatchRefiner, PoseMeanPatchRefiner, LandmarkPatchRefiner,
                 RealContextRefiner)


#: the fitted patches: each adds one pattern (per head pose, or warped onto each face's
#: points) whatever the image shows. They cannot move what an image shows of its labels,
#: only hide it where the sum leaves the grey range, so what their batches are checked for
#: is whether the labels can still be learned (``synthloop.refine``); SimGAN's refiner reads
#: every pixel and can move the eye itself, so a frozen probe must not see its answer move.
CONTENT_BLIND = (MeanPatchRefiner, PoseMeanPatchRefiner, LandmarkPatchRefiner)


def reads_image_content(refiner: nn.Module) -> bool:
    """Whether ``refiner``'s change to an image depends on what the image shows."""
    return not isinstance(refiner, CONTENT_BLIND)


def conditioned_on(refiner: nn.Module) -> str | None:
    """What ``refiner`` reads per image beside it, or None (images alone)."""
    return getattr(refiner, "conditioned_on", None)
