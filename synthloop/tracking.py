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

**Artifacts are addressed through the tracking server, even without one.** On the
embedded (SQLite) store a task's experiment is created with the artifact location
``mlflow-artifacts:/<name>``, the form a server-created experiment has: the ``synthloop
ui`` server proxies exactly the project home's ``mlartifacts/``, so a run created through
it (by a worker on another machine too) uploads over HTTP into
``<home>/mlartifacts/<name>/``. A synthloop process that opens the SQLite file itself
resolves the same URIs to the same folder directly (:func:`_proxied_artifacts_repository`,
registered for that scheme in synthloop's own processes only), so local commands need
no server and the location is never switched back and forth: switching it to ``file://``
while a server runs on the store would make runs created through the server write to
the disk of whichever machine created them, and switching it under a running local
command would break that command's next run. Experiments created by an older synthloop
with ``file://<home>/mlartifacts/<name>`` (the same folder) are moved to
``mlflow-artifacts:/<name>`` when ``synthloop ui`` starts the server
(:func:`move_artifacts_behind_server`); their old runs keep their own ``file://``
artifact URIs, which the server and local commands still read. Only the embedded store is
rewritten: a tracking server or a PostgreSQL store is never touched. Outside synthloop
(``mlflow models serve``, a notebook), read such artifacts through the server
(``MLFLOW_TRACKING_URI`` = the ``SYNTHLOOP_MLFLOW_URI`` that ``synthloop ui`` prints).

Pure code never imports this: training reports through a callback (``MetricLogger``).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

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
    home's ``mlartifacts/``, the folder ``synthloop ui``'s server proxies: module
    docstring). A tracking server decides that itself. The store's first use and the
    experiment's creation happen under :func:`synthloop.locks.first_use_lock`."""
    import mlflow

    with first_use_lock(tracking_uri):
        _connect(tracking_uri, artifact_root=artifact_root)
        exp = _task_experiment(experiment_name(task), tracking_uri, artifact_root)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        # what the experiment is, for MLflow tools that read it; the 3.17 UI does not (its
        # mode is the browser's: synthloop.mlflow_links)
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def connect(tracking_uri: str, *, create: bool = True,
            artifact_root: str | Path | None = None) -> None:
    """Point MLflow's tracking and registry at ``tracking_uri``; a local database store
    is opened (and its schema created, the first time) under :func:`synthloop.locks.first_use_lock`.
    ``create=False`` (readers): a local database that does not exist yet is left alone.
    ``artifact_root``: the folder a SQLite store's ``mlflow-artifacts:`` URIs name (module
    docstring); the project's own store needs none."""
    db = sqlite_path(tracking_uri)
    if not create and db is not None and not db.is_file():
        _connect(tracking_uri, open_store=False, artifact_root=artifact_root)
        return
    with first_use_lock(tracking_uri):
        _connect(tracking_uri, artifact_root=artifact_root)


def _connect(tracking_uri: str, open_store: bool = True,
             artifact_root: str | Path | None = None) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    _serve_proxied_artifacts_locally(tracking_uri, artifact_root)
    if open_store and sqlite_path(tracking_uri) is not None:
        # opening the store is what creates the tables: do it now, inside the caller's lock
        mlflow.MlflowClient().search_experiments(max_results=1)


def _task_experiment(name: str, tracking_uri: str, artifact_root: str | Path | None) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    if artifact_root is not None and not tracking_uri.startswith("http") \
            and mlflow.get_experiment_by_name(name) is None:
        if sqlite_path(tracking_uri) is not None:  # the embedded store: module docstring
            location = f"{PROXIED_SCHEME}:/{name}"
        else:  # a database server's store: no proxy of ours in front of it
            location = (Path(artifact_root).resolve() / name).as_uri()
        try:
            mlflow.create_experiment(name, artifact_location=location)
        except MlflowException as e:  # created meanwhile by a process the lock does not see
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return mlflow.set_experiment(name)


# --- artifacts of the embedded store (module docstring): one address, two ways to it

PROXIED_SCHEME = "mlflow-artifacts"
_artifact_roots: dict[Path, Path] = {}  # SQLite file -> the folder the server proxies for it


