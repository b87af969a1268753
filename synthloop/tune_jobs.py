"""Hyper-parameter tuning of gaze training with Optuna: one study per (method, source
batch, target, budget), stored in ``<home>/optuna.db`` (or ``SYNTHLOOP_OPTUNA_URL``, e.g.
PostgreSQL, so several workers can share a study), one MLflow run per trial nested under
one parent run per study.

Trials use Optuna's ask/tell interface, so each trial is a self-contained call
(:func:`run_trial`) that a Prefect task can wrap, and an interrupted study continues:
``tune_gaze(..., trials=N)`` runs trials until the study holds ``N`` finished
(complete or pruned) ones; a trial killed mid-way stays ``RUNNING`` and is not counted.

**The objective.** Tuning an unsupervised domain-adaptation method needs a score of
the target; three kinds are offered (``OBJECTIVES``):

* ``target_error``: mean angular error on the target's held-out part, with its labels.
  The default where the target has labels (``labels.csv``): the usual protocol is a
  small labeled real validation set. The labels are only scored, never trained on, and
  the trained model still selects its checkpoint label-free.
* ``source_error``: error on a fixed synthetic validation batch (says nothing about the
  target; a sanity baseline).
* ``entropy``, ``im``, ``snd``: the label-free selection scores of
  :data:`models.train.SELECTORS` on target images. Known to be unreliable across
  hyper-parameters (Musgrave et al. 2021, "Unsupervised Domain Adaptation: A Reality
  Check"): use them when no labels exist at all, and look at the trials.

The value of a trial is the objective at its last evaluation (the model the budget
gives); intermediate evaluations are reported so that the median pruner can stop
trials that are worse than the median of earlier trials at the same step.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloop.settings import Settings

#: Search space per method: parameter -> (kind, low, high); ``log`` = log-uniform.
SEARCH_SPACES: dict[str, dict[str, tuple[str, float, float]]] = {
    "source_only": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1)},
    "dann": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
             "trade_off": ("log", 0.05, 3.0), "grl_alpha": ("float", 2.0, 20.0)},
    "daln": {"lr": ("log", 3e-4, 1e-2), "weight_decay": ("log", 1e-4, 0.1),
             "trade_off": ("log", 0.05, 3.0)},
}

#: objective -> (metric key in the evaluation record, direction)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "target_error": ("target_angular_error_deg", "minimize"),
    "source_error": ("source_angular_error_deg", "minimize"),
    "entropy": ("target_entropy", "minimize"),
    "im": ("target_im", "maximize"),
    "snd": ("target_snd", "maximize"),
}


def default_objective(eyes) -> str:
    """``target_error`` where the target eyes (:class:`realdata.eyes.EyeImages`) carry
    labels, else ``entropy``."""
    return "target_error" if eyes.pitchyaw is not None else "entropy"


def suggest(trial, method: str) -> dict[str, float]:
    """The trial's training overrides, drawn from :data:`SEARCH_SPACES`."""
    if method not in SEARCH_SPACES:
        raise ValueError(f"no search space for method {method!r}; known: {', '.join(SEARCH_SPACES)}")
    out = {}
    for name, (kind, lo, hi) in SEARCH_SPACES[method].items():
        out[name] = trial.suggest_float(name, lo, hi, log=(kind == "log"))
    return out


def study_name(method: str, source_batch: str, target_fingerprint: str, steps: int,
               objective: str, seed: int, batch_size: int = 64) -> str:
    """Same method, source batch, target *content*, budget, objective, seed and batch
    size: the same study (so it resumes, and workers on other machines, where the path
    differs, join it)."""
    key = json.dumps([method, source_batch, target_fingerprint, steps, objective, seed,
                      batch_size])
    return f"gaze-{method}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def target_fingerprint(eyes) -> str:
    """Content hash of target eyes (:class:`realdata.eyes.EyeImages`): images and labels."""
    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(eyes.images).tobytes())
    if eyes.pitchyaw is not None:
        h.update(np.ascontiguousarray(eyes.pitchyaw).tobytes())
    return h.hexdigest()[:16]


def _shared(storage: str) -> bool:
    """A server database: other workers may be running trials of the same study."""
    return not storage.startswith("sqlite")


