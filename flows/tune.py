"""Flow: tune gaze training with Optuna. One task opens (or resumes) the study, one task
per trial, one closes it; several flow runs (workers) may share one study when the
Optuna storage is a server database (``SYNTHLOOP_OPTUNA_URL``)."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel, Field

from models.names import METHODS
from synthloop.tuning.space import OBJECTIVE_NAMES
from tasks.tuning import builtin_target_path, close_tuning, open_tuning, tuning_trial


class TuneParams(BaseModel):
    """Rendered by the Prefect dashboard as the run form."""

    method: Literal[METHODS] = Field("dann", description="training method")
    target: str | None = Field(None, description="target eyes: labels.csv (scored on its held-out "
                               "part) or manifest.csv (label-free objectives only); empty = the "
                               "built-in simulated target, written under the project home")
    trials: int = Field(12, ge=1, le=1000, description="finished trials the study should hold")
    steps: int = Field(600, ge=1, le=1_000_000, description="training steps per trial")
    seed: int = Field(0, ge=0, description="seeds the source batch, the training and the sampler")
    objective: Literal[OBJECTIVE_NAMES] | None = Field(
        None, description="default: target_error with labels.csv, else entropy")
    source: str | None = Field(None, description="existing accepted batch; default: generate one")
    n_source: int = Field(20_000, ge=64, description="size of the generated source batch")
    batch_size: int = Field(64, ge=2, le=4096, description="source images per step")


@flow(name="tune-gaze", log_prints=True)
def tune_gaze(params: TuneParams) -> dict:
    target = params.target or builtin_target_path()
    ctx = open_tuning(params.method, target, params.steps, params.seed, params.source,
                      params.n_source, params.objective, params.batch_size)
    finished = ctx["finished"]
    while finished < params.trials:
        finished = tuning_trial(ctx)["finished"]
    return close_tuning(ctx)