def proxied_location(location: str, artifact_root: str | Path) -> str | None:
    """``mlflow-artifacts:/<rel>`` for a ``file://`` location inside ``artifact_root``
    (the same folder, as the ``synthloop ui`` server addresses it); None for any other."""
    parsed = urlparse(location)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    root = Path(artifact_root).resolve()
    path = Path(url2pathname(parsed.path)).resolve()
    if path == root or not path.is_relative_to(root):
        return None
    return f"{PROXIED_SCHEME}:/{path.relative_to(root).as_posix()}"


def local_artifact_uri(artifact_uri: str, tracking_uri: str) -> str | None:
    """The ``file://`` URI of the folder that ``mlflow-artifacts:/<rel>`` names on the
    embedded store ``tracking_uri`` (what its server's ``--artifacts-destination`` makes
    of it); None where that is not known: another scheme, a URI naming a host, a store
    that is not a SQLite file whose artifact folder synthloop was told."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != PROXIED_SCHEME or parsed.netloc:
        return None
    db = sqlite_path(tracking_uri)
    root = _artifact_root_of(db) if db is not None else None
    rel = PurePosixPath(parsed.path.lstrip("/"))
    if root is None or ".." in rel.parts:
        return None
    return (root / rel).as_uri() if rel.parts else root.as_uri()


def _artifact_root_of(db: Path) -> Path | None:
    db = db.resolve()
    if db in _artifact_roots:
        return _artifact_roots[db]
    from synthloop.settings import get_settings

    s = get_settings()  # a reader (connect) of the project's own store
    own = sqlite_path(s.tracking_uri)
    return s.artifact_root if own is not None and own.resolve() == db else None


def _proxied_artifacts_repository(artifact_uri: str, tracking_uri: str | None = None,
                                  registry_uri: str | None = None) -> Any:
    """MLflow's factory for ``mlflow-artifacts:`` URIs in synthloop's processes: on the
    embedded store, the folder itself; anywhere else, MLflow's own (HTTP to the server)."""
    import mlflow
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    local = local_artifact_uri(artifact_uri, tracking_uri or mlflow.get_tracking_uri())
    if local is None:
        return MlflowArtifactsRepository(artifact_uri, tracking_uri=tracking_uri,
                                         registry_uri=registry_uri)
    return LocalArtifactRepository(local, tracking_uri=tracking_uri, registry_uri=registry_uri)


def _serve_proxied_artifacts_locally(tracking_uri: str, artifact_root: str | Path | None) -> None:
    db = sqlite_path(tracking_uri)
    if db is None:
        return
    if artifact_root is not None:
        _artifact_roots[db.resolve()] = Path(artifact_root).resolve()
    # the scheme registry MLflow's plugins extend; this process only (the server, a
    # separate process, keeps its own proxy)
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    _artifact_repository_registry.register(PROXIED_SCHEME, _proxied_artifacts_repository)


def move_artifacts_behind_server(tracking_uri: str, artifact_root: str | Path) -> list[str]:
    """Give the embedded store's experiments whose artifact location is a folder inside
    ``artifact_root`` the ``mlflow-artifacts:`` address of that folder, before a server
    proxying ``artifact_root`` starts on the store; returns their names. Runs keep the
    artifact URIs they have. Any other store, or one without tables yet, is left alone."""
    db = sqlite_path(tracking_uri)
    if db is None or not db.is_file():
        return []
    moved = []
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=rw", uri=True, timeout=60)
    try:
        with con:  # one transaction: commits the updates, or none of them
            try:
                rows = con.execute("SELECT experiment_id, name, artifact_location FROM experiments")
                rows = rows.fetchall()
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):  # a store MLflow has not set up yet
                    return []
                raise
            for eid, name, location in rows:
                new = proxied_location(location or "", artifact_root)
                if new is not None:
                    con.execute("UPDATE experiments SET artifact_location = ? "
                                "WHERE experiment_id = ? AND artifact_location = ?",
                                (new, eid, location))
                    moved.append(name)
    finally:
        con.close()
    return moved


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


#: what MLflow prints to stderr, below its loggers' levels, while it registers a version;
#: our commands say which version they registered in their own words
_REGISTRY_CHATTER = ("Successfully registered model ", "Created version ",
                     "already exists. Creating a new version of this model")


