"""Prefect tasks of the tuning flow: one call into :mod:`synthloop.tuning.jobs` each; the
trial task runs one Optuna trial (ask, train, tell), so every trial is a task run in the
dashboard, and the last task posts the study's table and best trial as artifacts."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from synthloop.settings import get_settings
from tasks.retries import retry_unless_deterministic


@task(name="builtin-simulated-target")
def builtin_target_path() -> str:
    from synthloop.taskspec import get_task

    settings = get_settings()
    settings.ensure_home()
    return str(get_task("gaze").builtin_target(settings))


@task(name="open-optuna-study", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def open_tuning(method: str, target: str, steps: int, seed: int, source: str | None,
                n_source: int, objective: str | None, batch_size: int,
                mirror_eye: str | None = None) -> dict[str, Any]:
    from synthloop.tuning import jobs as tune_jobs

    settings = get_settings()
    settings.ensure_home()
    logger = get_run_logger()
    return tune_jobs.open_tuning(settings, method=method, target=target, steps=steps, seed=seed,
                                 source=source, n_source=n_source, objective=objective,
                                 batch_size=batch_size, mirror_eye=mirror_eye, log=logger.info)


# Never cached: every call has the same inputs and must run a new trial.
@task(name="optuna-trial", cache_policy=NO_CACHE)
def tuning_trial(ctx: dict[str, Any]) -> dict[str, Any]:
    from synthloop.tuning import jobs as tune_jobs

    logger = get_run_logger()
    return tune_jobs.tuning_trial(get_settings(), ctx, log=logger.info)


@task(name="close-optuna-study", retries=2, retry_delay_seconds=3,
      retry_condition_fn=retry_unless_deterministic)
def close_tuning(ctx: dict[str, Any]) -> dict[str, Any]:
    from synthloop.tuning import jobs as tune_jobs

    res = tune_jobs.close_tuning(get_settings(), ctx)
    create_table_artifact(
        [{"trial": t["number"], "state": t["state"],
          "value": None if t["value"] is None else round(t["value"], 4),
          **{k: float(f"{v:.4g}") for k, v in t["params"].items()}} for t in res["trials"]],
        key="optuna-trials", description=f"{res['study']}: {res['metric']} per trial")
    best = res["best"]
    lines = [f"# Tuning study `{res['study']}`", "",
             f"- objective: `{res['objective']}` ({res['metric']}, {res['direction']})",
             f"- trials finished: {len(res['trials'])}; storage `{res['storage']}`",
             f"- MLflow parent run: `{res['mlflow_run_id']}` (one child run per trial)",
             f"- plot: `{res['plot']}`", ""]
    if best:
        lines += [f"**Best: trial {best['number']}**, {res['metric']} = {best['value']:.4g}", "",
                  "| parameter | value |", "|---|---|",
                  *[f"| {k} | {v:.4g} |" for k, v in best["params"].items()]]
    create_markdown_artifact("\n".join(lines), key="optuna-study", description=res["study"])
    return res
