"""Flow: generate one synthetic batch and validate it, as one transaction.

If validation fails, the transaction rolls back and the write task's rollback hook marks
the batch quarantined: it stays on disk for inspection and is never trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from prefect.states import Failed
from prefect.transactions import transaction
from pydantic import BaseModel, Field, model_validator

from flows.forms import EmptyText, none_as
from synthloop.errors import BatchRejected
from synthloop.settings import get_settings
from synthloop.taskspec import TASK_NAMES, GenerateOptions, get_task
from tasks.batches import catalog_batch, revalidate_batch, validate_batch, write_batch


class GenerateParams(BaseModel):
    """One synthetic batch: rendered, checked with Great Expectations and recorded in the
    catalog. A batch that fails the checks is kept on disk, marked quarantined, and the run
    fails with the reason. On 2 CPU cores eyes render at about 3,000 per second, faces at
    about 20 per second (2,048 faces: about 2 minutes); the checks take seconds."""

    task: Literal[TASK_NAMES] = Field(
        "gaze", title="Task", description="gaze: eye patches with gaze direction; landmarks: face "
        "crops with 68 facial points and a dense point set")
    n: int = Field(2048, ge=1, le=5_000_000, title="Samples", description="Number of samples to render.")
    seed: int = Field(0, ge=0, title="Seed",
                      description="Random seed: the same seed and distribution give identical files.")
    out: EmptyText = Field("", title="Output folder",
                           description="Folder the batch is written to; a folder holding "
                           "another batch is refused. Leave empty for "
                           "<project home>/batches/<task>-s<seed>-n<samples>.")
    distribution_path: EmptyText = Field(
        "", title="Scene distribution file",
        description="A scene distribution JSON file (synthloop distribution --out writes one). "
        "Leave empty for the task's built-in distribution.")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", title="Device", description="Where eyes are rendered; cuda needs a GPU worker. Faces "
        "render on cpu only.")
    landmark_set: Annotated[Literal["default", "dense500", "dense1001"], none_as("default")] = Field(
        "default", title="Dense point set (landmarks)",
        description="Landmarks only: the dense point set stored beside the 68 points; default is "
        "dense500. Gaze batches take only default.")

    dask_workers: int = Field(
        0, ge=0, le=256, title="Dask workers",
        description="0: render in the run's own process. More: render the batch's shards "
        "(4,096 eyes or faces each) on a local Dask cluster of that many single-threaded "
        "processes, then assemble one batch; same bytes either way.")
    dask_address: EmptyText = Field(
        "", title="Dask scheduler",
        description="Address of an existing Dask cluster (tcp://host:8786) to render the shards "
        "on instead; its workers must see the output folder at the same path.")

    def options(self) -> GenerateOptions:
        """How to render; the task refuses options it does not take (a dense point set for
        eyes)."""
        dense = None if self.landmark_set == "default" else self.landmark_set
        return GenerateOptions(device=self.device, landmark_set=dense)

    @model_validator(mode="after")
    def _options_fit_the_task(self) -> GenerateParams:
        # said in the run form, before a worker picks the run up and fails on it
        generator = get_task(self.task).generator(self.options())
        if (self.dask_workers or self.dask_address) and not generator.fans_out:
            raise ValueError(f"{self.task} batches render in one process: leave the Dask "
                             "workers at 0 and the scheduler empty")
        return self


@flow(name="generate-batch", log_prints=True)
def generate_batch(params: GenerateParams = GenerateParams()):  # noqa: B008 (pydantic default)
    settings = get_settings()
    settings.ensure_home()
    out = Path(params.out) if params.out else settings.batches_dir / f"{params.task}-s{params.seed}-n{params.n}"
    dist_json = Path(params.distribution_path).read_text() if params.distribution_path else None
    try:
        with transaction():
            path = write_batch(str(out), params.task, params.n, params.seed, dist_json, params.device,
                               params.options().landmark_set, params.dask_workers,
                               params.dask_address or None)
            summary = validate_batch(path)
    except BatchRejected as e:
        # the rollback hook has quarantined the batch; the run ends Failed, with the reason
        catalog_batch(str(out))
        return Failed(message=f"{e} (quarantined at {out})")
    catalog_batch(str(out))
    return summary


class ValidateParams(BaseModel):
    """Check an existing batch again with Great Expectations, e.g. after the checks changed.
    A batch that fails is marked quarantined (never trained on); the verdict goes to the
    catalog either way. Takes seconds for a few thousand eyes."""

    batch: str = Field(..., title="Batch folder",
                       description="Folder of the batch to check (the one holding manifest.json).")


@flow(name="validate-batch", log_prints=True)
def validate_existing_batch(params: ValidateParams) -> dict:
    """Validate a batch that already exists (e.g. after a suite changed). A failure marks
    it quarantined; the verdict is recorded in the catalog either way."""
    verdict = revalidate_batch(params.batch)
    rec = catalog_batch(params.batch)
    if verdict["status"] != "accepted":
        return Failed(message=f"batch {verdict['batch_id']} failed validation: "
                              f"{', '.join(verdict['failing'])} (quarantined)")
    return {**rec, **verdict}
