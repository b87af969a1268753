"""Validate one batch folder with Great Expectations 1.x and record accepted / quarantined.

Two suites per task (the manifest's ``task`` picks them), stored as JSON beside this
module (``suites/``) and reviewed like code:

- ``eye_batch.samples`` (task ``gaze``) on :func:`expectations.frame.sample_frame` (one
  row per sample): schema, dtypes, labels not null and inside the support, every factor
  inside its support, row count = the manifest's n, no duplicated images, no blank,
  saturated or noise-like images; and bounds that are physics, not the batch's own
  distribution: gaze and head pose within what a camera can see, pixel means in 0..255,
  fractions in [0, 1].
- ``face_batch.samples`` (task ``landmarks``) on
  :func:`expectations.face_frame.face_sample_frame`: the same kinds of checks for head
  pose and the 41 face factors, plus the landmark labels: visible 68 points inside the
  crop, visible points finite, dense visibility consistent with the crop, visibility
  ratio per sample and per batch, label counts matching the metadata.
- ``eye_batch.coverage`` / ``face_batch.coverage`` on
  :func:`expectations.frame.coverage_frame` (one row per factor): the samples match the
  distribution the manifest names, and every factor of it is one the task renders.

Beside the suites, the batch's distribution is checked against the physical limits of
its task's factors (``synth.eye_distribution.EYE_TASK``, ``FACE_TASK``): generate refuses
such a distribution, so only a batch made some other way can fail here.

Bounds that depend on the batch (supports, n, the number of factors) are GX suite
parameters: the JSON says ``{"$PARAMETER": "min_gaze_pitch"}`` and
:func:`suite_parameters` computes the values from the batch, passed as
``ValidationDefinition.run(expectation_parameters=...)``.

``validate_batch`` writes ``validation/result.json`` and (``docs=True``) Data Docs HTML
under the batch's ``validation/gx/`` (a GX file context rooted at ``validation/``). It
never writes the status: :func:`record_outcome` does, so a caller can validate inside a
transaction and commit the outcome once. Quarantined batches stay where they are;
``synth.shards.open_for_training`` refuses them.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expectations.frame import coverage_frame, float32_tolerance, sample_frame
from expectations.refined import (
    LEARNABILITY_FILE,
    LabelCheckUnavailable,
    face_structure_frame,
    gaze_label_shift_frame,
    label_check_summary,
    learnability_frame,
)
from realdata.errors import DataFormatError
from synth.eye_distribution import ABSENT_MEANS_OFF, EYE_TASK
from synth.face_distribution import FACE_TASK
from synth.factor_limits import TaskFactors
from synth.output_folder import name_lock
from synth.shards import MANIFEST, BatchReader, atomic_write_text, write_status


def _face_sample_frame(reader: BatchReader) -> pd.DataFrame:
    """Imported on use: the face frame reads labels through the face pipeline (torch,
    numba: ~1.5 s to import), which eye validation does not need."""
    from expectations.face_frame import face_sample_frame

    return face_sample_frame(reader)


SAMPLES_SUITE = "eye_batch.samples"
COVERAGE_SUITE = "eye_batch.coverage"
FACE_SAMPLES_SUITE = "face_batch.samples"
FACE_COVERAGE_SUITE = "face_batch.coverage"


def _no_extra_parameters(reader: BatchReader) -> dict[str, Any]:
    return {}


def _factors_absent_from_older_eyes(reader: BatchReader) -> dict[str, Any]:
    """Bounds for eye factors that a distribution saved before them lacks: the generator
    holds them at their "off" value, so that value is the support."""
    names = set(reader.distribution.factor_names)
    return {f"{side}_{name}": float(value) for name, value in ABSENT_MEANS_OFF.items()
            if name not in names for side in ("min", "max")}


def _crop_bounds(reader: BatchReader) -> dict[str, Any]:
    """The last pixel centre of the crop (width - 1, height - 1): the bound of visible
    68-point landmarks."""
    if len(reader.image_shape) < 2:
        return {}
    return {"max_landmark_x_px": float(reader.image_shape[1] - 1),
            "max_landmark_y_px": float(reader.image_shape[0] - 1)}


@dataclass(frozen=True)
class TaskSuites:
    """A task's validation: its per-sample suite and the frame that suite reads, its
    coverage suite, and the suite parameters only that task has."""

    samples: str
    coverage: str
    frame: Any  # BatchReader -> per-sample DataFrame
    factors: TaskFactors  # what the task renders, and each factor's physical limits
    parameters: Any = _no_extra_parameters  # BatchReader -> {name: value}
    refined: str | None = None  # the label-preservation suite of a refined batch
    refined_frame: Any = None  # BatchReader -> per-sample DataFrame (expectations.refined)
    learnability: str | None = None  # ... of a batch refined by a patch that carries a
    learnability_frame: Any = None  # learnability table (expectations.refined)


#: the task registry of the validation layer: a manifest's ``task`` picks its suites
TASK_SUITES = {
    "gaze": TaskSuites(SAMPLES_SUITE, COVERAGE_SUITE, sample_frame, EYE_TASK,
                       _factors_absent_from_older_eyes, "refined_eyes.labels",
                       gaze_label_shift_frame, "refined_eyes.learnability", learnability_frame),
    "landmarks": TaskSuites(FACE_SAMPLES_SUITE, FACE_COVERAGE_SUITE, _face_sample_frame,
                            FACE_TASK, _crop_bounds, "refined_faces.labels", face_structure_frame),
}
COVERAGE_SUITES = frozenset(v.coverage for v in TASK_SUITES.values())
RESULT_FILE = "validation/result.json"
SUITES_DIR = Path(__file__).resolve().parent / "suites"
GX_ROOT = "validation"  # the GX file context lives in validation/gx/

#: Smallest chi-square p-value a factor may have before the batch is quarantined.
#:
#: Every batch runs one test per factor (35 for the default eye distribution, 41 for the
#: face one) and a clean batch must pass all of them, so the per-test level is divided
#: among the tests (Bonferroni): at 1e-6 a clean batch fails with probability about
#: 35 * 1e-6 = 3.5e-5 (faces: 4.1e-5),
#: one false quarantine in ~30,000 batches (cost: one regenerated batch). The chi-square
#: approximation is loosest in the far tail with small expected bin counts (n = 512 puts
#: 3.9 samples in the smallest noise_sigma bin), so this was measured: 10^6 simulated clean
#: batches (multinomial bin counts, exactly the law of the histogram) fail at a rate of
#: 5.7e-5 for n = 512, 4.6e-5 for n = 4096 and 4.3e-5 for n = 50,000, i.e. about one in
#: 20,000 batches. Tiny batches are worse (n = 64: 5e-4), still negligible for a loop.
#: Power, same simulation, gaze_pitch: all mass moved to its upper half gives p ~ 1e-99 at
#: n = 512; doubling the upper half's weight fails 84 % of n = 512 batches and all n = 4096
#: ones; a 25 % change fails 71 % of n = 4096 batches and every n = 50,000 one.
MIN_COVERAGE_P_VALUE = 1e-6

#: How far refinement may move a frozen gaze probe's answer (deg): on average, and for
#: 95 % of the eyes. See docs/refinement.md for what refiners that keep the labels measure.
MAX_MEAN_LABEL_SHIFT_DEG = 2.0
MAX_P95_LABEL_SHIFT_DEG = 5.0
#: How much worse a patched batch may teach its gaze labels: a fresh probe's mean error on
#: the held-out eyes when trained on the refined eyes, over the same when trained on the
#: unrefined ones, minus 1. 20,000 level-head eyes patched per head pose cost 6% (+0.51
#: and +0.47 deg at strengths 0.5 and 1, on 8.64); the same eyes with their pixels
#: shuffled in each patch cost 68% (+5.90). The bound sits ~3.4x from each
#: (docs/refinement.md); relative, because a short probe on a small batch errs more.
MAX_MEAN_RELATIVE_ERROR_EXCESS = 0.2
#: How much of the image structure around the 68 points a refined face must keep (mean
#: normalised cross-correlation of gradient windows; 1 = unchanged): on average, and for
#: 95 % of the faces.
MIN_MEAN_STRUCTURE_NCC = 0.8
MIN_STRUCTURE_NCC = 0.6

#: Per-sample results list at most this many offending values (result.json stays small).
PARTIAL_UNEXPECTED = 20

#: Images GX copies into every Data Docs site that none of its pages show.
_UNUSED_DOCS_ASSETS = ("glossary_scroller.gif", "validation_failed_unexpected_values.gif",
                       "iterative-dev-loop.png")

_GX_LOCK = threading.Lock()  # gx.get_context() sets process-global state


@dataclass(frozen=True)
class ValidationReport:
    batch_id: str
    success: bool
    #: Human-readable names of what failed, e.g. ``expect_column_values_to_not_be_null(pitch)``
    #: or ``coverage: p_value(gaze_pitch)=3e-12 < 1e-06``.
    failing: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    result_path: Path | None = None
    docs_path: Path | None = None


def load_suite_json(name: str) -> dict[str, Any]:
    """The suite as stored in the repo (``expectations/suites/<name>.json``)."""
    return json.loads((SUITES_DIR / f"{name}.json").read_text())


def suite_parameter_names(suite: dict[str, Any]) -> set[str]:
    return {v["$PARAMETER"] for e in suite["expectations"] for v in e.get("kwargs", {}).values()
            if isinstance(v, dict) and "$PARAMETER" in v}


def suite_parameters(reader: BatchReader) -> dict[str, Any]:
    """Values for the suites' ``$PARAMETER`` placeholders, all taken from the batch itself.

    ``min_<factor>`` / ``max_<factor>``: the support of each factor of the batch's
    distribution, widened by one float32 ulp so that a table written in float32 (by an
    older writer or another tool) cannot fail on a value rounded across an edge; the
    generator itself stores factor values in float64.

    Face batches add ``max_landmark_x_px`` / ``max_landmark_y_px``: the last pixel
    centre of the crop (width - 1, height - 1), the bound of visible 68-point landmarks.
    """
    dist = reader.distribution
    params: dict[str, Any] = {
        "n_samples": int(reader.n),
        "n_factors": len(dist.factors),
        "min_coverage_p_value": MIN_COVERAGE_P_VALUE,
        "max_mean_label_shift_deg": MAX_MEAN_LABEL_SHIFT_DEG,
        "max_p95_label_shift_deg": MAX_P95_LABEL_SHIFT_DEG,
        "max_mean_relative_error_excess": MAX_MEAN_RELATIVE_ERROR_EXCESS,
        "min_mean_structure_ncc": MIN_MEAN_STRUCTURE_NCC,
        "min_structure_ncc": MIN_STRUCTURE_NCC,
    }
    for f in dist.factors:
        lo, hi = f.support
        params[f"min_{f.name}"] = float(lo - float32_tolerance(lo))
        params[f"max_{f.name}"] = float(hi + float32_tolerance(hi))
    params.update(suites_for(reader).parameters(reader))
    return params


def suites_for(reader: BatchReader) -> TaskSuites:
    """The suites of the batch's task."""
    try:
        return TASK_SUITES[reader.task]
    except KeyError:
        raise DataFormatError(reader.path / MANIFEST, f"task {reader.task!r} has no validation "
                              f"suites (known: {', '.join(sorted(TASK_SUITES))})") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _expectation_name(cfg: Any) -> str:
    col = cfg.kwargs.get("column")
    return f"{cfg.type}({col})" if col else cfg.type


