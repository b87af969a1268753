"""Prefect tasks of the feedback loop: one call into :mod:`synthloop.loop` (or the task
object's round adapters, :mod:`synthloop.taskspec`) each, plus
what orchestration adds: catalog records, MLflow runs, dashboard artifacts, retries on
the steps that touch storage, and skipping what a previous (interrupted) run finished."""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from synthloop import lineage
from synthloop.loop.config import LANDMARKER_METHODS, LoopConfig
from synthloop.loop.real import load_real
from synthloop.loop.rounds import initial_distribution, loop_id, round_dir
from synthloop.settings import get_settings
from synthloop.taskspec import GenerateOptions, get_task
from tasks.retries import retry_unless_deterministic


def _catalog():
    from synthloop.lineage import open_catalog

    return open_catalog()


def _tracking(task: str):
    from synthloop import tracking

    s = get_settings()
    tracking.configure(s.tracking_uri, task, s.artifact_root)
    return tracking


@task(name="choose-a-fresh-loop", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def fresh_loop(cfg: LoopConfig) -> LoopConfig:
    """The configuration of a new loop with ``cfg``'s settings (``--fresh``): see
    :func:`synthloop.loop.rounds.fresh_config`."""
    from synthloop.loop.rounds import fresh_config

    cat = _catalog()
    return fresh_config(cfg, load_real(cfg),
                        lambda lid: (cat.get_loop(lid) or {}).get("status") == "finished")


@task(name="open-loop-in-catalog-and-mlflow", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def open_loop(cfg: LoopConfig) -> dict[str, Any]:
    """Split the real data, register the loop (or find it: same config = same loop) and
    its MLflow parent run; return what finished rounds the catalog already holds."""
    logger = get_run_logger()
    settings = get_settings()
    settings.ensure_home()
    real = load_real(cfg)
    dist0 = initial_distribution(cfg)
    lid = loop_id(cfg, real, dist0)
    cat = _catalog()
    lineage.record_distribution(cat, dist0)
    # The loop id keys on the real data's content, not on how its path was written: the
    # path stays out of what the catalog and MLflow compare, so `--real ./d` resumes a
    # loop started with `--real d` (or after the folder moved) instead of conflicting.
    identity = {k: v for k, v in cfg.to_dict().items() if k not in ("real", "distribution")}
    split = {k: v for k, v in real.describe().items() if k != "path"}
    cat.start_loop(lid, cfg.task, cfg.mode, cfg.seed, {**identity, "split": split})
    loop = cat.get_loop(lid)
    tracking = _tracking(cfg.task)
    parent = loop.get("mlflow_run_id")
    if not parent:
        parent = tracking.create_run(cfg.task, f"{cfg.mode}-loop-s{cfg.seed}", {
            "task": cfg.task, "kind": "feedback-loop", "loop_id": lid, "mode": cfg.mode,
            "real_data": real.path, "real_kind": "simulated" if real.simulated else "real"})
        cat.set_loop_status(lid, "running", mlflow_run_id=parent)
    tracking.log_params_to(parent, {**identity, "dist0": dist0.id,
                                    **{f"split.{k}": v for k, v in split.items()}})
    tracking.set_tag(parent, "real_data", real.path)  # where it was read this time
    done = [r for r in cat.rounds(lid) if r["status"] == "done"]
    # where the next round starts: the last finished round's next distribution and model
    next_dist, prev_ckpt = dist0.id, None
    if done:
        logger.info("resuming %s: %d round(s) already done", lid, len(done))
        next_dist = cat.get_analysis(done[-1]["analysis_id"])["next_distribution_id"]
        prev_ckpt = cat.get_training_run(done[-1]["run_id"])["checkpoint"]
    logger.info("real data %s: %d analysis + %d held-out images (split seed %d)", real.path,
                len(real.analysis), len(real.holdout), cfg.split_seed)
    return {"loop_id": lid, "mlflow_run_id": parent, "dist0": dist0.id, "split": real.describe(),
            "done": done, "next_distribution_id": next_dist, "prev_checkpoint": prev_ckpt}


@task(name="open-round", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def open_round(cfg: LoopConfig, lid: str, k: int, dist_id: str, parent_run: str) -> dict[str, Any]:
    """The round's catalog row and MLflow child run (found again after a restart), the
    round's distribution (``distribution_json``) and, when a previous run of this round
    already has one, its accepted batch (``batch``, else ``None``)."""
    cat = _catalog()
    dist_json = lineage.distribution_from_catalog(cat, dist_id).dumps()
    rows = {r["index"]: r for r in cat.rounds(lid)}
    row = rows.get(k)
    if row is not None and row["distribution_id"] != dist_id:
        from catalog.errors import CatalogConflict

        # the catalog and the data disagree
        raise CatalogConflict("round", f"{lid}-r{k}",
                              {"distribution_id": (row["distribution_id"], dist_id)})
    run_id = row.get("mlflow_run_id") if row else None
    if not run_id:
        tracking = _tracking(cfg.task)
        run_id = tracking.create_run(cfg.task, f"round-{k}", {
            "task": cfg.task, "kind": "feedback-loop-round", "loop_id": lid, "round": str(k),
            "distribution": dist_id, "mode": cfg.mode}, parent_run_id=parent_run)
    if row is None:
        cat.upsert_round(lid, k, distribution_id=dist_id, status="started", mlflow_run_id=run_id)
    elif not row.get("mlflow_run_id"):
        cat.upsert_round(lid, k, mlflow_run_id=run_id)
    batch = None
    if row and row.get("batch_id"):
        b = cat.get_batch(row["batch_id"])
        if b and b["status"] == "accepted":
            lineage.check_batch_is_recorded_one(cat, b["id"], b["path"])
            batch = {"batch_id": b["id"], "batch_dir": b["path"]}
    return {**(row or {}), "index": k, "distribution_id": dist_id, "mlflow_run_id": run_id,
            "status": (row or {}).get("status", "started"), "distribution_json": dist_json,
            "batch": batch}


@task(name="find-identical-batch", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def find_batch(cfg: LoopConfig, seed: int, dist_json: str) -> dict[str, Any] | None:
    """A batch is content-addressed (distribution, seed, n, generator): if the catalog
    already holds the one this attempt would write (another loop's identical round, e.g.
    round 0 of the open and the closed arm), reuse it instead of rendering it again."""
    from pathlib import Path

    from synth.distribution import SceneDistribution

    dist = SceneDistribution.loads(dist_json)
    # the id write_batch gives it with the loop's generator settings (the defaults)
    bid = get_task(cfg.task).generator(GenerateOptions()).planned_id(
        n=cfg.n_per_round, seed=seed, dist=dist)
    cat = _catalog()
    row = cat.get_batch(bid)
    if row is None or not (Path(row["path"]) / "manifest.json").is_file():
        return None
    lineage.check_batch_is_recorded_one(cat, bid, row["path"])
    return {"batch_id": bid, "status": row["status"], "batch_dir": row["path"]}


@task(name="record-batch-in-catalog", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def record_batch(lid: str, k: int, batch_dir: str) -> dict[str, Any]:
    from synthloop.lineage import record_batch as record

    cat = _catalog()
    rec = record(cat, batch_dir)
    if rec["status"] == "accepted":
        cat.upsert_round(lid, k, batch_id=rec["batch_id"], status="generated")
    return rec


@task(name="plan-round-refinement")
def round_refine_request(cfg: LoopConfig, k: int, batch_dir: str,
                         landmarker: str | None = None) -> dict[str, Any] | None:
    """What refining round ``k``'s batch takes (toward the analysis part of the real data,
    never the held-out part): a request for :func:`tasks.refining.write_refined`;
    ``{"ready": folder}`` when an accepted refined child of this batch is already there (a
    resumed round); None when ``batch_dir`` already is the refined batch; ``{"rendered":
    why}`` when the round trains on its rendered batch because the method aligns faces by
    a landmark model's points and there is none yet (round 0: ``landmarker`` is the
    previous round's model). A quarantined earlier attempt is kept: the next folder name
    is used."""
    from pathlib import Path

    from synth.shards import BatchReader
    from synthloop.errors import DataFormatError
    from synthloop.loop.rounds import round_seed

    parent = BatchReader(batch_dir, verify=False)
    if "parent" in parent.manifest:
        return None
    needs_landmarker = cfg.refine_method in LANDMARKER_METHODS
    if needs_landmarker and landmarker is None:
        return {"rendered": f"round {k} trains on the rendered batch: {cfg.refine_method} "
                            "places the real faces' points with the previous round's model"}
    out, n = f"{batch_dir}-refined", 1
    while Path(out).exists():
        try:
            there = BatchReader(out, verify=False)
            if (there.manifest.get("parent") or {}).get("batch_id") == parent.batch_id \
                    and there.status.status == "accepted":
                return {"ready": out}
        except DataFormatError:
            pass
        n += 1
        out = f"{batch_dir}-refined-{n}"
    real = load_real(cfg)
    return {"batch": batch_dir, "real": real.path, "out": out,
            "real_indices": [int(i) for i in real.analysis],
            **({"method": cfg.refine_method, "strength": cfg.refine_strength} if cfg.refine_method
               else {"steps": cfg.refine_steps}),
            **({"mirror_eye": cfg.mirror_eye} if cfg.mirror_eye else {}),
            **({"landmarker": landmarker} if needs_landmarker else {}),
            "seed": round_seed(cfg, k, 300)}


def trained_round(lid: str, k: int, cat=None) -> dict[str, Any] | None:
    """Round ``k``'s finished training from the catalog (linked to the round), as
    :func:`train_round` returns it; None while it has not finished."""
    cat = cat or _catalog()
    run_key = f"{lid}-r{k}"
    done = cat.get_training_run(run_key)
    if not done or done["status"] != "finished":
        return None
    cat.upsert_round(lid, k, run_id=run_key)
    return {"run_id": run_key, "checkpoint": done["checkpoint"], "metrics": done["metrics"]}


@task(name="train-round-model")
def train_round(cfg: LoopConfig, lid: str, k: int, batch_dir: str, batch_id: str,
                init_from: str | None, round_run: str) -> dict[str, Any]:
    cat = _catalog()
    # a run killed between finishing the training and linking it to the round: link now
    if (done := trained_round(lid, k, cat)) is not None:
        return done
    run_key = f"{lid}-r{k}"
    lineage.check_batch_is_recorded_one(cat, batch_id, batch_dir)
    tracking = _tracking(cfg.task)
    real = load_real(cfg)
    cat.add_training_run(run_key, cfg.task, cfg.method,
                         {"steps": cfg.steps_per_round, "init_from": init_from, "model": cfg.model},
                         [batch_id], mlflow_run_id=round_run)
    res = get_task(cfg.task).train_round(get_settings(), cfg, lid=lid, k=k, batch_dir=batch_dir,
                                         init_from=init_from, mlflow_run_id=round_run, real=real,
                                         report=get_run_logger().info,
                                         label=f"round {k} ({k + 1} of {cfg.rounds}): train")
    tracking.log_params_to(round_run, {"round": k, "batch_id": batch_id, "init_from": init_from,
                                       **{f"train.{a}": b for a, b in res["train_config"].items()}})
    tracking.log_artifact_to(round_run, res["checkpoint"], "checkpoint")
    cat.finish_training_run(run_key, checkpoint=res["checkpoint"], metrics=res["metrics"],
                            mlflow_run_id=round_run)
    cat.upsert_round(lid, k, run_id=run_key, status="trained")
    return {"run_id": run_key, "checkpoint": res["checkpoint"], "metrics": res["metrics"]}


@task(name="evaluate-on-real-data")
def evaluate_round(cfg: LoopConfig, lid: str, k: int, checkpoint: str, round_run: str) -> dict[str, Any]:
    """Score the round's model on the real data; read back instead when the round's
    analysis (which holds the scores) is already in the catalog (a resumed round)."""
    prev = _catalog().get_analysis(f"{lid}-r{k}-analysis")
    if prev is not None:
        ev = prev["metrics"]["evaluation"]
        return {"real_error": ev["real_error_heldout"], "analysis_error": ev["real_error_analysis"]}
    res = get_task(cfg.task).evaluate_round(get_settings(), cfg, lid=lid, k=k,
                                            checkpoint=checkpoint, real=load_real(cfg))
    _tracking(cfg.task).log_metrics_to(round_run, res["metrics"], step=k)
    return {"real_error": res["real_error"], "analysis_error": res["analysis_error"]}


@task(name="analyse-errors-and-update-distribution", retries=1, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def analyse_round(cfg: LoopConfig, lid: str, k: int, dist_id: str, batch_dir: str,
                  train_run: str, round_run: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Slices, the next distribution, the catalog's analysis row, MLflow artifacts and the
    dashboard artifact. Skipped (read back) when the catalog already has the analysis."""
    from synthloop.loop.analyse import analyse_round as analyse

    cat = _catalog()
    analysis_id = f"{lid}-r{k}-analysis"
    prev = cat.get_analysis(analysis_id)
    if prev is not None:
        cat.upsert_round(lid, k, analysis_id=analysis_id)  # see train_round: link if unlinked
        return {"analysis_id": analysis_id, "next_distribution_id": prev["next_distribution_id"],
                "worst_slices": prev["slices"].get("worst", []), "report": prev["metrics"].get("update", {})}
    settings = get_settings()
    real = load_real(cfg)
    dist = lineage.distribution_from_catalog(cat, dist_id)
    res = analyse(settings, cfg, lid=lid, k=k, dist=dist, dist0=initial_distribution(cfg),
                  batch_dir=batch_dir, real=real)
    new = res["next_distribution"]
    lineage.record_distribution(cat, new)
    data_ref = json.dumps({**real.describe(), "part": "analysis"})
    cat.add_analysis(analysis_id, train_run, data_ref,
                     {"evaluation": {"real_error_heldout": evaluation["real_error"],
                                     "real_error_analysis": evaluation["analysis_error"]},
                      "update": res["report"]},
                     {"slices": res["slices"], "worst": res["worst_slices"]},
                     next_distribution_id=new.id)
    cat.upsert_round(lid, k, analysis_id=analysis_id, status="analysed")
    tracking = _tracking(cfg.task)
    for p in res["plots"].values():
        tracking.log_artifact_to(round_run, p, "plots")
    tracking.log_dict_to(round_run, json.loads(dist.dumps()), "distribution.json")
    tracking.log_dict_to(round_run, json.loads(new.dumps()), "next_distribution.json")
    tracking.log_dict_to(round_run, res["report"], "update_report.json")
    tracking.log_dict_to(round_run, {"slices": res["slices"], "worst": res["worst_slices"]},
                         "slices.json")
    _round_artifacts(cfg, lid, k, dist, new, evaluation, res, round_run)
    return {"analysis_id": analysis_id, "next_distribution_id": new.id,
            "worst_slices": res["worst_slices"], "report": res["report"]}


def _round_artifacts(cfg, lid, k, dist, new, evaluation, res, round_run) -> None:
    from synthloop.loop.artifacts import round_markdown, slice_rows

    links = _links(cfg.task)
    create_markdown_artifact(
        round_markdown(cfg, lid, k, dist, new, evaluation, res, round_run, links,
                       get_settings().tracking_uri),
        key="feedback-loop-round", description=f"{lid} round {k}")
    create_table_artifact(slice_rows(res["slices"], cfg.error_unit),
                          key="feedback-loop-slices",
                          description=f"{lid} round {k}: real error by slice ({cfg.error_unit})")


def _links(task: str):
    """Links into the MLflow UI for this task's experiment (:mod:`synthloop.mlflow_links`)."""
    import mlflow

    from synthloop.loop.artifacts import MlflowLinks
    from synthloop.mlflow_links import ui_base
    from synthloop.tracking import experiment_name

    exp = mlflow.get_experiment_by_name(experiment_name(task))
    return MlflowLinks(ui_base(get_settings().tracking_uri), exp.experiment_id if exp else None)


@task(name="close-round", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def close_round(task_name: str, lid: str, k: int, real_error: float, round_run: str) -> None:
    cat = _catalog()
    cat.upsert_round(lid, k, real_error=float(real_error), status="done")
    _tracking(task_name).end_run(round_run, "FINISHED")


@task(name="register-best-round", retries=1, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def register_best_round(cfg: LoopConfig, lid: str, parent_run: str) -> dict[str, Any] | None:
    """Register the model of the loop's best round, by the declared validation (the error
    on the analysis part; the held-out part only ever scores), as a new version of
    ``synthloop-<task>``; the champion alias moves only if it beats the champion on that
    metric over the same analysis part. Done once per loop (a resumed loop finds it in
    its parent run's tags). None when no round finished or the task cannot serve one."""
    from synthloop.loop.registry import register_best_round as register

    _tracking(cfg.task)
    return register(get_settings(), _catalog(), cfg, lid, parent_run, load_real(cfg),
                    log=get_run_logger().info)


@task(name="close-loop", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def close_loop(cfg: LoopConfig, lid: str, parent_run: str, reason: str) -> dict[str, Any]:
    from analysis.plots import loop_error_curve

    cat = _catalog()
    rounds = [r for r in cat.rounds(lid) if r["status"] == "done"]
    summary = [{"round": r["index"], "distribution_id": r["distribution_id"], "batch_id": r["batch_id"],
                "real_error": r["real_error"], "mlflow_run_id": r["mlflow_run_id"]} for r in rounds]
    result = {"loop_id": lid, "rounds": summary, "stopped": reason,
              "final_real_error": summary[-1]["real_error"] if summary else None}
    if (cat.get_loop(lid) or {}).get("status") == "finished":
        return result  # closed by an earlier run: its MLflow run already holds all of this
    tracking = _tracking(cfg.task)
    png = loop_error_curve(summary, round_dir(get_settings(), lid, 0).parent / "real_error.png",
                           f"{lid} ({cfg.mode} loop, seed {cfg.seed})", unit=cfg.error_unit)
    tracking.log_artifact_to(parent_run, png, "plots")
    for r in summary:
        tracking.log_metrics_to(parent_run, {cfg.error_metric: r["real_error"]}, step=r["round"])
    tracking.log_dict_to(parent_run, {"rounds": summary, "stopped": reason}, "loop_summary.json")
    tracking.end_run(parent_run, "FINISHED")
    cat.set_loop_status(lid, "finished")
    from synthloop.loop.artifacts import summary_rows

    create_table_artifact(summary_rows(summary, cfg.error_unit, _links(cfg.task)),
                          key="feedback-loop-summary",
                          description=f"{lid}: held-out error per round ({cfg.error_unit}); "
                                      f"stopped: {reason}")
    return result