def open_study(settings: Settings, name: str, direction: str, seed: int):
    """Create or load the study.

    Sampler seed: on the local SQLite storage, derived from the seed and the number of
    trials already in the study, so a study resumed in a new process neither replays
    its random start-up trials nor differs from an uninterrupted one; a trial left
    ``RUNNING`` there belongs to a killed process (one machine, one study at a time) and
    is marked ``FAIL``, since TPE would otherwise keep treating it as pending. On a
    shared server database the sampler is not seeded (two workers opening the study at
    the same trial count would draw the same parameters) and running trials are left
    alone: they may be other workers' live ones. Reproducible studies: one worker, SQLite."""
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = settings.optuna_storage
    probe = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                load_if_exists=True)
    if probe.direction.name.lower() != direction:
        raise ValueError(f"study {name} in {redact(storage)} optimises "
                         f"{probe.direction.name.lower()}, not {direction}")
    shared = _shared(storage)
    if not shared:
        for t in probe.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            probe.tell(t.number, state=optuna.trial.TrialState.FAIL)
    sampler_seed = None if shared else int(
        np.random.SeedSequence([seed, len(probe.trials)]).generate_state(1)[0])
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=4)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def redact(url: str) -> str:
    """A storage URL for output: the password hidden."""
    from catalog.engine import redact as _redact

    return _redact(url)


DIVERGED = "diverged"  # user attribute of a trial whose objective became NaN or infinite


def finished_trials(study) -> list:
    """Trials that count toward ``trials``: complete, pruned, or failed by diverging (not
    those failed by an error or a kill, which are re-run)."""
    import optuna

    states = optuna.trial.TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (states.COMPLETE, states.PRUNED)
            or (t.state == states.FAIL and t.user_attrs.get(DIVERGED))]


class _Diverged(Exception):
    pass