def _error(r: Any) -> str:
    """``: error: <message>`` when GX raised while evaluating the expectation, else ``""``.
    GX gives either one exception dict or one per failed metric."""
    info = r.exception_info if isinstance(r.exception_info, dict) else {}
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    msgs = [i.get("exception_message") for i in infos if i.get("raised_exception")]
    return f": error: {msgs[0]}" if msgs else ""


def _failing_samples(result: Any) -> list[str]:
    return [_expectation_name(r.expectation_config) + _error(r) for r in result.results if not r.success]


def _failing_with_values(result: Any) -> list[str]:
    """Failures with what was measured: ``...(label_shift_deg): observed 3.1`` or
    ``...: 7.5% of rows outside``."""
    out = []
    for r in result.results:
        if r.success:
            continue
        res = r.result or {}
        if "observed_value" in res:
            seen = f": observed {res['observed_value']:.3g}"
        elif "unexpected_percent" in res:
            seen = f": {res['unexpected_percent']:.1f}% of rows outside"
        else:
            seen = ""
        out.append(_expectation_name(r.expectation_config) + seen + _error(r))
    return out


def _failing_coverage(result: Any, cov: pd.DataFrame, p_min: float) -> list[str]:
    """Coverage failures name the factor and the number: ``coverage: p_value(f)=3e-12 < 1e-06``."""
    out = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        col = cfg.kwargs.get("column")
        err = _error(r)
        if not err and cfg.type == "expect_column_values_to_be_in_set":
            out.append(_outside_set(r, cfg))
            continue
        if err or cfg.type != "expect_column_values_to_be_between":
            out.append(f"coverage: {_expectation_name(cfg)}{err}")
            continue
        # The rows GX flagged (unexpected_index_list names the factor of each).
        rows = r.result.get("unexpected_index_list") or []
        flagged = {row["factor"] for row in rows if isinstance(row, dict) and "factor" in row}
        lo, hi = cfg.kwargs.get("min_value"), cfg.kwargs.get("max_value")
        for _, row in cov[cov["factor"].isin(flagged)].iterrows():
            v, where = row[col], f"{col}({row['factor']})"
            if col == "p_value":
                out.append(f"coverage: {where}={v:.3g} < {p_min:.3g}")
            elif hi is not None and v > hi:
                out.append(f"coverage: {where}={v:g} > {hi:g}")
            elif lo is not None and v < lo:
                out.append(f"coverage: {where}={v:g} < {lo:g}")
            else:
                out.append(f"coverage: {where}={v}")
        if not flagged:
            out.append(f"coverage: {_expectation_name(cfg)}")
    return out


