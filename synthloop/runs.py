"""One MLflow run around one training job, the skeleton every task's ``train`` uses:

    with TrainingRun(settings, "gaze", "dann-s0", tags=..., params=...) as run:
        run.log_dict(manifest, "source_manifest.json")
        run.log_artifact(sample_grid_png, "samples")
        result = run.train(cfg, source, target, out, val_source=..., val_target=...)
        run.log_checkpoints(out)
        if register:
            version = run.register(predictor, example, serving_files(out))
            promoted = run.promote(version, "source_nme_crop_best", score, ...)

The run is opened in the task's experiment (:func:`synthloop.tracking.configure`),
tagged and given its parameters at once; training reports every logged record through
:class:`~synthloop.tracking.MetricLogger` (and ``on_metrics``, e.g. an Optuna trial's
pruning hook); the training time, throughput and learning curves are logged after it.
An exception inside the block ends the run as FAILED, as ``mlflow.start_run`` does.

Also here: the claim a training output folder carries (:func:`claim_output_dir`), so a
rerun on other data into the same folder is refused instead of resumed, and the files a
registered model carries (:func:`serving_files`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthloop import tracking
from synthloop.errors import DataFormatError, UsageError
from synthloop.settings import Settings

__all__ = ["DATA_RECORD", "TrainedRun", "TrainingRun", "check_output_dir", "claim_output_dir",
           "fingerprint", "serving_files"]

DATA_RECORD = "data.json"


@dataclass(frozen=True)
class TrainedRun:
    """What a training job leaves: its MLflow run, checkpoint folder, registered model
    version (None when not registered), whether it became the champion, final metrics."""

    run_id: str
    checkpoint_dir: Path
    model_uri: str | None
    model_version: str | None
    promoted: bool
    metrics: dict[str, float]


def fingerprint(items: Iterable[Any]) -> str:
    """A short content hash of a list of names or paths."""
    return hashlib.sha256("\n".join(map(str, items)).encode()).hexdigest()[:16]


def claim_output_dir(out: Path, data: dict[str, Any]) -> None:
    """A checkpoint folder belongs to one training data set (``data``: source batch,
    target, real labels...). Training resumes from ``last.pt`` when it exists, so a rerun
    on other data into the same folder would silently continue (or just re-register) the
    old run: refuse it instead."""
    rec = out / DATA_RECORD
    before = check_output_dir(out)
    if before is not None:
        if before != data:
            diff = sorted(k for k in data if before.get(k) != data[k])
            raise UsageError(f"{out}: holds a run trained on other data ({', '.join(diff)} "
                             "differ); use a new --out")
        return
    if any(out.glob("*.pt")):
        raise UsageError(f"{out}: holds checkpoints of unknown provenance; use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    rec.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_output_dir(out: str | Path) -> dict[str, Any] | None:
    """The data record of checkpoint folder ``out`` (None when it has none): read before
    any work, so a damaged one fails at once, as a DataFormatError naming it."""
    rec = Path(out) / DATA_RECORD
    if not rec.is_file():
        return None
    try:
        before = json.loads(rec.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(rec, f"not valid JSON ({e}); delete the folder or use a new --out") from None
    if not isinstance(before, dict):
        raise DataFormatError(rec, "not a training data record (a JSON object expected); delete "
                                   "the folder or use a new --out")
    return before


def serving_files(out: str | Path, *also: str) -> list[Path]:
    """What a registered model carries so synthloop can load it without unpickling: the
    checkpoint the serving model was built from (``best.pt``, else ``last.pt``) and the
    files named in ``also`` that exist in ``out``."""
    from models.checkpoint import resolve_checkpoint

    out = Path(out)
    return [resolve_checkpoint(out), *(out / name for name in also if (out / name).is_file())]


def final_metrics(result: Any) -> dict[str, float]:
    """The numbers of a :class:`~models.train.TrainResult`'s last record."""
    return {k: float(v) for k, v in (result.final_metrics or {}).items()
            if isinstance(v, int | float)}


