"""Flow: refine a synthetic batch toward unlabeled real images (SimGAN) and validate the
refined batch, as one transaction: a refined batch that fails its checks (the parent's,
plus label preservation) is kept on disk, quarantined, and the run fails with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow
from prefect.states import Failed
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from flows.forms import EmptyText, EyeSide, eye_side
from synthloop.errors import BatchRejected
from synthloop.loop.config import REFINE_METHOD_NAMES
from synthloop.refine_methods import (
    DEFAULT_POSE_COLUMN,
    MEAN_PATCH_STRENGTH,
    POSE_MEAN_PATCH_STRENGTH,
)
from synthloop.settings import get_settings
from tasks.batches import catalog_batch, validate_batch
from tasks.refining import record_refinement, write_refined


class RefineParams(BaseModel):
    """Refine a batch toward real images: a SimGAN refiner learns to make the batch's
    images look like the real ones (their labels are never read), every image is refined,
    and the result is a new batch with the same labels, checked with Great Expectations
    (plus a check that the labels still fit) and recorded as a child of its parent. On a
    busy 2-core machine: 25-30 minutes for 1,000 refiner steps on eyes, then ~60-100 eyes
    a second."""

    batch: str = Field(..., title="Batch folder",
                       description="The batch to refine (the folder holding manifest.json); "
                       "a quarantined batch is refused.")
    real: str = Field(..., title="Real images folder",
                      description="Eyes: a folder with labels.csv or manifest.csv (labels "
                      "are ignored).")
    out: EmptyText = Field("", title="Output folder",
                           description="Folder of the refined batch. Leave empty for "
                           "<batch folder>-refined-s<seed> beside the batch.")
    refiner: EmptyText = Field("", title="Refiner to reuse",
                               description="A refiner.pt (e.g. <refined batch>/refiner/"
                               "refiner.pt). Leave empty to train a new one.")
    method: Literal[REFINE_METHOD_NAMES] = Field(
        "simgan", title="Method",
        description="simgan: an adversarially trained refiner; mean-patch: every image moved "
        "by the real mean image minus the batch's (seconds, no training; the SimGAN fields "
        "below do not apply); pose-mean-patch: the same at each head pose of the real eyes, "
        "each synthetic eye moved by the pose nearest its head yaw; landmark-patch (faces): "
        "the difference of the mean faces aligned by their 68 points, warped onto each face "
        "(needs a landmark model); real-context (faces): each face set into a real photograph "
        "aligned by the 68 points, its hair, neck and background around it (needs a landmark "
        "model).")
    strength: float = Field(0.0, ge=0.0, le=4.0, title="Patch strength / shading",
                            description="The patches: how far toward the real mean image (1: "
                            f"all the way); 0: the method's default ({POSE_MEAN_PATCH_STRENGTH:g} "
                            f"for pose-mean-patch, {MEAN_PATCH_STRENGTH:g} for the others). "
                            "real-context: how much of the photograph's shading the face takes "
                            "(0-1; 0: none).")
    pose_column: str = Field(DEFAULT_POSE_COLUMN, min_length=1, title="Head-pose column",
                             description="pose-mean-patch: the real folder's meta.csv column "
                             "of each eye's head yaw in degrees.")
    landmarker: EmptyText = Field("", title="Landmark model",
                                  description="landmark-patch, real-context: the landmark model (run folder, "
                                  "checkpoint or models:/ URI) that finds the real faces' 68 "
                                  "points.")
    mirror_eye: EyeSide = Field(
        "none", title="Mirror one eye side",
        description="Eyes: mirror the real eyes of this side onto the other's first (meta.csv "
        "'eye' column), as models trained with that side mirrored see them.")
    steps: int = Field(1000, ge=1, le=1_000_000, title="Refiner steps",
                       description="Training steps of the refiner (32 images each); ignored "
                       "when a refiner is reused.")
    self_reg: float = Field(10.0, ge=0.0, title="Self-regularisation weight",
                            description="How strongly refined images stay close to the "
                            "synthetic ones (L1, in [0, 1] pixels).")
    consistency: float = Field(0.0, ge=0.0, title="Label-consistency weight",
                               description="Gaze: per degree a frozen gaze probe's answer "
                               "moves while the refiner trains (0: pixels only).")
    probe_steps: int = Field(400, ge=1, le=100_000, title="Label-probe steps",
                             description="Training steps of the frozen model that checks the "
                             "labels did not move (gaze), and for the mean patches of each of "
                             "the two models that check they can still be learned.")
    seed: int = Field(0, ge=0, title="Seed",
                      description="Random seed of the refiner and the probe: the same seed "
                      "and inputs give the same refined batch.")
    device: Literal["cpu", "cuda"] = Field("cpu", title="Device",
                                           description="Where the refiner trains and runs; "
                                           "cuda needs a GPU worker.")
    dask_workers: int = Field(
        0, ge=0, le=256, title="Dask workers",
        description="0: refine in the run's own process. More: refine the batch's shards on a "
        "local Dask cluster of that many single-threaded processes; same bytes either way.")
    dask_address: EmptyText = Field(
        "", title="Dask scheduler",
        description="Address of an existing Dask cluster (tcp://host:8786) to refine the shards "
        "on instead; its workers must see the batch folders at the same paths.")

    def output(self) -> Path:
        return Path(self.out) if self.out else Path(f"{Path(self.batch).resolve()}-refined-s{self.seed}")


@flow(name="refine-batch", log_prints=True)
def refine_batch(params: RefineParams):
    get_settings().ensure_home()
    out = params.output()
    request = {"batch": params.batch, "real": params.real, "out": str(out),
               "refiner": params.refiner or None, "steps": params.steps,
               "self_reg": params.self_reg, "consistency": params.consistency,
               "probe_steps": params.probe_steps, "method": params.method,
               "strength": params.strength or None, "pose_column": params.pose_column,
               "landmarker": params.landmarker or None, "seed": params.seed, "device": params.device,
               "mirror_eye": eye_side(params.mirror_eye)}
    try:
        with transaction():
            made = write_refined(request, params.dask_workers, params.dask_address or None)
            validate_batch(made["path"])
    except BatchRejected as e:
        catalog_batch(str(out))
        verdict = record_refinement(made["mlflow_run"], str(out))
        return Failed(message=f"{e} (quarantined at {out}; label check {verdict['label_shift']})")
    catalog_batch(str(out))
    verdict = record_refinement(made["mlflow_run"], str(out))
    return {**made, **verdict}