def _outside_set(r: Any, cfg: Any) -> str:
    """``coverage: factor 'moon_phase' is not in the suite's set (...)``: the values, named."""
    values = sorted({str(v) for v in (r.result.get("unexpected_list") or [])})
    listed = ", ".join(repr(v) for v in values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")
    return f"coverage: {cfg.kwargs.get('column')} {listed} not in the suite's set ({_expectation_name(cfg)})"


def _gx_context(root: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if root is None:
        ctx = gx.get_context(mode="ephemeral")
    else:
        ctx = gx.get_context(mode="file", project_root_dir=str(root))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _run_gx(suites: dict[str, dict[str, Any]], frames: dict[str, pd.DataFrame],
            params: dict[str, Any], docs_root: Path | None) -> tuple[dict[str, Any], Path | None]:
    """Validate each frame against its suite (by name); returns the results and the docs index."""
    import great_expectations as gx

    with _GX_LOCK:
        ctx = _gx_context(docs_root)
        ds = ctx.data_sources.add_pandas("batch")
        results = {}
        for suite_name, df in frames.items():
            asset = ds.add_dataframe_asset(suite_name.replace(".", "_"))
            bd = asset.add_batch_definition_whole_dataframe("all_rows")
            suite = ctx.suites.add(gx.ExpectationSuite(**suites[suite_name]))
            vd = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=suite_name, data=bd, suite=suite))
            if suite_name in COVERAGE_SUITES:
                fmt = {"result_format": "COMPLETE", "unexpected_index_column_names": ["factor"]}
            else:
                fmt = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED}
            results[suite_name] = vd.run(batch_parameters={"dataframe": df},
                                         expectation_parameters=params, result_format=fmt)
        docs_path = None
        if docs_root is not None:
            ctx.build_data_docs()
            site = docs_root / "gx" / "uncommitted" / "data_docs" / "local_site"
            for name in _UNUSED_DOCS_ASSETS:  # 3.3 of the site's 4.4 MB, linked from no page
                (site / "static" / "images" / name).unlink(missing_ok=True)
            docs_path = site / "index.html"
    return results, docs_path


