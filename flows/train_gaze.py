"""Flows: train a gaze model (DA method of choice) and evaluate a model, with typed
parameters that the Prefect dashboard renders as forms."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel, Field

from models.names import METHODS
from tasks.training import evaluate_gaze_task, train_gaze_task


class TrainParams(BaseModel):
    method: Literal[METHODS] = Field("dann", description="domain adaptation method")
    target: str = Field(..., description="folder of target eyes: manifest.csv or labels.csv (labels ignored)")
    steps: int = Field(2000, ge=1, le=1_000_000, description="optimiser steps")
    seed: int = Field(0, ge=0, description="seeds model init, batches and augmentation")
    out: str = Field(..., description="checkpoint folder")
    source: str | None = Field(None, description="existing accepted batch; default: generate one")
    n_source: int = Field(20_000, ge=64, description="size of the generated source batch")
    batch_size: int = Field(64, ge=2, le=4096, description="source images per step (target: the same)")
    trade_off: float = Field(1.0, ge=0.0, le=100.0, description="weight of the transfer loss")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cuda routes to a GPU worker's card")


@flow(name="train-gaze", log_prints=True)
def train_gaze(params: TrainParams) -> dict:
    return train_gaze_task(params.method, params.target, params.steps, params.seed, params.out,
                            params.source, params.n_source, params.batch_size, params.trade_off,
                            params.device)


class EvaluateParams(BaseModel):
    model: str = Field("models:/synthloop-gaze@champion", description="MLflow model URI or checkpoint folder")
    data: str = Field(..., description="labels.csv folder (errors) or manifest.csv folder (domain gap)")


@flow(name="evaluate-gaze", log_prints=True)
def evaluate_gaze(params: EvaluateParams) -> dict:
    return evaluate_gaze_task(params.model, params.data)
