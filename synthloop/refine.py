"""Refine a synthetic batch toward unlabeled real images (SimGAN, or the mean patch): a
batch transform with lineage, what ``synthloop refine`` and the ``refine-batch`` flow run.

    parent batch (accepted or not yet validated; never a quarantined one)
      + unlabeled real images (the task reads them; labels, if any, are ignored)
      -> refiner: made here (``method``: SimGAN trained, models.simgan, or the mean patch
         fitted, models.mean_patch; synthloop.refine_methods) or reused (``refiner=``)
      -> label probe: a frozen model trained on the *unrefined* parent (tasks whose labels
         need one: gaze), which validation re-runs on both batches; for a patch (a
         refiner that does not read the image) instead two fresh probes, on the unrefined
         and on the refined eyes, whose held-out errors validation compares (learnability)
      -> child batch: every image refined, the parent's labels, metadata, distribution and
         extra files unchanged; the manifest names the parent and the refiner; the refiner
         and the probe ride inside the batch (``refiner/``), checksummed like the shards
      -> Great Expectations: the parent's suites + the label-preservation suite
      -> catalog row (child of the parent), MLflow run (losses, before/after grid, refiner)

The child is written atomically like any batch; a failed check quarantines it in place.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expectations.refined import LEARNABILITY_FILE, PROBE_FILE
from synthloop.errors import DataFormatError, UsageError
from synthloop.refine_methods import DEFAULT_POSE_COLUMN, REFINE_METHODS
from synthloop.settings import Settings

if TYPE_CHECKING:
    from synth.shard_jobs import ShardMap

__all__ = ["LEARNABILITY_FILE", "PROBE_FILE", "REFINER_FILE", "RefineRequest", "RefinedBatch", "Verdict",
           "record_verdict", "validate_refined", "write_refined_batch"]

REFINER_FILE = "refiner/refiner.pt"
#: below this mean change (gray levels) a refined batch is reported as nearly its parent:
#: a SimGAN refiner's output drifts from step to step, and can end near the identity
NEARLY_UNCHANGED = 0.5


@dataclass(frozen=True)
class RefineRequest:
    batch: str
    real: str
    out: str
    refiner: str | None = None  # a refiner.pt to reuse instead of training one
    steps: int = 1000
    self_reg: float = 10.0
    width: int = 32
    blocks: int = 4
    batch_size: int = 32
    pretrain_discriminator: int = 200  # the paper's discriminator pre-training steps
    bf16: bool = False  # bf16 autocast + channels_last while training the refiner
    ema: float | None = None  # keep a weight average of the refiner (decay per update)
    # weight per degree of a frozen label probe's answer moving while the refiner trains
    # (models.simgan_losses.label_consistency_loss); 0: pixels only. A probe of its own
    # (seed + 1), so validation's probe is not the function the refiner was fitted to
    consistency: float = 0.0
    probe_steps: int = 400
    seed: int = 0
    device: str = "cpu"
    overwrite: bool = False
    real_indices: tuple[int, ...] | list[int] | None = None  # only these real images (the
    # loop's analysis part); None: all of them
    method: str = "simgan"  # how the refiner is made (synthloop.refine_methods)
    strength: float | None = None  # the patches: how far toward the real mean (None: the
    # method's own default, synthloop.refine_methods)
    pose_column: str = DEFAULT_POSE_COLUMN  # pose-mean-patch: the real eyes' head yaw (deg)
    mirror_eye: str | None = None  # eyes: that side of the real eyes mirrored onto the other's
    # first (as the models trained on the batch will see them)
    landmarker: str | None = None  # landmark-patch: the landmark model that places the real
    # faces' 68 points (the real faces are unlabeled here)

    def __post_init__(self) -> None:
        """An unknown method, or a setting of the other method (which would be silently
        ignored), is refused here, before anything is read."""
        if self.method not in REFINE_METHODS:
            raise UsageError(f"refine method must be one of {', '.join(REFINE_METHODS)}, got "
                             f"{self.method!r}")
        method = REFINE_METHODS[self.method]
        others = {name for m in REFINE_METHODS.values() for name in m.reads} - set(method.reads)
        changed = [f.name for f in dataclasses.fields(self)
                   if f.name in others and getattr(self, f.name) != f.default]
        if changed:
            owners: dict[tuple[str, ...], list[str]] = {}  # the methods that read them
            for n in changed:
                owners.setdefault(tuple(k for k, m in REFINE_METHODS.items() if n in m.reads),
                                  []).append(_option(n))
            head = (f"--method {self.method} does not read these:" if method.trains
                    else f"--method {self.method} trains nothing; these are")
            raise UsageError(f"{head} " + "; ".join(f"{_and(o)} settings: {', '.join(opts)}"
                                                    for o, opts in owners.items())
                             + f" (add --method {next(iter(owners))[0]} or leave them out)")
        if self.mirror_eye not in (None, "L", "R"):
            raise UsageError(f"--mirror-eye must be L or R, got {self.mirror_eye!r}")


_OPTION = {"pretrain_discriminator": "pretrain_steps"}  # command-line names that differ


@dataclass(frozen=True)
class _Reused:
    """The record of a reused refiner: its kind and its own config (nothing trained)."""

    model: str
    config: dict[str, Any]
    steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"reused": self.model, **self.config}


def _and(names: tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def _option(field: str) -> str:
    return "--" + _OPTION.get(field, field).replace("_", "-")


@dataclass(frozen=True)
class RefinedBatch:
    """A refined batch on disk (validated or not yet) and the MLflow run that made it."""

    batch_id: str
    path: Path
    parent_id: str
    run_id: str
    seconds: dict[str, float]
    mean_change: float  # mean |refined - parent| in gray levels


def _picked(values, path: str, indices):
    """``values`` at ``indices`` (the real images a request names), all where None."""
    import numpy as np

    if indices is None:
        return values
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= len(values):
        raise UsageError(f"{path}: real_indices must pick some of its {len(values)} images")
    return values[idx]


def _real_images(spec, path: str, shape: tuple[int, ...], indices=None, mirror_eye=None):
    if mirror_eye is not None and not spec.mirrors_eye_sides:
        raise UsageError(f"--mirror-eye (one eye side mirrored onto the other's) applies to eye "
                         f"patches, not to {spec.samples}")
    images = _picked(spec.refine_target_images(path, mirror_eye), path, indices)
    if tuple(images.shape[1:]) != tuple(shape):
        raise DataFormatError(Path(path), f"images are {tuple(images.shape[1:])}, the batch's are "
                              f"{tuple(shape)}: a refiner keeps the size, so they must match")
    return images


def write_refined_batch(settings: Settings, req: RefineRequest,
                        log: Callable[[str], None] = print,
                        map_shards: ShardMap | None = None) -> RefinedBatch:
    """Train (or load) the refiner and write the refined batch into ``req.out``, inside
    one MLflow run (module docstring). Raises before anything is written when the parent,
    the real folder or a reused refiner is unusable. The refiner runs shard by shard
    (:func:`models.refine_shards.refine_shard`) through ``map_shards``: in this process by
    default, or fanned out (a Dask cluster) with the same bytes. Validation is the caller's
    next step (:func:`synthloop.refine.validate_refined`, or the flow's GX task)."""
    from models.checkpoint import save_checkpoint
    from models.refiners import reads_image_content
    from models.simgan import load_refiner
    from synth.shards import open_for_training, sha256_file
    from synthloop.refine_methods import FitContext
    from synthloop.taskspec import get_task

    t0 = time.perf_counter()
    out = Path(req.out)
    if out.exists() and not req.overwrite:
        raise UsageError(f"{out}: already exists (choose another --out or pass --overwrite)")
    parent = open_for_training(req.batch, allow_unvalidated=True)
    spec = get_task(parent.task)
    real = _real_images(spec, req.real, parent.image_shape, req.real_indices, req.mirror_eye)
    channels = 1 if len(parent.image_shape) == 2 else parent.image_shape[-1]
    reused = load_refiner(req.refiner, channels) if req.refiner else None
    method = REFINE_METHODS[req.method]
    # a reused refiner is recorded as what it is, not as the request's method would make one
    cfg = method.config(req) if reused is None else _Reused(reused.model_name, reused.config)
    log(f"parent {parent.batch_id}: {parent.n:,} {spec.samples} at {parent.path}; "
        f"{len(real):,} real images from {req.real}"
        + (f", the {req.mirror_eye} eyes mirrored" if req.mirror_eye else ""))
    seconds: dict[str, float] = {}

    def real_head_yaw(column: str):
        return _picked(spec.refine_target_head_yaw(req.real, column, req.mirror_eye),
                       req.real, req.real_indices)

    def real_points(landmarker: str):
        return spec.refine_target_points(real, landmarker)

    with _RefineRun(settings, parent, req, cfg) as run:
        if reused is None:
            refiner = method.fit(FitContext(req, spec, parent, real, settings.outputs_dir, log,
                                            lambda steps: run.on_log(log, steps), seconds,
                                            real_head_yaw, real_points), cfg)
        else:
            refiner = reused
            log(f"reusing refiner {req.refiner}")
        condition = _condition(spec, parent, refiner)  # before the label probe's minutes
        work = Path(tempfile.mkdtemp(prefix="refine-", dir=settings.outputs_dir))
        try:
            refiner_path = save_checkpoint(work / "refiner.pt", refiner.cpu(), None, None,
                                           cfg.steps, cfg.to_dict(), model_name=refiner.model_name)
            t = time.perf_counter()
            probe = spec.label_probe(parent, work / "probe", seed=req.seed, steps=req.probe_steps,
                                     log=log)
            seconds["label_probe"] = time.perf_counter() - t
            learnability = None
            if not reads_image_content(refiner):  # a patch: can the labels still be learned?
                t = time.perf_counter()
                learnability = spec.label_learnability(parent, refiner, condition, work / "learn",
                                                       seed=req.seed, steps=req.probe_steps, log=log)
                seconds["label_learnability"] = time.perf_counter() - t
            lineage = {"parent": {"batch_id": parent.batch_id,
                                  "path": str(parent.path.resolve()),
                                  "manifest_sha256": sha256_file(parent.path / "manifest.json")},
                       "refiner": {"file": REFINER_FILE, "mlflow_run_id": run.run_id,
                                   "reused_from": str(Path(req.refiner).resolve()) if req.refiner else None,
                                   "config": cfg.to_dict(), "real": str(Path(req.real).resolve()),
                                   "real_n": int(len(real)),
                                   **({"real_mirror_eye": req.mirror_eye} if req.mirror_eye else {}),
                                   "label_probe": PROBE_FILE if probe else None,
                                   **({"label_learnability": LEARNABILITY_FILE}
                                      if learnability else {})}}
            t = time.perf_counter()
            batch_id, change = _write_child(parent, out, lineage, refiner_path, probe, req,
                                            map_shards or _in_process, condition,
                                            learnability)
            seconds["refine"] = time.perf_counter() - t  # refining and writing the shards
            log(f"refined {parent.n:,} {spec.samples} in {seconds['refine']:.1f} s "
                f"({parent.n / max(seconds['refine'], 1e-9):,.0f} img/s); mean change "
                f"{change:.2f} gray levels")
            if change < NEARLY_UNCHANGED:
                log(f"warning: the refiner left the images nearly unchanged (mean change "
                    f"{change:.2f} < {NEARLY_UNCHANGED} gray levels): the refined batch is close "
                    f"to its parent; {REFINE_METHODS[req.method].unchanged_hint}")
            first = _first_images(out, 64)
            run.log_grid(spec.refine_preview(parent, first, real, work / "refined-samples.png"))
            seconds["total"] = time.perf_counter() - t0
            run.wrote(batch_id, out, seconds, refiner_path, change)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {batch_id} ({parent.n:,} refined {spec.samples}) to {out}")
    return RefinedBatch(batch_id, out, parent.batch_id, run.run_id, seconds, change)


@dataclass(frozen=True)
class Verdict:
    status: str  # accepted | quarantined
    failing: list[str]
    label_shift: dict[str, Any]  # the label check's column, mean, p95, max


def validate_refined(batch: RefinedBatch) -> Verdict:
    """GX on the refined batch (the parent's suites + label preservation), its status
    written, its catalog row (a child of the parent), the verdict on its MLflow run: what
    the command line runs after :func:`write_refined_batch` (the flow runs the same steps
    as tasks)."""
    from expectations.validate import record_outcome, validate_batch
    from synthloop.lineage import open_catalog, record_batch

    report = validate_batch(batch.path)
    status = record_outcome(batch.path, report)
    record_batch(open_catalog(), batch.path)
    shift = report.statistics.get("label_preservation", {})
    record_verdict(batch.run_id, status, list(report.failing), shift)
    return Verdict(status, list(report.failing), shift)


def record_verdict(run_id: str, status: str, failing: list[str],
                   label_shift: dict[str, Any]) -> None:
    """The validation verdict of a refined batch on the MLflow run that made it."""
    from synthloop import tracking

    tracking.set_tag(run_id, "refined_batch_status", status)
    tracking.log_metrics_to(run_id, {f"label_shift_{k}": float(v) for k, v in label_shift.items()
                                     if isinstance(v, (int, float))})
    tracking.log_dict_to(run_id, {"status": status, "failing": failing,
                                  "label_preservation": label_shift}, "validation.json")


def _in_process(fn, jobs):
    return map(fn, jobs)


def _condition(spec, parent, refiner):
    """What ``refiner`` reads per image of ``parent`` (the task says where it lives), or None."""
    from models.refiners import conditioned_on

    name = conditioned_on(refiner)
    return None if name is None else spec.refine_condition(parent, name)


def _write_child(parent, out: Path, lineage: dict[str, Any], refiner_path: Path,
                 probe: Path | None, req: RefineRequest, map_shards: ShardMap,
                 condition=None, learnability: Path | None = None) -> tuple[str, float]:
    """Refine every shard of ``parent`` into a new batch at ``out``; its id and the mean
    absolute change in gray levels. ``condition``: the metadata column a conditioned
    refiner reads, one value per parent image (each job gets its shard's)."""
    from models.refine_shards import RefineShardJob, refine_shard
    from synth.refined_writer import RefinedBatchWriter
    from synth.shard_jobs import adopt_rendered
    from synth.shard_layout import shard_span
    from synth.shards import sha256_file

    files = {REFINER_FILE: refiner_path, **({PROBE_FILE: probe} if probe else {}),
             **({LEARNABILITY_FILE: learnability} if learnability else {})}
    meta = parent.metadata.drop(columns=["sample"])
    refiner_sha = sha256_file(refiner_path)
    generator = {**parent.manifest["generator"],
                 "refined_from": parent.batch_id, "refiner_sha256": refiner_sha}
    total = {"abs_change": 0.0, "pixels": 0}

    def adopt(shard) -> None:
        start, stop = shard_span(shard.index, w.shard_size, parent.n)
        w.adopt_shard(shard.index, shard.entry, shard.image_shape, meta.iloc[start:stop])
        for k in total:
            total[k] += shard.stats[k]

    with RefinedBatchWriter(out, parent=parent, files=files, generator=generator,
                            lineage=lineage, overwrite=req.overwrite) as w:
        jobs = [RefineShardJob(str(w.tmp.resolve()), str(parent.path.resolve()), e["sha256"],
                               str(refiner_path.resolve()), refiner_sha, i, req.device,
                               None if condition is None
                               else condition[slice(*shard_span(i, w.shard_size, parent.n))])
                for i, e in enumerate(parent.manifest["shards"])]
        adopt_rendered(map_shards, refine_shard, jobs, adopt)
    return w.batch_id, total["abs_change"] / max(total["pixels"], 1)


def _first_images(batch: Path, k: int):
    """The first ``k`` images of a batch just written (for its preview grid)."""
    import numpy as np

    from synth.shards import BatchReader

    reader = BatchReader(batch, verify=False)
    return reader.images(np.arange(min(k, reader.n)))


class _RefineRun:
    """The MLflow run of one refinement (experiment ``synthloop-refine``)."""

    def __init__(self, settings: Settings, parent, req: RefineRequest, cfg):
        self.settings, self.parent, self.req, self.cfg = settings, parent, req, cfg
        self.run_id = ""
        self._ctx: Any = None

    def __enter__(self) -> _RefineRun:
        import mlflow

        from synthloop import tracking

        tracking.configure(self.settings.tracking_uri, "refine", self.settings.artifact_root)
        self._ctx = mlflow.start_run(run_name=f"refine-{self.parent.batch_id}")
        self.run_id = self._ctx.__enter__().info.run_id
        mlflow.set_tags({"task": self.parent.task, "parent_batch": self.parent.batch_id,
                         "real": str(Path(self.req.real).resolve()),
                         "refiner_reused": str(bool(self.req.refiner))})
        mlflow.log_params(tracking.flat_params({
            **self.cfg.to_dict(), "parent_n": self.parent.n, "probe_steps": self.req.probe_steps,
            **({"real_mirror_eye": self.req.mirror_eye} if self.req.mirror_eye else {})}))
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._ctx.__exit__(*exc)

    def on_log(self, log: Callable[[str], None], steps: int):
        from synthloop.tracking import MetricLogger

        metrics = MetricLogger(self.run_id)

        def report(rec: dict[str, float]) -> None:
            step = int(rec["step"])
            metrics(step, {k: v for k, v in rec.items() if k != "step"})
            keep = (f", consistency {rec['loss_consistency']:.4f}"
                    if "loss_consistency" in rec else "")
            log(f"refiner step {step}/{steps}: adversarial {rec['loss_refiner_adv']:.3f}, "
                f"self-regularisation {rec['loss_self_reg']:.4f}{keep}, discriminator "
                f"{rec['loss_discriminator']:.3f} (right on real {rec['d_acc_real']:.0%}, "
                f"on refined {rec['d_acc_refined']:.0%})")
        return report

    def log_grid(self, png: Path) -> None:
        from synthloop import tracking

        tracking.log_file(png, "samples")

    def wrote(self, batch_id: str, out: Path, seconds: dict[str, float], refiner_path: Path,
              change: float) -> None:
        import mlflow

        from synthloop import tracking

        mlflow.set_tags({"refined_batch": batch_id, "refined_batch_path": str(out.resolve())})
        mlflow.log_metrics({**{f"seconds_{k}": v for k, v in seconds.items()},
                            "mean_abs_change": change})
        tracking.log_file(refiner_path, "refiner")