def _refined_labels(reader: BatchReader, task: TaskSuites, suites: dict[str, Any],
                    frames: dict[str, pd.DataFrame]
                    ) -> tuple[list[str], str | None, pd.DataFrame | None]:
    """For a refined batch (its manifest names a parent): add the task's
    label-preservation suite and frame. Returns the failures that stop the check (no
    suite for the task, parent gone, no probe), the suite's name and the frame."""
    if "parent" not in reader.manifest:
        return [], None, None
    name, read = _label_check(reader, task)
    if name is None:
        return [f"label preservation: task {reader.task} has no check for refined batches"], None, None
    try:
        frame = read(reader)
    except LabelCheckUnavailable as e:
        return [f"label preservation: {e}"], None, None
    suites[name] = load_suite_json(name)
    frames[name] = frame
    return [], name, frame


def _frozen_probe_shift(reader: BatchReader, task: TaskSuites) -> dict[str, Any] | None:
    """The frozen probe's label shift summary of a batch checked for learnability (not a
    criterion there; None where it cannot run, e.g. its parent is gone)."""
    try:
        return label_check_summary(task.refined_frame(reader))
    except LabelCheckUnavailable:
        return None


def _label_check(reader: BatchReader, task: TaskSuites) -> tuple[str | None, Any]:
    """The label-preservation suite of a refined batch and the frame it reads: the
    learnability table where the refiner (a patch) left one, else the task's own check."""
    if task.learnability is not None and LEARNABILITY_FILE in reader.extra_files:
        return task.learnability, task.learnability_frame
    return task.refined, task.refined_frame


