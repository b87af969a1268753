"""Flow: the data-centric feedback loop.

Rounds of generate -> validate -> train -> evaluate on real -> analyse -> update, until the
stopping rule says so. A batch that fails validation is quarantined by the transaction
and the round draws a new one (another seed), at most ``MAX_BATCH_ATTEMPTS`` times.
Running the same parameters again continues an interrupted loop from the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.transactions import transaction
from pydantic import BaseModel, Field

from analysis.stopping import StoppingRule, should_stop
from flows.forms import EmptyDict, EmptyText, EyeSide, ZeroInt, eye_side
from models.names import METHODS
from synthloop.errors import BatchRejected
from synthloop.loop.config import (
    LOOP_DEFAULTS,
    REFINE_METHOD_NAMES,
    ROUND_START_CHOICES,
    TRANSFER_FIT_NAMES,
    UPDATE_NAMES,
    LoopConfig,
    resolve_round_start,
)
from synthloop.loop.rounds import round_dir, round_seed
from synthloop.loop.routing import CHOICES
from synthloop.refine_methods import MEAN_PATCH_STRENGTH, POSE_MEAN_PATCH_STRENGTH
from synthloop.settings import get_settings
from synthloop.taskspec import TASK_NAMES, get_task
from tasks.batches import validate_batch, write_batch
from tasks.loop import (
    analyse_round,
    close_loop,
    close_round,
    evaluate_round,
    find_batch,
    fresh_loop,
    open_loop,
    open_round,
    record_batch,
    register_best_round,
    round_refine_request,
    train_round,
)
from tasks.refining import record_refinement, write_refined
from tasks.routing import train_round_on_gpu, where_to_train

MAX_BATCH_ATTEMPTS = 3


_D = LOOP_DEFAULTS


class LoopParams(BaseModel):
    """The feedback loop: each round renders synthetic eyes (or faces), checks them, trains a
    model on them, measures its error on held-out real data and shifts the scene distribution
    toward what the model gets wrong. Cost grows with rounds x (samples + training steps):
    on 2 idle CPU cores the defaults (3 rounds of 6,000 eyes and 500 steps) took about a
    minute and 1 round of 512 eyes and 20 steps under a minute; a busy machine takes
    several times longer."""

    task: Literal[TASK_NAMES] = Field(
        "gaze", title="Task", description="gaze: eye patches and gaze direction; landmarks: face "
        "crops and 68 facial points (needs real faces below)")
    real: EmptyText = Field(
        "", title="Real data folder",
        description="Labeled real data the model is scored on: a folder with labels.csv (gaze) or "
        "face images with .pts files (landmarks). Leave empty for gaze to use the built-in "
        "simulated target (a simulation, written under the project home).")
    rounds: int = Field(_D["rounds"], ge=1, le=50, title="Rounds",
                        description="Most rounds to run (the loop may stop earlier, see patience).")
    seed: int = Field(_D["seed"], ge=0, title="Seed",
                      description="Random seed for the batches, the training and the analysis. "
                      "The same seed and settings are the same loop (see Start a new loop).")
    open_loop: bool = Field(_D["open_loop"], title="Open loop (baseline)",
                            description="Keep the starting distribution every round, to compare "
                            "against the closed loop.")
    n_per_round: int = Field(_D["n_per_round"], ge=64, le=2_000_000, title="Samples per round",
                             description="Synthetic samples rendered each round (6,000 eyes take "
                             "a few seconds on 2 CPU cores; faces about 20 per second).")
    steps_per_round: int = Field(_D["steps_per_round"], ge=1, le=1_000_000,
                                 title="Training steps per round",
                                 description="Optimiser steps each round, batch 64 (gaze): the "
                                 "main cost of a round (500 steps: about 12 s on 2 CPU cores).")
    method: Literal[METHODS] = Field(
        _D["method"], title="Training method",
        description="source_only trains on synthetic data only; dann, daln and iwdan also adapt "
        "to the unlabeled analysis part of the real data (about twice the cost per step).")
    min_improvement: float = Field(
        _D["min_improvement"], ge=0.0, lt=1.0, title="Minimum improvement",
        description="Relative drop of the held-out error that counts as progress (0.02 = 2 %).")
    patience: ZeroInt = Field(
        _D["patience"] or 0, ge=0, title="Patience (rounds)",
        description="Rounds in a row without progress before the loop stops early; 0 = never "
        "stop early, run every round.")
    holdout_frac: float = Field(
        _D["holdout_frac"], ge=0.05, le=0.95, title="Held-out share",
        description="Share of the real data kept for scoring only (0.5 = half); the rest is "
        "analysed to steer the next round.")
    distribution_path: EmptyText = Field(
        "", title="Starting distribution file",
        description="A scene distribution JSON file to start from (synthloop distribution "
        "--out writes one). Leave empty for the built-in one.")
    model_kwargs: EmptyDict = Field(
        default_factory=dict, title="Model architecture overrides",
        description='Settings passed to the model, e.g. {"channels": 32}. Leave {} for the '
        "task's own model.")
    transfer_steps: ZeroInt = Field(
        0, ge=0, title="Label-transfer steps (landmarks)",
        description="Landmarks only, with the mlp label-transfer fit below: its steps; 0 = the "
        "default (2000).")  # synthloop.landmarks.rounds.TRANSFER_STEPS, not imported: torch
    transfer_fit: Literal[TRANSFER_FIT_NAMES] = Field(
        TRANSFER_FIT_NAMES[0], title="Label-transfer fit (landmarks)",
        description="Landmarks only: ridge fits the transfer to the 68 points in closed form, "
        "its regularisation chosen by leave-one-out on the analysis faces; mlp trains a small "
        "network for the steps above (better only with many labeled faces, if at all).")
    refine_steps: ZeroInt = Field(
        0, ge=0, le=1_000_000, title="Refiner steps",
        description="Refine each round's batch toward the analysis part's real images (SimGAN) "
        "before training, for this many refiner steps; 0 = train on the rendered batch.")
    refine_method: Literal[REFINE_METHOD_NAMES] = Field(
        "simgan", title="Refinement",
        description="simgan: refine with a SimGAN refiner when Refiner steps is above 0; "
        "mean-patch: move each round's batch by the analysis part's mean image minus its own "
        "(seconds, no training; leave Refiner steps at 0); pose-mean-patch: the same at each "
        "head pose of the real eyes (gaze; meta.csv's head_pose_P_deg); landmark-patch and "
        "real-context (landmarks): the mean patch in the face's own coordinates, or each "
        "synthetic face set into an analysis photograph aligned by the 68 points, both "
        "placing the real faces' points with the previous round's model (round 0 trains on "
        "the rendered batch).")
    refine_strength: float = Field(
        0.0, ge=0.0, le=4.0, title="Mean-patch strength",
        description="With mean-patch, pose-mean-patch or landmark-patch: how far toward the "
        f"analysis part's mean image (1: all the way); 0: the method's default "
        f"({POSE_MEAN_PATCH_STRENGTH:g} for pose-mean-patch, {MEAN_PATCH_STRENGTH:g} for the "
        f"others). A refined batch whose "
        "labels can no longer be learned as well is quarantined.")
    mirror_eye: EyeSide = Field(
        "none", title="Mirror one eye side (gaze)",
        description="Gaze only: the real eyes of this side mirrored left to right onto the "
        "other's, yaw negated (needs meta.csv's 'eye' column), so every model sees one kind "
        "of eye; errors stay those of the eyes as stated.")
    update: Literal[UPDATE_NAMES] = Field(
        UPDATE_NAMES[0], title="What the update moves",
        description="all: the label factors (toward where the real errors are) and the "
        "appearance factors (fitted to the real images' statistics); labels: the label factors "
        "only, appearance as the starting distribution draws it. A closed loop only.")
    round_start: Literal[ROUND_START_CHOICES] = Field(
        ROUND_START_CHOICES[0], title="Where each round's training starts",
        description="warm: from the previous round's model (it accumulates every round's "
        "steps); scratch: from fresh weights, so each round's model reflects its own "
        "distribution alone at the same budget; default: the task's (gaze scratch: more "
        "steps on synthetic eyes read real eyes worse; landmarks warm).")
    train_on: Literal[CHOICES] = Field(
        "auto", title="Where to train",
        description="auto: each round trains on the gpu work pool when one of its workers is "
        "online (the train-round-gpu deployment), else in this run; here: always in this run; "
        "gpu: always on the gpu pool, waiting for a worker. The hosts must share the batches, "
        "SYNTHLOOP_HOME, the catalog and MLflow (docs/scale-out.md).")
    fresh: bool = Field(False, title="Start a new loop",
                        description="Run a new loop even if one with these settings finished "
                        "before. Off: a finished loop only reports its results, an interrupted "
                        "one continues where it stopped.")

    def config(self) -> LoopConfig:
        """The loop's configuration; the form's empty values ("", 0, {}) become its defaults."""
        real = get_task(self.task).loop_real_data(get_settings(), self.real or None)
        return LoopConfig(task=self.task, real=real, rounds=self.rounds, seed=self.seed,
                          open_loop=self.open_loop, n_per_round=self.n_per_round,
                          steps_per_round=self.steps_per_round, method=self.method,
                          min_improvement=self.min_improvement, patience=self.patience or None,
                          holdout_frac=self.holdout_frac,
                          distribution=self.distribution_path or None,
                          model_kwargs=self.model_kwargs or None,
                          transfer_steps=self.transfer_steps or None,
                          transfer_fit=self.transfer_fit,
                          refine_steps=self.refine_steps or None,
                          mirror_eye=eye_side(self.mirror_eye), update=self.update,
                          round_start=resolve_round_start(self.task, self.round_start),
                          **({"refine_method": self.refine_method,
                              "refine_strength": self.refine_strength or None}
                             if self.refine_method != "simgan" else {}))


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


def _refined_batch(cfg: LoopConfig, lid: str, k: int, batch: dict, landmarker: str | None) -> dict:
    """The round's batch refined toward the analysis part (write + validate in one
    transaction); the round then trains on it. A batch that is already the refined one
    (a resumed round) is used as it is, and so is round 0's where the method needs a
    landmark model (``landmarker``: the previous round's)."""
    request = round_refine_request(cfg, k, batch["batch_dir"], landmarker)
    if request is None:
        return batch
    if "rendered" in request:
        get_run_logger().info(request["rendered"])
        return batch
    if "ready" in request:
        return {**record_batch(lid, k, request["ready"]), "batch_dir": request["ready"]}
    out = request["out"]
    try:
        with transaction():
            made = write_refined(request)
            validate_batch(made["path"])
    except BatchRejected as e:
        record_batch(lid, k, out)
        raise BatchRejected(f"{lid} round {k}: the refined batch failed validation ({e}); "
                            f"quarantined at {out}") from None
    rec = record_batch(lid, k, out)
    record_refinement(made["mlflow_run"], out)
    return {**rec, "batch_dir": out}


@flow(name="feedback-loop", log_prints=True)
def feedback_loop(params: LoopParams) -> dict:
    cfg = params.config()
    if params.fresh:
        cfg = fresh_loop(cfg)
    logger = get_run_logger()
    settings = get_settings()
    state = open_loop(cfg)
    lid, parent = state["loop_id"], state["mlflow_run_id"]
    rule = StoppingRule(cfg.rounds, cfg.min_improvement, cfg.patience)
    errors = [r["real_error"] for r in state["done"]]
    dist_id, prev_ckpt = state["next_distribution_id"], state["prev_checkpoint"]
    stop, why = should_stop(errors, rule) if errors else (False, "")
    k = rounds_before = len(state["done"])
    on = "the simulated target" if state["split"].get("simulated") else "real data"
    while not stop:
        logger.info("round %d (%d of %d): %s %s from %s", k, k + 1, cfg.rounds,
                    f"{cfg.n_per_round:,}", get_task(cfg.task).samples, dist_id)
        rnd = open_round(cfg, lid, k, dist_id, parent)
        batch = rnd["batch"] or _accepted_batch(cfg, lid, k, rnd["distribution_json"], dist_id)
        if cfg.refines:
            batch = _refined_batch(cfg, lid, k, batch, prev_ckpt)
        train = train_round_on_gpu if where_to_train(params.train_on) == "gpu" else train_round
        trained = train(cfg, lid, k, batch["batch_dir"], batch["batch_id"],
                        cfg.starting_weights(prev_ckpt), rnd["mlflow_run_id"])
        ev = evaluate_round(cfg, lid, k, trained["checkpoint"], rnd["mlflow_run_id"])
        an = analyse_round(cfg, lid, k, dist_id, batch["batch_dir"], trained["run_id"],
                           rnd["mlflow_run_id"], ev)
        close_round(cfg.task, lid, k, ev["real_error"], rnd["mlflow_run_id"])
        errors.append(ev["real_error"])
        logger.info("round %d (%d of %d): held-out error %.2f %s on %s; next distribution %s",
                    k, k + 1, cfg.rounds, ev["real_error"], cfg.error_unit, on,
                    an["next_distribution_id"])
        dist_id, prev_ckpt = an["next_distribution_id"], trained["checkpoint"]
        stop, why = should_stop(errors, rule)
        k += 1
    logger.info("loop %s stopped: %s (files under %s)", lid, why, round_dir(settings, lid, 0).parent)
    registered = register_best_round(cfg, lid, parent)
    return {**close_loop(cfg, lid, parent, why), "rounds_before": rounds_before,
            "simulated": bool(state["split"].get("simulated")), "registered": registered,
            "mlflow_run_id": parent, "flow_run_id": str(flow_run.id)}
