"""Flow: the data-centric feedback loop.

Rounds of generate -> validate -> train -> evaluate on real -> analyse -> update, until the
stopping rule says so. A batch that fails validation is quarantined by the transaction
and the round draws a new one (another seed), at most ``MAX_BATCH_ATTEMPTS`` times.
Running the same parameters again continues an interrupted loop from the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from analysis.stopping import StoppingRule, should_stop
from models.names import METHODS
from synthloop.errors import BatchRejected
from synthloop.loop.config import LOOP_DEFAULTS, LoopConfig
from synthloop.loop.rounds import round_dir, round_seed
from synthloop.settings import get_settings
from synthloop.taskspec import TASK_NAMES, get_task
from tasks.batches import validate_batch, write_batch
from tasks.loop import (
    analyse_round,
    close_loop,
    close_round,
    evaluate_round,
    find_batch,
    open_loop,
    open_round,
    record_batch,
    train_round,
)

MAX_BATCH_ATTEMPTS = 3


_D = LOOP_DEFAULTS


class LoopParams(BaseModel):
    """What the loop runs on. Rendered by the Prefect dashboard as the run form; the
    defaults are :class:`~synthloop.loop.config.LoopConfig`'s."""

    task: Literal[TASK_NAMES] = Field("gaze", description="gaze or landmarks")
    real: str | None = Field(None, description="labeled real data: a folder with labels.csv (gaze) "
                             "or images with .pts files (landmarks, required); empty (gaze only) = "
                             "the built-in simulated target, written under the project home")
    rounds: int = Field(_D["rounds"], ge=1, le=50, description="budget of rounds")
    seed: int = Field(_D["seed"], ge=0, description="seeds batches, training and the analysis probe")
    open_loop: bool = Field(_D["open_loop"], description="keep the initial distribution (the baseline)")
    n_per_round: int = Field(_D["n_per_round"], ge=64, le=2_000_000,
                             description="synthetic samples per round")
    steps_per_round: int = Field(_D["steps_per_round"], ge=1, le=1_000_000,
                                 description="training steps per round")
    method: Literal[METHODS] = Field(
        _D["method"], description="training method; DA methods use the analysis part unlabeled")
    min_improvement: float = Field(_D["min_improvement"], ge=0.0, lt=1.0,
                                   description="relative held-out gain that counts as progress")
    patience: int | None = Field(_D["patience"], ge=1, description="rounds without progress before "
                                 "stopping; empty = always run every round")
    holdout_frac: float = Field(_D["holdout_frac"], ge=0.05, le=0.95,
                                description="share of real data held out")
    distribution_path: str | None = Field(None, description="start distribution JSON (default: built-in)")
    model_kwargs: dict[str, Any] | None = Field(
        None, description="architecture overrides, e.g. {\"channels\": 32} (default: the model's own)")
    transfer_steps: int | None = Field(
        None, ge=1, description="landmarks: label-transfer fit steps on the analysis part (2000)")

    def config(self) -> LoopConfig:
        real = get_task(self.task).loop_real_data(get_settings(), self.real)
        return LoopConfig(task=self.task, real=real, rounds=self.rounds, seed=self.seed,
                          open_loop=self.open_loop, n_per_round=self.n_per_round,
                          steps_per_round=self.steps_per_round, method=self.method,
                          min_improvement=self.min_improvement, patience=self.patience,
                          holdout_frac=self.holdout_frac, distribution=self.distribution_path,
                          model_kwargs=self.model_kwargs, transfer_steps=self.transfer_steps)


def _accepted_batch(cfg: LoopConfig, lid: str, k: int, dist_json: str, dist_id: str) -> dict:
    """Write + validate in one transaction; a rejected batch stays quarantined (and in the
    catalog) and the next attempt uses a new seed."""
    settings = get_settings()
    logger = get_run_logger()
    for attempt in range(MAX_BATCH_ATTEMPTS):
        seed = round_seed(cfg, k, 100 + attempt)
        same = find_batch(cfg, seed, dist_json)
        if same is not None and same["status"] == "accepted":
            logger.info("round %d: reusing the identical accepted batch %s", k, same["batch_id"])
            record_batch(lid, k, same["batch_dir"])
            return same
        if same is not None and same["status"] == "quarantined":
            continue
        out = settings.batches_dir / lid / f"round-{k:02d}-{dist_id}-a{attempt}"
        if same is not None:  # written but never validated (a run killed in between)
            out = Path(same["batch_dir"])
        try:
            with transaction():
                path = write_batch(str(out), cfg.task, cfg.n_per_round, seed, dist_json)
                validate_batch(path)
        except BatchRejected as e:
            logger.warning("round %d attempt %d: %s", k, attempt, e)
            record_batch(lid, k, str(out))
            continue
        rec = record_batch(lid, k, str(out))
        return {**rec, "batch_dir": str(out)}
    raise BatchRejected(f"{lid} round {k}: {MAX_BATCH_ATTEMPTS} batches in a row failed validation "
                        f"(quarantined under {settings.batches_dir / lid})")


@flow(name="feedback-loop", log_prints=True)
def feedback_loop(params: LoopParams) -> dict:
    cfg = params.config()
    logger = get_run_logger()
    settings = get_settings()
    state = open_loop(cfg)
    lid, parent = state["loop_id"], state["mlflow_run_id"]
    rule = StoppingRule(cfg.rounds, cfg.min_improvement, cfg.patience)
    errors = [r["real_error"] for r in state["done"]]
    dist_id, prev_ckpt = state["next_distribution_id"], state["prev_checkpoint"]
    stop, why = should_stop(errors, rule) if errors else (False, "")
    k = len(state["done"])
    while not stop:
        rnd = open_round(cfg, lid, k, dist_id, parent)
        batch = rnd["batch"] or _accepted_batch(cfg, lid, k, rnd["distribution_json"], dist_id)
        trained = train_round(cfg, lid, k, batch["batch_dir"], batch["batch_id"], prev_ckpt,
                              rnd["mlflow_run_id"])
        ev = evaluate_round(cfg, lid, k, trained["checkpoint"], rnd["mlflow_run_id"])
        an = analyse_round(cfg, lid, k, dist_id, batch["batch_dir"], trained["run_id"],
                           rnd["mlflow_run_id"], ev)
        close_round(cfg.task, lid, k, ev["real_error"], rnd["mlflow_run_id"])
        errors.append(ev["real_error"])
        logger.info("round %d: held-out real error %.3f %s; next distribution %s", k,
                    ev["real_error"], cfg.error_unit, an["next_distribution_id"])
        dist_id, prev_ckpt = an["next_distribution_id"], trained["checkpoint"]
        stop, why = should_stop(errors, rule)
        k += 1
    logger.info("loop %s stopped: %s (files under %s)", lid, why, round_dir(settings, lid, 0).parent)
    return close_loop(cfg, lid, parent, why)