def validate_batch(batch_dir: str | Path, *, docs: bool = True) -> ValidationReport:
    """Run the task's two suites on a batch; write ``validation/result.json`` (and Data Docs).

    A malformed batch (or one of a task without suites) raises
    :class:`realdata.errors.DataFormatError` unchanged. The status is not written here:
    see :func:`record_outcome`.
    """
    t0 = time.perf_counter()
    batch_dir = Path(batch_dir)
    reader = BatchReader(batch_dir)
    task = suites_for(reader)
    samples_suite, coverage_suite = task.samples, task.coverage
    samples = task.frame(reader)
    cov = coverage_frame(reader, samples)
    params = suite_parameters(reader)
    t_frames = time.perf_counter() - t0

    # A suite placeholder the batch cannot fill (its distribution lacks that factor) is a
    # failure of the batch, not a crash of the validator.
    suites = {samples_suite: load_suite_json(samples_suite), coverage_suite: load_suite_json(coverage_suite)}
    frames = {samples_suite: samples, coverage_suite: cov}
    failing_refined, check, refined = _refined_labels(reader, task, suites, frames)
    missing = sorted(set().union(*(suite_parameter_names(s) for s in suites.values())) - params.keys())
    failing = [f"suite parameter {m}: not provided by batch {reader.batch_id} "
               "(its distribution lacks that factor)" for m in missing] + failing_refined
    failing += [f"distribution: {p}" for p in task.factors.limit_problems(reader.distribution)]
    params_gx = {**params, **{m: float("nan") for m in missing}}

    # One validation of a batch at a time, across processes (two `train` runs on one
    # unvalidated source would share its GX file context and collide).
    with name_lock(batch_dir / GX_ROOT):
        # Docs of an earlier validation would contradict the new result.json: drop them.
        shutil.rmtree(batch_dir / GX_ROOT / "gx", ignore_errors=True)
        results, docs_path = _run_gx(suites, frames, params_gx, batch_dir / GX_ROOT if docs else None)
        failing += _failing_samples(results[samples_suite])
        if refined is not None:
            failing += [f"label preservation: {f}" for f in _failing_with_values(results[check])]
        failing += _failing_coverage(results[coverage_suite], cov, MIN_COVERAGE_P_VALUE)
        success = not failing and all(r.success for r in results.values())

        statistics = {
            name: _jsonable(dict(r.statistics)) for name, r in results.items()
        }
        statistics["n_samples"] = int(reader.n)
        if refined is not None:
            statistics["label_preservation"] = label_check_summary(refined)
            if check == task.learnability:  # what the frozen probe would have said, for the record
                statistics["frozen_probe_shift"] = _frozen_probe_shift(reader, task)
        statistics["min_coverage_p_value"] = float(cov["p_value"].min()) if len(cov) else None
        statistics["seconds"] = {"frames": round(t_frames, 3), "total": round(time.perf_counter() - t0, 3)}

        result_path = batch_dir / RESULT_FILE
        result_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "batch_id": reader.batch_id,
            "distribution_id": reader.manifest.get("distribution_id"),
            "success": success,
            "failing": failing,
            "statistics": statistics,
            "parameters": params,
            "coverage": cov.to_dict(orient="records"),
            "suites": {name: r.to_json_dict() for name, r in results.items()},
            "docs": str(docs_path) if docs_path else None,
        }
        atomic_write_text(result_path, json.dumps(_jsonable(payload), indent=2, sort_keys=True) + "\n")
    return ValidationReport(batch_id=reader.batch_id, success=success, failing=failing,
                            statistics=statistics, result_path=result_path, docs_path=docs_path)


def record_outcome(batch_dir: str | Path, report: ValidationReport) -> str:
    """Write ``validation/status.json``: ``accepted`` or ``quarantined`` (kept in place, never
    deleted; ``open_for_training`` refuses it). Returns the status."""
    status = "accepted" if report.success else "quarantined"
    write_status(batch_dir, status, failing=report.failing, batch_id=report.batch_id,
                 result=str(report.result_path) if report.result_path else None,
                 docs=str(report.docs_path) if report.docs_path else None)
    return status

