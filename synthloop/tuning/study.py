"""The Optuna study of a tuning run and its trials: create or resume it, run one trial
(ask, train in its own MLflow run, tell), summarise it."""

from __future__ import annotations

import math
import os
import shutil
import socket
from collections.abc import Callable
from typing import Any

from synthloop.errors import UsageError
from synthloop.settings import Settings
from synthloop.tuning.space import OBJECTIVES, suggest

__all__ = ["DIVERGED", "WORKER_ATTR", "finished_trials", "open_study", "redact", "run_trial", "summary"]


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
    from synthloop.locks import first_use_lock

    storage = settings.optuna_storage
    with first_use_lock(storage):  # Optuna's schema creation races on a fresh SQLite file
        probe = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                    load_if_exists=True)
    if probe.direction.name.lower() != direction:
        raise UsageError(f"study {name} in {redact(storage)} optimises "
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


WORKER_ATTR = "worker"  # user attribute: host:pid of the process that ran the trial
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
              mirror_eye: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ask the study for one trial, train it (an MLflow run nested under ``parent_run``)
    with intermediate reports, tell the study, and return the trial's record."""
    import mlflow
    import optuna

    from synthloop import tracking
    from synthloop.gaze.train import train_gaze

    metric, _ = OBJECTIVES[objective]
    trial = study.ask()
    # which process ran it: several workers share a study on a server database
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
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
                   tags=tags, on_metrics=report, score_target_labels=(objective == "target_error"),
                   mirror_eye=mirror_eye)
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