def run_trial(settings: Settings, study, *, method: str, target: str, steps: int, seed: int,
              source: str, objective: str, parent_run: str | None, batch_size: int = 64,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ask the study for one trial, train it (an MLflow run nested under ``parent_run``)
    with intermediate reports, tell the study, and return the trial's record."""
    import mlflow
    import optuna

    from synthloop import tracking
    from synthloop.gaze_jobs import train_gaze

    metric, _ = OBJECTIVES[objective]
    trial = study.ask()
    params = suggest(trial, method)
    out = settings.root / "tuning" / study.study_name / f"trial-{trial.number:04d}"
    if out.exists():  # the trial was just created: a folder there is a stale one (a reset
        shutil.rmtree(out)  # storage), whose last.pt training would try to resume
    seen: dict[str, Any] = {"run_id": None, "last": None}

    def report(step: int, metrics: dict[str, float]) -> None:
        run = mlflow.active_run()
        seen["run_id"] = run.info.run_id if run else seen["run_id"]
        value = metrics.get(metric)
        if value is None:
            return  # a log-only record (no evaluation at this step)
        if not math.isfinite(value):
            raise _Diverged(f"{metric} is {value} at step {step}")
        seen["last"] = float(value)
        trial.report(float(value), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"{metric} {value:.4g} at step {step}")

    tags = {"optuna_study": study.study_name, "optuna_trial": str(trial.number)}
    if parent_run:
        tags[tracking.PARENT_TAG] = parent_run
    state, value = "COMPLETE", None
    try:
        train_gaze(settings, method=method, target=target, steps=steps, seed=seed, out=str(out),
                   source=source, batch_size=batch_size, register=False,
                   run_name=f"trial-{trial.number}", log=log,
                   train_overrides={**params, "eval_every": max(1, steps // 5)},
                   tags=tags, on_metrics=report, score_target_labels=(objective == "target_error"))
        value = seen["last"]
        if value is None:
            raise RuntimeError(f"trial {trial.number}: no evaluation reported {metric!r}")
        study.tell(trial, value)
    except _Diverged as e:
        state = "FAIL"
        trial.set_user_attr(DIVERGED, str(e))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if seen["run_id"]:
            tracking.set_tag(seen["run_id"], "optuna_state", "DIVERGED")
        log(f"trial {trial.number} diverged ({e}): counted as a failed trial")
    except optuna.TrialPruned as e:
        state = "PRUNED"
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if seen["run_id"]:  # the run context ended it as FAILED: it was stopped on purpose
            tracking.end_run(seen["run_id"], "KILLED")
            tracking.set_tag(seen["run_id"], "optuna_state", "PRUNED")
        log(f"trial {trial.number} pruned: {e}")
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    if seen["run_id"] and state == "COMPLETE":
        tracking.set_tag(seen["run_id"], "optuna_state", state)
        tracking.log_metrics_to(seen["run_id"], {f"objective_{metric}": value})
    return {"number": trial.number, "state": state, "value": value, "params": params,
            "mlflow_run_id": seen["run_id"]}


def summary(study, objective: str) -> dict[str, Any]:
    """JSON-able: every finished trial and the best one."""
    import optuna

    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
              for t in finished_trials(study)]
    best = None
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params}
    metric, direction = OBJECTIVES[objective]
    return {"study": study.study_name, "objective": objective, "metric": metric,
            "direction": direction, "trials": trials, "best": best}


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
                batch_size: int = 64, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check the arguments and the target (before anything is made), make (or find) the
    source batch, the study and its MLflow parent run. Returns the study's context
    (small, JSON-able: it crosses task boundaries): ``study``, ``mlflow_run_id``,
    ``source``, ``objective``, ``metric``, ``direction``, ``finished`` (trials already
    finished) and the arguments the trials need."""
    from synthloop.errors import DataFormatError
    from synthloop.gaze_jobs import load_target, prepare_source

    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive")
    if method not in SEARCH_SPACES:
        raise ValueError(f"no search space for method {method!r}; known: {', '.join(SEARCH_SPACES)}")
    if objective is not None and objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    eyes = load_target(target)  # a missing or malformed folder fails here, naming the file
    objective = objective or default_objective(eyes)
    if objective == "target_error" and eyes.pitchyaw is None:
        raise DataFormatError(Path(target), "objective target_error needs labels.csv (labeled "
                              "target eyes); use a label-free objective (entropy, im, snd)")
    reader = prepare_source(settings, source=source, n=n_source, seed=seed, log=log)
    metric, direction = OBJECTIVES[objective]
    name = study_name(method, reader.batch_id, target_fingerprint(eyes), steps, objective, seed,
                      batch_size)
    study = open_study(settings, name, direction, seed)
    parent = _parent_run(settings, name, {
        "method": method, "source_batch": reader.batch_id, "target": str(Path(target).resolve()),
        "target_fingerprint": target_fingerprint(eyes), "steps": steps, "seed": seed,
        "batch_size": batch_size, "objective": objective, "metric": metric,
        "direction": direction, "storage": redact(settings.optuna_storage),
        "search_space": json.dumps(SEARCH_SPACES[method])})
    done = len(finished_trials(study))
    if done:
        log(f"study {name}: {done} trial(s) already finished")
    return {"study": name, "mlflow_run_id": parent, "source": str(reader.path),
            "objective": objective, "metric": metric, "direction": direction, "finished": done,
            "method": method, "target": target, "steps": steps, "seed": seed,
            "batch_size": batch_size}


def tuning_trial(settings: Settings, ctx: dict[str, Any], *,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """One more trial of the study ``ctx`` names (:func:`open_tuning`); the record of
    :func:`run_trial` plus ``finished`` (the study's finished trials after it)."""
    study = open_study(settings, ctx["study"], ctx["direction"], ctx["seed"])
    rec = run_trial(settings, study, method=ctx["method"], target=ctx["target"],
                    steps=ctx["steps"], seed=ctx["seed"], source=ctx["source"],
                    objective=ctx["objective"], parent_run=ctx["mlflow_run_id"],
                    batch_size=ctx["batch_size"], log=log)
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
              objective: str | None = None, batch_size: int = 64,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study until it holds ``trials`` finished trials (the CLI's path; the
    Prefect flow calls the same three steps as tasks); returns :func:`close_tuning`'s
    result."""
    if trials < 1:
        raise ValueError("trials must be positive")
    ctx = open_tuning(settings, method=method, target=target, steps=steps, seed=seed,
                      source=source, n_source=n_source, objective=objective,
                      batch_size=batch_size, log=log)
    finished = ctx["finished"]
    while finished < trials:
        finished = tuning_trial(settings, ctx, log=log)["finished"]
    return close_tuning(settings, ctx)