_CHATTER_LOCK = threading.Lock()


@contextmanager
def _registry_chatter_off() -> Iterator[None]:
    """Drop MLflow's registration messages from stderr and pass every other line on (a
    warning stays a warning). Kept whole when MLflow's logger is at INFO or below
    (``MLFLOW_LOGGING_LEVEL=INFO``). Switching MLflow's own logging stream off did not
    silence them (MLflow 3.x, measured), so stderr is what is filtered; stderr is one per
    process, hence the lock: two registrations in two threads must not nest their swaps
    (the later restore would leave stderr pointing at the other's buffer)."""
    import io
    import sys
    from contextlib import redirect_stderr

    if logging.getLogger("mlflow").getEffectiveLevel() <= logging.INFO:
        yield
        return
    buffer = io.StringIO()
    with _CHATTER_LOCK:
        try:
            with redirect_stderr(buffer):
                yield
        finally:
            kept = [line for line in buffer.getvalue().splitlines(keepends=True)
                    if not any(part in line for part in _REGISTRY_CHATTER)]
            sys.stderr.write("".join(kept))


def log_model_and_register(predictor, example, task: str, run_id: str,
                           checkpoint_files: Sequence[str | Path]) -> tuple[str, str]:
    """Log the serving model with an input example and signature, carrying
    ``checkpoint_files`` (the checkpoint ``predictor`` was built from, and the files beside
    it that rebuild it) in its ``extra_files/``, and register a new version. Returns
    (model uri, version).

    The flavour is ``pt2`` (module docstring); a model torch.export cannot trace falls
    back to ``pickle``, which synthloop never loads either (the run's ``serving_format``
    tag says which). What the predictor's ``serving_notes()`` says a caller must do beyond
    the signature (a gaze model trained with one eye side mirrored) becomes the version's
    description and tags."""
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
        with _registry_chatter_off():
            info = mlflow.pytorch.log_model(predictor, serialization_format=fmt, **kw)
    except Exception as e:  # noqa: BLE001  torch.export fails in many ways on untraceable models
        fmt = "pickle"
        log.warning("torch.export cannot trace %s (%s); logging the serving model as pickle",
                    type(predictor).__name__, first_line(e))
        with _registry_chatter_off():
            info = mlflow.pytorch.log_model(predictor, serialization_format=fmt, **kw)
    client = MlflowClient()
    client.set_tag(run_id, SERVING_FORMAT_TAG, fmt)
    version = str(info.registered_model_version)
    notes = dict(getattr(predictor, "serving_notes", dict)())
    if "description" in notes:  # the registry page shows it above everything else
        client.update_model_version(kw["registered_model_name"], version,
                                    description=notes.pop("description"))
    for key, value in notes.items():
        client.set_model_version_tag(kw["registered_model_name"], version, key, value)
    return info.model_uri, version


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
    client.set_model_version_tag(name, version, "champion_decision", decision_text(decision))
    return decision


def decision_text(decision: dict[str, Any]) -> str:
    """The champion decision in one sentence for the registry page, e.g. ``made champion:
    better than the champion (real_error_analysis_deg 11.2 vs 11.9 of version 3)``."""
    head = "made champion" if decision["promoted"] else "not champion"
    text = f"{head}: {decision.get('reason', '')}"
    new, old = decision.get("new"), decision.get("champion_value")
    if isinstance(new, int | float) and isinstance(old, int | float):
        text += (f" ({decision['metric']} {new:.4g} vs {old:.4g} of version "
                 f"{decision['champion_version']})")
    return text


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


def register_in_run(run_id: str, predictor, example, task: str,
                    checkpoint_files: Sequence[str | Path]) -> tuple[str, str]:
    """:func:`log_model_and_register` into an existing run (a loop's round, already
    ended): the run is reopened for the logging and ends with the status it had."""
    import mlflow

    status = run_status(run_id)
    with mlflow.start_run(run_id=run_id):
        uri_version = log_model_and_register(predictor, example, task, run_id, checkpoint_files)
    if status != "RUNNING":
        end_run(run_id, status)
    return uri_version
