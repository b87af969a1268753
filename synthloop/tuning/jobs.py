"""The tuning jobs the command line and the Prefect tasks call: open (or resume) a study
with its source batch and MLflow parent run, run one more trial, close it with its plot
and best trial; :func:`tune_gaze` runs all three."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloop.settings import Settings
from synthloop.tuning.space import (
    OBJECTIVES,
    SEARCH_SPACES,
    default_objective,
    study_name,
    target_fingerprint,
)
from synthloop.tuning.study import finished_trials, open_study, redact, run_trial, summary

__all__ = ["close_tuning", "open_tuning", "tune_gaze", "tuning_trial"]


def _parent_run(settings: Settings, name: str, params: dict[str, Any]) -> str:
    """The study's MLflow parent run: found by its tags when the study resumes."""
    import mlflow

    from synthloop import tracking

    tracking.configure(settings.tracking_uri, "gaze", settings.artifact_root)
    found = mlflow.search_runs(experiment_names=[tracking.experiment_name("gaze")],
                               filter_string=f"tags.optuna_study = '{name}' and tags.kind = 'tune'",
                               output_format="list")
    if found:
        return found[0].info.run_id
    run_id = tracking.create_run("gaze", f"tune-{name}", {"kind": "tune", "optuna_study": name,
                                                        "task": "gaze"})
    tracking.log_params_to(run_id, params)
    return run_id


