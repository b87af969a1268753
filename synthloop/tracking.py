"""MLflow for synthloop: one experiment per task, runs with params, per-step metrics and
artifacts, models registered with a signature, and the ``champion`` alias moved only when
a new model beats it on the validation metric the run declares.

**Models are loaded from our checkpoint, never unpickled.** A registered model carries the
run's self-describing checkpoint (:mod:`models.checkpoint`, plus the landmark layout and
label-transfer files) in its ``extra_files/``; :func:`synthloop.model_refs.load_model_reference` downloads what
a ``models:/``, ``runs:/`` or ``scheme://`` reference names and hands that folder to a
weights-only loader. The MLflow flavour beside it is ``pt2`` (torch.export: MLflow loads it
without pickle, so ``mlflow models serve`` works with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION
=false``); synthloop itself never loads it. A model without our checkpoint (logged by
someone else, or crafted) is refused.

**First use of a local database store is serialised** between processes (a file lock next
to the SQLite file): MLflow creates its schema on first use, and two processes doing that
at once fail with "table ... already exists".

Pure code never imports this: training reports through a callback (``MetricLogger``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realdata.errors import first_line
from synthloop.locks import first_use_lock, sqlite_path

log = logging.getLogger(__name__)

CHAMPION = "champion"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_name(task: str) -> str:
    return f"synthloop-{task}"


def registered_model_name(task: str) -> str:
    return f"synthloop-{task}"


def configure(tracking_uri: str, task: str, artifact_root: str | Path | None = None) -> str:
    """Point MLflow at the store and select (creating if needed) the task's experiment.

    With a local database store, MLflow would put artifacts in ``./mlruns`` of whatever
    folder the first run happened to start in; ``artifact_root`` pins them (the project
    home's ``mlartifacts/``). A tracking server decides that itself. The store's first
    use and the experiment's creation happen under :func:`synthloop.locks.first_use_lock`."""
    import mlflow

    with first_use_lock(tracking_uri):
        _connect(tracking_uri)
        exp = _task_experiment(experiment_name(task), tracking_uri, artifact_root)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        # MLflow 3's UI opens experiments in its GenAI view unless told otherwise
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def connect(tracking_uri: str, *, create: bool = True) -> None:
    """Point MLflow's tracking and registry at ``tracking_uri``; a local database store
    is opened (and its schema created, the first time) under :func:`synthloop.locks.first_use_lock`.
    ``create=False`` (readers): a local database that does not exist yet is left alone."""
    db = sqlite_path(tracking_uri)
    if not create and db is not None and not db.is_file():
        _connect(tracking_uri, open_store=False)
        return
    with first_use_lock(tracking_uri):
        _connect(tracking_uri)


def _connect(tracking_uri: str, open_store: bool = True) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if open_store and sqlite_path(tracking_uri) is not None:
        # opening the store is what creates the tables: do it now, inside the caller's lock
        mlflow.MlflowClient().search_experiments(max_results=1)


def _task_experiment(name: str, tracking_uri: str, artifact_root: str | Path | None) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    if artifact_root is not None and not tracking_uri.startswith("http") \
            and mlflow.get_experiment_by_name(name) is None:
        root = Path(artifact_root).resolve() / name
        try:
            mlflow.create_experiment(name, artifact_location=root.as_uri())
        except MlflowException as e:  # created meanwhile by a process the lock does not see
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return mlflow.set_experiment(name)


class MetricLogger:
    """A training callback that batches metrics into MLflow (one write per call, not per
    metric), skipping non-finite values, which MLflow rejects."""

    def __init__(self, run_id: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.run_id = run_id

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, int | float) and math.isfinite(float(v))]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch, synchronous=True)


