"""The feedback loop's training step as a flow of its own: a loop whose ``train_on`` is
``auto`` (a gpu worker online) or ``gpu`` runs it on the ``gpu`` work pool through the
``train-round/train-round-gpu`` deployment (:mod:`tasks.routing`). The step is the same
task the loop runs in its own process: the round's batch, warm start, MLflow round run
and catalog records are the same wherever it trains."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from flows.forms import EmptyText
from synthloop.loop.config import LoopConfig
from tasks.loop import train_round


class TrainRoundParams(BaseModel):
    """One round of a feedback loop, trained on this worker. Started by the loop itself
    (its `Where to train` setting), not by hand."""

    loop: dict[str, Any] = Field(..., title="Loop configuration",
                                 description="The loop's settings, as the loop sends them.")
    loop_id: str = Field(..., title="Loop id", description="The loop the round belongs to.")
    round: int = Field(..., ge=0, title="Round", description="The round's number, from 0.")
    batch_dir: str = Field(..., title="Batch folder", description="The round's accepted batch "
                           "(on storage this worker shares with the loop).")
    batch_id: str = Field(..., title="Batch id", description="The batch's id in the catalog.")
    init_from: EmptyText = Field("", title="Warm start checkpoint",
                                 description="The previous round's checkpoint; empty in round 0.")
    round_run: str = Field(..., title="MLflow run of the round",
                           description="The round's MLflow run, which the training logs to.")


@flow(name="train-round", log_prints=True)
def train_round_flow(params: TrainRoundParams) -> dict:
    cfg = LoopConfig(**params.loop)
    return train_round(cfg, params.loop_id, params.round, params.batch_dir, params.batch_id,
                       params.init_from or None, params.round_run)
