"""Flow: generate one synthetic batch and validate it, as one transaction.

If validation fails, the transaction rolls back and the write task's rollback hook marks
the batch quarantined: it stays on disk for inspection and is never trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow
from prefect.states import Failed
from prefect.transactions import transaction
from pydantic import BaseModel, Field, model_validator

from synthloop.errors import BatchRejected
from synthloop.settings import get_settings
from synthloop.taskspec import TASK_NAMES, GenerateOptions, get_task
from tasks.batches import catalog_batch, revalidate_batch, validate_batch, write_batch


class GenerateParams(BaseModel):
    """What to generate. Rendered by the Prefect dashboard as the run form."""

    task: Literal[TASK_NAMES] = Field(
        "gaze", description="which generator: gaze = eye patches, landmarks = face crops with "
                            "68-point and dense landmarks")
    n: int = Field(2048, ge=1, le=5_000_000, description="number of samples")
    seed: int = Field(0, ge=0, description="same seed + distribution = identical bytes")
    out: str | None = Field(None, description="batch folder; default <home>/batches/<task>-s<seed>-n<n>")
    distribution_path: str | None = Field(
        None, description="scene distribution JSON; default: the task's built-in distribution")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where to render (faces: cpu only)")
    landmark_set: Literal["dense500", "dense1001"] | None = Field(
        None, description="landmarks only: the dense set stored beside the 68 points "
                          "(default dense500)")

    @model_validator(mode="after")
    def _options_fit_the_task(self) -> GenerateParams:
        # said in the run form, before a worker picks the run up and fails on it
        get_task(self.task).generator(GenerateOptions(device=self.device,
                                                      landmark_set=self.landmark_set))
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
                               params.landmark_set)
            summary = validate_batch(path)
    except BatchRejected as e:
        # the rollback hook has quarantined the batch; the run ends Failed, with the reason
        catalog_batch(str(out))
        return Failed(message=f"{e} (quarantined at {out})")
    catalog_batch(str(out))
    return summary


class ValidateParams(BaseModel):
    batch: str = Field(..., description="batch folder (with manifest.json) to validate again")


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