def flat_params(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


MODEL_FILES_DIR = "extra_files"  # where log_model(extra_files=...) puts them in the model
RUN_CHECKPOINT_DIR = "checkpoint"  # where TrainingRun.log_checkpoints puts them in the run
SERVING_FORMAT_TAG = "serving_format"


def log_model_and_register(predictor, example, task: str, run_id: str,
                           checkpoint_files: Sequence[str | Path]) -> tuple[str, str]:
    """Log the serving model with an input example and signature, carrying
    ``checkpoint_files`` (the checkpoint ``predictor`` was built from, and the files beside
    it that rebuild it) in its ``extra_files/``, and register a new version. Returns
    (model uri, version).

    The flavour is ``pt2`` (module docstring); a model torch.export cannot trace falls
    back to ``pickle``, which synthloop never loads either (the run's ``serving_format``
    tag says which)."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    files = [str(Path(f)) for f in checkpoint_files]
    from models.checkpoint import BEST, LAST

    if not any(Path(f).name in (BEST, LAST) for f in files):
        raise ValueError(f"checkpoint_files must include {BEST} or {LAST}, got {files}")
    predictor.eval()
    if len(example) < 2:  # torch.export fixes a batch of 1 as a constant: serve any batch
        example = torch.cat([example, example])
    with torch.no_grad():
        out = predictor(example).numpy()
    kw = dict(name="model", input_example=example.numpy(), signature=infer_signature(example.numpy(), out),
              registered_model_name=registered_model_name(task), pip_requirements=["torch==2.13.0"],
              extra_files=files)
    fmt = "pt2"
    try:
        info = mlflow.pytorch.log_model(predictor, serialization_format=fmt, **kw)
    except Exception as e:  # noqa: BLE001  torch.export fails in many ways on untraceable models
        fmt = "pickle"
        log.warning("torch.export cannot trace %s (%s); logging the serving model as pickle",
                    type(predictor).__name__, first_line(e))
        info = mlflow.pytorch.log_model(predictor, serialization_format=fmt, **kw)
    MlflowClient().set_tag(run_id, SERVING_FORMAT_TAG, fmt)
    return info.model_uri, str(info.registered_model_version)


def maybe_promote(task: str, version: str, metric: str, value: float, higher_is_better: bool,
                  comparable_on: dict[str, str] | None = None) -> dict:
    """Move the champion alias to ``version`` if it beats the current champion on ``metric``
    (the validation this run declared), or if there is no champion yet.

    A score is only comparable with the champion's when the runs agree on every tag in
    ``comparable_on`` (the target data, the selection metric): an entropy measured on an
    easier target is not "better". Incomparable champions are left in place, and the
    decision, with its reason, is tagged on the new model version."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = registered_model_name(task)
    decision: dict[str, Any] = {"metric": metric, "new": value, "champion_version": None,
                                "champion_value": None, "promoted": False}
    try:
        champ = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champ = None
    if not math.isfinite(value):
        decision["reason"] = "new score is not finite"
    elif champ is None:
        decision.update(promoted=True, reason="no champion yet")
    else:
        decision["champion_version"] = champ.version
        run = client.get_run(champ.run_id) if champ.run_id else None
        tags = run.data.tags if run else {}
        mismatch = [k for k, v in (comparable_on or {}).items() if tags.get(k) != v]
        champ_value = run.data.metrics.get(metric) if run else None
        decision["champion_value"] = champ_value
        if mismatch:
            decision["reason"] = f"not comparable with the champion ({', '.join(mismatch)} differ)"
        elif champ_value is None:
            decision["reason"] = f"champion has no {metric}"
        elif (value > champ_value) if higher_is_better else (value < champ_value):
            decision.update(promoted=True, reason="better than the champion")
        else:
            decision["reason"] = "not better than the champion"
    if decision["promoted"]:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "validation", json.dumps(decision, default=str))
    return decision


def log_json(obj: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(obj if isinstance(obj, dict | list) else json.loads(json.dumps(obj, default=str)),
                    artifact_file)


def log_file(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


# --- explicit-run helpers: the loop keeps a parent run open across rounds (and across a
# resume in another process), so it addresses runs by id instead of MLflow's thread-local
# "active run".

PARENT_TAG = "mlflow.parentRunId"  # how the MLflow UI nests child runs under a parent


def create_run(task: str, name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
    """A new RUNNING run in the task's experiment (call :func:`configure` first)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    exp = mlflow.get_experiment_by_name(experiment_name(task))
    if exp is None:
        raise RuntimeError(f"experiment {experiment_name(task)!r} missing: call configure() first")
    all_tags = {"mlflow.runName": name, **tags}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    return MlflowClient().create_run(exp.experiment_id, tags=all_tags, run_name=name).info.run_id


def log_params_to(run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    have = client.get_run(run_id).data.params
    # a resumed loop logs the same params again: MLflow rejects changed values, and
    # unchanged ones need not be sent
    todo = [Param(k, v) for k, v in flat_params(params).items() if have.get(k) != v]
    if todo:
        client.log_batch(run_id, params=todo, synchronous=True)


def set_tag(run_id: str, key: str, value: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_tag(run_id, key, value)


def log_metrics_to(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    MetricLogger(run_id)(step, metrics)


def log_artifact_to(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().log_artifact(run_id, str(path), artifact_path)


def log_dict_to(run_id: str, obj: Any, artifact_file: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().log_dict(run_id, json.loads(json.dumps(obj, default=str)), artifact_file)


def run_status(run_id: str) -> str:
    """``RUNNING``, ``FINISHED``, ``FAILED``, ``KILLED`` or ``SCHEDULED``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient().get_run(run_id).info.status


def end_run(run_id: str, status: str = "FINISHED") -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_terminated(run_id, status=status)