def open_tuning(settings: Settings, *, method: str, target: str, steps: int, seed: int = 0,
                source: str | None = None, n_source: int = 20_000, objective: str | None = None,
                batch_size: int = 64, mirror_eye: str | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check the arguments and the target (before anything is made), make (or find) the
    source batch, the study and its MLflow parent run. ``mirror_eye``: every trial trains
    and scores with the target's eyes of that side mirrored (``synthloop train
    --mirror-eye``). Returns the study's context
    (small, JSON-able: it crosses task boundaries): ``study``, ``mlflow_run_id``,
    ``source``, ``objective``, ``metric``, ``direction``, ``finished`` (trials already
    finished) and the arguments the trials need."""
    from synthloop.batches import prepare_training_batch
    from synthloop.errors import DataFormatError, UsageError
    from synthloop.gaze.source import load_target

    if steps < 1 or batch_size < 1:
        raise UsageError("steps and batch_size must be positive")
    if method not in SEARCH_SPACES:
        raise UsageError(f"no search space for method {method!r}; known: {', '.join(SEARCH_SPACES)}")
    if objective is not None and objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    eyes = load_target(target)  # a missing or malformed folder fails here, naming the file
    if mirror_eye is not None:  # a folder that cannot name its eye sides fails here too
        from realdata.eye_side import mirror_side

        eyes = mirror_side(eyes, mirror_eye)
    objective = objective or default_objective(eyes)
    if objective == "target_error" and eyes.pitchyaw is None:
        raise DataFormatError(Path(target), "objective target_error needs labels.csv (labeled "
                              "target eyes); use a label-free objective (entropy, im, snd)")
    reader = prepare_training_batch(settings, "gaze", source=source, n=n_source, seed=seed, log=log)
    metric, direction = OBJECTIVES[objective]
    name = study_name(method, reader.batch_id, target_fingerprint(eyes), steps, objective, seed,
                      batch_size, mirror_eye)
    study = open_study(settings, name, direction, seed)
    parent = _parent_run(settings, name, {
        "method": method, "source_batch": reader.batch_id, "target": str(Path(target).resolve()),
        "target_fingerprint": target_fingerprint(eyes), "steps": steps, "seed": seed,
        "batch_size": batch_size, "objective": objective, "metric": metric,
        "direction": direction, "storage": redact(settings.optuna_storage),
        "search_space": json.dumps(SEARCH_SPACES[method]),
        **({"mirror_eye": mirror_eye} if mirror_eye else {})})
    done = len(finished_trials(study))
    if done:
        log(f"study {name}: {done} trial(s) already finished")
    return {"study": name, "mlflow_run_id": parent, "source": str(reader.path),
            "objective": objective, "metric": metric, "direction": direction, "finished": done,
            "method": method, "target": target, "steps": steps, "seed": seed,
            "batch_size": batch_size, "mirror_eye": mirror_eye}


def tuning_trial(settings: Settings, ctx: dict[str, Any], *,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """One more trial of the study ``ctx`` names (:func:`open_tuning`); the record of
    :func:`run_trial` plus ``finished`` (the study's finished trials after it)."""
    study = open_study(settings, ctx["study"], ctx["direction"], ctx["seed"])
    rec = run_trial(settings, study, method=ctx["method"], target=ctx["target"],
                    steps=ctx["steps"], seed=ctx["seed"], source=ctx["source"],
                    objective=ctx["objective"], parent_run=ctx["mlflow_run_id"],
                    batch_size=ctx["batch_size"], mirror_eye=ctx.get("mirror_eye"), log=log)
    rec["finished"] = len(finished_trials(study))
    shown = "pruned" if rec["value"] is None else f"{ctx['metric']} {rec['value']:.4g}"
    log(f"trial {rec['number']} (finished: {rec['finished']}): {shown}  "
        + " ".join(f"{k}={v:.3g}" for k, v in rec["params"].items()))
    return rec


def close_tuning(settings: Settings, ctx: dict[str, Any]) -> dict[str, Any]:
    """The study's summary, its optimisation-history plot and the best trial, logged to
    the parent run (which is then ended)."""
    from analysis.plots import tuning_history
    from synthloop import tracking

    study = open_study(settings, ctx["study"], ctx["direction"], ctx["seed"])
    res = summary(study, ctx["objective"])
    name, parent, metric = ctx["study"], ctx["mlflow_run_id"], ctx["metric"]
    png = settings.outputs_dir / f"tuning-{name}.png"
    out = {**res, "mlflow_run_id": parent, "plot": str(png),
           "storage": redact(settings.optuna_storage)}
    unchanged = len(res["trials"]) == ctx["finished"]
    if unchanged and tracking.run_status(parent) == "FINISHED" and png.is_file():
        return out  # nothing ran since the study was last closed: its run already has this
    tuning_history(res["trials"], ctx["direction"], png, ylabel=f"{metric} (objective)",
                   title=f"{name}: {ctx['method']}, {ctx['steps']} steps")
    tracking.log_artifact_to(parent, png, "plots")
    tracking.log_dict_to(parent, res, "study.json")
    if res["best"]:
        tracking.log_metrics_to(parent, {f"best_{metric}": res["best"]["value"],
                                         "n_trials": len(res["trials"])})
        tracking.set_tag(parent, "best_trial", str(res["best"]["number"]))
        tracking.set_tag(parent, "best_params", json.dumps(res["best"]["params"]))
    tracking.end_run(parent, "FINISHED")
    return out


def tune_gaze(settings: Settings, *, method: str, target: str, trials: int, steps: int,
              seed: int = 0, source: str | None = None, n_source: int = 20_000,
              objective: str | None = None, batch_size: int = 64, mirror_eye: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study until it holds ``trials`` finished trials (the CLI's path; the
    Prefect flow calls the same three steps as tasks); returns :func:`close_tuning`'s
    result."""
    if trials < 1:
        from synthloop.errors import UsageError

        raise UsageError("trials must be positive")
    ctx = open_tuning(settings, method=method, target=target, steps=steps, seed=seed,
                      source=source, n_source=n_source, objective=objective,
                      batch_size=batch_size, mirror_eye=mirror_eye, log=log)
    finished = ctx["finished"]
    while finished < trials:
        finished = tuning_trial(settings, ctx, log=log)["finished"]
    return close_tuning(settings, ctx)

