"""Flow: tune gaze training with Optuna. One task opens (or resumes) the study, one task
per trial, one closes it; several flow runs (workers) may share one study when the
Optuna storage is a server database (``SYNTHLOOP_OPTUNA_URL``)."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel, Field, field_validator

from flows.forms import EmptyText, EyeSide, eye_side
from models.names import METHODS
from synthloop.tuning.space import OBJECTIVE_NAMES
from tasks.tuning import builtin_target_path, close_tuning, open_tuning, tuning_trial


class TuneParams(BaseModel):
    """Search gaze-training settings (learning rate, weight decay, transfer weight, schedule)
    with Optuna: one short training per trial, hopeless trials stopped early, results in
    MLflow. The study resumes where it stopped. Cost is about trials x steps training steps
    (about 0.04 s each for dann on 2 CPU cores, half that for source_only) plus rendering the
    source batch once: the defaults (12 trials of 600 steps) take roughly 5 to 10 minutes."""

    method: Literal[METHODS] = Field("dann", title="Method",
                                     description="The training method whose settings are tuned.")
    target: EmptyText = Field(
        "", title="Target eyes folder",
        description="Eyes to score on: labels.csv (its held-out part is scored) or manifest.csv "
        "(unlabeled: label-free objectives only). Leave empty for the built-in simulated target "
        "(written under the project home).")
    trials: int = Field(12, ge=1, le=1000, title="Trials",
                        description="Finished trials the study should hold (a resumed study runs "
                        "only the missing ones).")
    steps: int = Field(600, ge=1, le=1_000_000, title="Steps per trial",
                       description="Training steps of each trial.")
    seed: int = Field(0, ge=0, title="Seed",
                      description="Random seed for the source batch, the training and the sampler.")
    objective: Literal[("auto", *OBJECTIVE_NAMES)] = Field(  # type: ignore[valid-type]
        "auto", title="Objective",
        description="What a trial is scored on; auto = target_error when the target has labels, "
        "else entropy.")
    source: EmptyText = Field("", title="Source batch folder",
                              description="An existing accepted synthetic batch to train on. "
                              "Leave empty to render a new one (size below).")
    n_source: int = Field(20_000, ge=64, title="Source samples",
                          description="Size of the synthetic batch rendered when no source batch "
                          "is given.")
    batch_size: int = Field(64, ge=2, le=4096, title="Batch size",
                            description="Synthetic images per step.")
    mirror_eye: EyeSide = Field(
        "none", title="Mirror one eye side",
        description="The target's eyes of this side mirrored left to right onto the other's, "
        "yaw negated, in every trial (needs meta.csv's 'eye' column).")

    @field_validator("objective", mode="before")
    @classmethod
    def _none_is_auto(cls, v):
        return "auto" if v is None else v


@flow(name="tune-gaze", log_prints=True)
def tune_gaze(params: TuneParams) -> dict:
    target = params.target or builtin_target_path()
    objective = None if params.objective == "auto" else params.objective
    ctx = open_tuning(params.method, target, params.steps, params.seed, params.source or None,
                      params.n_source, objective, params.batch_size,
                      eye_side(params.mirror_eye))
    finished = ctx["finished"]
    while finished < params.trials:
        finished = tuning_trial(ctx)["finished"]
    return close_tuning(ctx)
