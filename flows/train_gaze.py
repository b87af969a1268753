"""Flows: train a gaze model (DA method of choice), label real eyes with trained models'
answers, and evaluate a model, with typed parameters that the Prefect dashboard renders as
forms."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from pydantic import BaseModel, Field

from flows.forms import EmptyText
from models.names import METHODS
from tasks.training import evaluate_gaze_task, pseudo_label_task, train_gaze_task


class TrainParams(BaseModel):
    """Train a gaze model on freshly rendered synthetic eyes, adapting to unlabeled target
    eyes, and register it in MLflow (it becomes the champion if it scores best). On 2 CPU
    cores dann took about 1.5 minutes for 2,000 steps with a new 20,000-eye source batch
    (about 0.04 s a step; source_only about half that)."""

    method: Literal[METHODS] = Field(
        "dann", title="Method", description="source_only: synthetic labels only; dann, daln, "
        "iwdan: also align the features of the target eyes (domain adaptation).")
    target: str = Field(..., title="Target eyes folder",
                        description="Unlabeled eyes of the domain to adapt to: a folder with "
                        "manifest.csv, or labels.csv (its labels are not used).")
    steps: int = Field(2000, ge=1, le=1_000_000, title="Training steps",
                       description="Optimiser steps (batch size below).")
    seed: int = Field(0, ge=0, title="Seed",
                      description="Random seed for the model, the batches and the augmentation.")
    out: str = Field(..., title="Checkpoint folder",
                     description="Folder the trained model is saved to, on the worker's machine. "
                     "A folder holding a training on other data is refused; on the same data the "
                     "training resumes.")
    source: EmptyText = Field("", title="Source batch folder",
                              description="An existing accepted synthetic batch to train on. "
                              "Leave empty to render a new one (size below).")
    n_source: int = Field(20_000, ge=64, title="Source samples",
                          description="Size of the synthetic batch rendered when no source batch "
                          "is given.")
    batch_size: int = Field(64, ge=2, le=4096, title="Batch size",
                            description="Synthetic images per step (and as many target images).")
    trade_off: float = Field(1.0, ge=0.0, le=100.0, title="Transfer weight",
                             description="Weight of the domain-adaptation loss (source_only "
                             "ignores it).")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", title="Device", description="cuda trains on the GPU of a worker of the gpu pool.")
    ema: float = Field(0.0, ge=0.0, lt=1.0, title="Weight averaging",
                       description="Decay of a moving average of the weights, which is then what "
                       "is scored, saved and registered (0: off; 0.99 averages about the last "
                       "hundred steps).")
    real_labeled: EmptyText = Field("", title="Labeled real eyes folder",
                                    description="Labeled real eyes (labels.csv, meta.csv naming "
                                    "the people) trained on beside the synthetic ones, or eyes "
                                    "labeled by the Pseudo-label gaze flow. Leave empty for none.")
    real_fraction: float = Field(0.5, gt=0.0, lt=1.0, title="Real share of each batch",
                                 description="Share of each batch taken from the labeled real "
                                 "eyes (0.125 did best with a single labeled person, 0.75 with "
                                 "pseudo-labeled eyes).")
    mirror_eye: Literal["", "L", "R"] = Field(
        "", title="Mirror one eye side", description="Mirror the real eyes of this side onto the "
        "other's, yaw negated (meta.csv eye column); empty: no mirroring.")


@flow(name="train-gaze", log_prints=True)
def train_gaze(params: TrainParams) -> dict:
    return train_gaze_task(params.method, params.target, params.steps, params.seed, params.out,
                            params.source or None, params.n_source, params.batch_size, params.trade_off,
                            params.device, params.ema or None, params.real_labeled or None,
                            params.real_fraction, params.mirror_eye or None)


class PseudoLabelParams(BaseModel):
    """Label unlabeled real eyes with the mean answer of a few trained gaze models (three to
    five seeds of one recipe), then train one model on them with Train gaze's labeled real
    eyes: it scores as well as the models' average. Seconds for a few thousand eyes."""

    models: list[str] = Field(..., min_length=1, title="Teacher models",
                              description="Registered models (models:/synthloop-gaze/3 is version "
                              "3) or checkpoint folders; their answers are averaged.")
    data: str = Field(..., title="Eyes to label",
                      description="A folder with manifest.csv (or labels.csv, whose labels are not "
                      "used) and meta.csv naming the people.")
    out: str = Field(..., title="Output folder",
                     description="A new folder for the labeled eyes, on the worker's machine; an "
                     "existing folder with files in it is refused.")
    tta_shift: int = Field(2, ge=0, le=4, title="Shift averaging (px)",
                           description="Average each answer over the eye patch shifted by up to "
                           "this many pixels per axis (0: off; 2 runs 25 passes).")


@flow(name="pseudo-label-gaze", log_prints=True)
def pseudo_label_gaze(params: PseudoLabelParams) -> dict:
    return pseudo_label_task(params.models, params.data, params.out, params.tta_shift)


class EvaluateParams(BaseModel):
    """Score a gaze model on real or synthetic eyes: with labels, its angular error in
    degrees; without, how far the eyes are from what it was trained on (domain gap).
    Seconds for a few thousand eyes."""

    model: str = Field("models:/synthloop-gaze@champion", title="Model",
                       description="A registered model (models:/synthloop-gaze@champion is the best "
                       "one so far, models:/synthloop-gaze/3 is version 3) or a checkpoint folder.")
    data: str = Field(..., title="Eyes folder",
                      description="A folder with labels.csv (errors in degrees) or manifest.csv "
                      "(unlabeled: domain gap only).")
    tta_shift: int = Field(0, ge=0, le=4, title="Shift averaging (px)",
                           description="Average each answer over the eye patch shifted by up to "
                           "this many pixels per axis (0: off; 2 runs 25 passes).")


@flow(name="evaluate-gaze", log_prints=True)
def evaluate_gaze(params: EvaluateParams) -> dict:
    return evaluate_gaze_task(params.model, params.data, params.tta_shift)