class TrainingRun:
    """The MLflow run of one training job (module docstring).

    Args:
        task: the experiment and registered model (``synthloop-<task>``).
        run_name: the run's name in the MLflow UI.
        tags, params: set on the run when it opens (params flattened: ``a.b``).
        on_metrics: called with every logged training record, after MLflow.
        curves_title: the learning-curve plot's title.
        log: where training progress goes (:mod:`synthloop.progress`); None: nowhere.
    """

    def __init__(self, settings: Settings, task: str, run_name: str, *, tags: dict[str, str],
                 params: dict[str, Any], curves_title: str,
                 on_metrics: Callable[[int, dict[str, float]], None] | None = None,
                 log: Callable[[str], None] | None = None):
        self.settings, self.task, self.run_name = settings, task, run_name
        self.tags, self.params, self.curves_title = tags, params, curves_title
        self.on_metrics = on_metrics
        self.log = log
        self.run_id = ""
        self._ctx: Any = None

    def __enter__(self) -> TrainingRun:
        import mlflow

        tracking.configure(self.settings.tracking_uri, self.task, self.settings.artifact_root)
        self._ctx = mlflow.start_run(run_name=self.run_name)
        self.run_id = self._ctx.__enter__().info.run_id
        mlflow.set_tags(self.tags)
        mlflow.log_params(tracking.flat_params(self.params))
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._ctx.__exit__(*exc)

    # ----------------------------------------------------------------- logging

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        tracking.log_json(obj, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        tracking.log_file(path, artifact_path)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics(metrics)

    def set_tag(self, key: str, value: str) -> None:
        import mlflow

        mlflow.set_tag(key, value)

    def log_checkpoints(self, out: str | Path, names: Iterable[str] = ("best.pt", "last.pt")) -> None:
        """The checkpoint files that exist in ``out``, under ``checkpoint/``."""
        for name in names:
            if (Path(out) / name).is_file():
                self.log_artifact(Path(out) / name, "checkpoint")

    # ----------------------------------------------------------------- training

    def _callback(self) -> Callable[[int, dict[str, float]], None]:
        log = tracking.MetricLogger(self.run_id)
        if self.on_metrics is None:
            return log
        extra = self.on_metrics

        def both(step: int, metrics: dict[str, float]) -> None:
            log(step, metrics)
            extra(step, metrics)

        return both

    def train(self, cfg: Any, source: Any, target: Any, out: str | Path, **kwargs: Any) -> Any:
        """:func:`models.train.train` reporting into this run; then the training time,
        throughput and learning curves. Returns its TrainResult."""
        from analysis.plots import learning_curves
        from models.train import train
        from synthloop.progress import chain, images_per_step, training_progress

        shown = None
        if self.log is not None:
            shown = training_progress(self.log, cfg.steps, images_per_step(cfg), self.run_name)
        t0 = time.perf_counter()
        result = train(cfg, source, target, out, callback=chain(self._callback(), shown), **kwargs)
        self.log_metrics({"train_seconds": time.perf_counter() - t0,
                          "samples_per_s": float(result.samples_per_s)})
        curves = learning_curves(result.history,
                                 self.settings.outputs_dir / f"curves-{self.run_id}.png",
                                 title=self.curves_title)
        self.log_artifact(curves, "plots")
        return result

    # ----------------------------------------------------------------- registry

    def register(self, predictor: Any, example: Any, files: Iterable[str | Path]) -> tuple[str, str]:
        """Log the serving model with an input example, carrying ``files`` (its checkpoint:
        :func:`serving_files`), and register a new version of ``synthloop-<task>``;
        returns ``(model uri, version)``."""
        return tracking.log_model_and_register(predictor, example, self.task, self.run_id,
                                               list(files))

    def promote(self, version: str, metric: str, score: float, *, higher_is_better: bool,
                comparable_on: dict[str, str]) -> bool:
        """Log ``metric`` and move the champion alias to ``version`` if it beats the
        champion on it (:func:`synthloop.tracking.maybe_promote`); the decision is tagged."""
        self.log_metrics({metric: score})
        decision = tracking.maybe_promote(self.task, version, metric, score,
                                          higher_is_better=higher_is_better,
                                          comparable_on=comparable_on)
        self.set_tag("champion_decision", json.dumps(decision, default=str))
        return bool(decision.get("promoted"))
