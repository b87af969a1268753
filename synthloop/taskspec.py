"""One registered object per task (gaze, landmarks): everything the command line, the
Prefect tasks, the flows and the feedback loop need to know about a task, so that none
of them switches on the task's name.

A task answers:

- **identity and defaults**: its name, what its samples are called, the default model
  and batch size, the loop's error metric and unit;
- **scene distribution and generation**: the built-in distribution, a batch generator
  (planned batch id before rendering, then the batch), a preview grid;
- **real data**: the built-in simulated target where one exists, the labeled real data
  the loop reads (with the content fingerprint that makes a loop's identity), the label
  factors, slices and nuisance map the analysis uses;
- **training and evaluation**: the ``train`` and ``evaluate`` jobs behind the command
  line and the flows, and how their results read on a terminal;
- **the loop's rounds**: ``train_round`` and ``evaluate_round``.

The Great Expectations suites of a task are registered beside the suites themselves
(:data:`expectations.validate.TASK_SUITES`); the training loop's task (loss, labels,
augmentation) in :mod:`models.tasks`.

A new task is a package like :mod:`synthloop.gaze` with a ``spec.py`` defining ``SPEC``,
plus one line in :data:`TASK_MODULES`. Modules load on first use, so naming the tasks
(``--help``, the flows' forms) costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloop.errors import UsageError

if TYPE_CHECKING:
    from synth.distribution import SceneDistribution
    from synthloop.loop.config import LoopConfig
    from synthloop.loop.real import RealData, RealSplit
    from synthloop.runs import TrainedRun
    from synthloop.settings import Settings

__all__ = ["TASK_MODULES", "TASK_NAMES", "AnalysisEvidence", "BatchGenerator",
           "GenerateOptions", "TaskSpec", "TrainRequest", "get_task"]

#: task name -> module defining ``SPEC`` (the registry)
TASK_MODULES: dict[str, str] = {
    "gaze": "synthloop.gaze.spec",
    "landmarks": "synthloop.landmarks.spec",
}
TASK_NAMES: tuple[str, ...] = tuple(TASK_MODULES)


def get_task(name: str) -> TaskSpec:
    """The task registered as ``name``; a UsageError lists the known ones."""
    if name not in TASK_MODULES:
        raise UsageError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
    spec = importlib.import_module(TASK_MODULES[name]).SPEC
    assert spec.name == name, f"{TASK_MODULES[name]}.SPEC is task {spec.name!r}, not {name!r}"
    return spec


@dataclass(frozen=True)
class GenerateOptions:
    """How to render a batch. Each task says which options it takes and refuses the rest
    (``TaskSpec.generator``): ``device``/``compiled`` are the eye renderer's (torch);
    ``landmark_set`` is the dense point set a face batch stores."""

    device: str = "cpu"
    compiled: bool | None = None
    landmark_set: str | None = None


class BatchGenerator:
    """A task's batch writer with its options fixed: the id a batch will have is known
    before anything is rendered (a rerun or a retry finds it), then the batch itself."""

    def planned_id(self, *, n: int, seed: int, dist: SceneDistribution | None = None) -> str:
        raise NotImplementedError

    #: whether :meth:`write` takes ``map_shards`` (shards rendered by separate processes)
    fans_out = False
    #: modules a worker process renders shards with: a local cluster's workers import them
    #: as they start, while this process is busy with its own start-up
    shard_modules: tuple[str, ...] = ()
    #: the smallest batch ``generate`` fans out by default (one worker process per core);
    #: below it, starting the workers costs more than they save. None: never by default
    fan_out_from: int | None = None

    def write(self, out: str | Path, *, n: int, seed: int, dist: SceneDistribution | None = None,
              shard_size: int = 4096, overwrite: bool = False,
              progress: Any = None, map_shards: Any = None) -> tuple[str, Path]:
        """Write the batch; ``map_shards`` (where :attr:`fans_out`) renders its shards in
        other processes, e.g. on a Dask cluster (``tasks.fanout``)."""
        raise NotImplementedError


@dataclass(frozen=True)
class TrainRequest:
    """What ``synthloop train`` asks for; ``None`` means the task's default. A task
    refuses what it cannot use (e.g. landmarks take no ``real_subjects``)."""

    method: str
    steps: int
    seed: int
    out: str
    target: str | None = None
    real_labeled: str | None = None
    real_subjects: int | None = None
    real_fraction: float = 0.5  # share of each batch from real_labeled
    source: str | None = None
    n_source: int = 20_000
    batch_size: int | None = None
    lr: float | None = None
    trade_off: float = 1.0
    model: str | None = None
    device: str = "cpu"
    register: bool = True
    refiner: str | None = None  # a refiner.pt applied to the synthetic images on the fly
    mirror_eye: str | None = None  # gaze: real eyes of this side mirrored onto the other's
    ema: float | None = None  # gaze: decay of the weight average that is kept and served


@dataclass(frozen=True)
class AnalysisEvidence:
    """What the loop's analysis knows about the real samples it analyses.

    observed: variable -> per-sample values to slice the errors by (labels in
    degrees, sizes...; image statistics are added by the loop); real_values: scene
    factor -> per-sample real value (radians), for label-space re-weighting;
    label_factors: the factors re-weighted; nuisance: factor -> image statistic map of
    the nuisance fit."""

    observed: dict[str, Any]
    real_values: dict[str, Any]
    label_factors: tuple[str, ...]
    nuisance: dict[str, str] = field(default_factory=dict)


class TaskSpec:
    """The questions every task answers (module docstring); subclasses answer them."""

    name: str
    #: what one sample is called in messages ("eye images", "faces")
    samples: str
    default_model: str
    default_batch_size: int
    #: the loop's error: MLflow metric of the held-out mean, and its unit
    error_metric: str
    error_unit: str
    #: the loop's declared validation: the same error on the analysis part (MLflow metric),
    #: which picks the loop's best round for the registry (the held-out part never does)
    validation_metric: str
    #: what the loop's ``--real`` must hold, for messages
    real_data_hint: str
    #: whether real labels reach the model through a fitted label transfer (the loop's
    #: ``transfer_fit`` then belongs to its configuration)
    label_transfer: bool = False
    #: whether real samples name their eye side and one side can be mirrored onto the
    #: other (``mirror_eye`` of training and of the loop)
    mirrors_eye_sides: bool = False
    #: whether a landmark model can place 68 points on its real images (the refiners that
    #: align faces by them, :meth:`refine_target_points`)
    places_points: bool = False
    #: where the feedback loop's rounds start training when the user does not say
    #: (``LoopConfig.round_start``): "warm" from the previous round's model, or "scratch"
    loop_round_start: str = "warm"

    # ------------------------------------------------------------ distribution

    def default_distribution(self) -> SceneDistribution:
        raise NotImplementedError

    def generator(self, options: GenerateOptions = GenerateOptions()) -> BatchGenerator:  # noqa: B008
        """The batch generator with these options; a UsageError names an option this
        task does not take."""
        raise NotImplementedError

    def preview(self, reader: Any, out: str | Path, *, count: int,
                real: str | None = None) -> Path:
        """A PNG grid of the batch's first ``count`` samples (beside real ones, where the
        task can show them)."""
        raise NotImplementedError

    # ------------------------------------------------------------ refinement

    def refine_target_images(self, path: str, mirror_eye: str | None = None) -> Any:
        """Real images a refiner trains toward, as uint8 arrays shaped like the task's
        batch images; labels, if the folder has any, are not read into it. ``mirror_eye``:
        that side mirrored onto the other's (tasks with ``mirrors_eye_sides``)."""
        raise NotImplementedError(f"task {self.name} cannot refine batches yet")

    def refine_target_points(self, images: Any, landmarker: str) -> Any:
        """The 68 points ``(N, 68, 2)`` of the real ``images`` (as
        :meth:`refine_target_images` gave them) found by the model ``landmarker``, for
        refiners that work in the face's own coordinates."""
        from synthloop.errors import UsageError

        raise UsageError(f"task {self.name}: its real images have no 68 points to place")

    def refine_condition(self, parent: Any, name: str) -> Any:
        """What a conditioned refiner reads per image of the batch ``parent`` (its
        ``conditioned_on``): the batch metadata column ``name`` unless the task keeps it
        elsewhere."""
        from synthloop.refine_methods import metadata_column

        return metadata_column(parent, name, "this refiner reads it")

    def refine_target_head_yaw(self, path: str, column: str, mirror_eye: str | None = None) -> Any:
        """``(N,)`` float degrees: each real image's head yaw from the folder's per-image
        metadata ``column``, in the order and frame of :meth:`refine_target_images` (a
        mirrored image's yaw negated), for refiners that work per head pose."""
        from synthloop.errors import UsageError

        raise UsageError(f"task {self.name}: its real images carry no head yaw to refine per pose")

    def label_probe(self, reader: Any, out: Path, *, seed: int, steps: int,
                    log: Any = print) -> Path | None:
        """A checkpoint of a model trained on the unrefined batch ``reader``, frozen, that
        validation runs on the parent and the refined images to see the labels did not
        move; None where the task checks its labels without a model."""
        return None

    def label_learnability(self, reader: Any, refiner: Any, condition: Any, out: Path, *,
                           seed: int, steps: int, log: Any = print) -> Path | None:
        """For a refiner that does not read the image (:func:`models.refiners.reads_image_content`):
        a table of how well fresh probes learn the labels from the unrefined and from the
        refined images, which validation then bounds instead of a frozen probe's answer;
        None where the task checks its refined labels another way."""
        return None

    def consistency_probe(self, reader: Any, out: Path, *, seed: int, steps: int,
                          log: Any = print) -> Any:
        """A frozen function of float image batches in [0, 1] whose answer a refiner is
        trained to keep (``synthloop refine --consistency``), trained on the unrefined
        batch ``reader`` with its files under ``out`` (which may be removed afterwards)."""
        from synthloop.errors import UsageError

        raise UsageError(f"task {self.name} has no label probe for the refiner to keep its "
                         "answer still: leave --consistency at 0")

    def refine_preview(self, reader: Any, refined: Any, real: Any, out: Path) -> Path:
        """A PNG of synthetic, refined and real samples side by side, labels drawn on
        the first two."""
        raise NotImplementedError

    # ------------------------------------------------------------ real data

    def builtin_target(self, settings: Settings) -> Path | None:
        """The built-in simulated target (labeled, written under the project home) the
        loop runs on without real data, or None where the task has none."""
        return None

    def bundled_real_data(self, settings: Settings) -> Path | None:
        """Labeled real data beside the project (``settings.shared``), when it is there:
        what the demo runs on; None on a fresh clone."""
        return None

    def loop_real_data(self, settings: Settings, real: str | None) -> str:
        """The loop's labeled real data: ``real``, or the built-in simulated target."""
        if real:
            return real
        target = self.builtin_target(settings)
        if target is None:
            raise UsageError(f"the {self.name} loop needs labeled real data ({self.real_data_hint}): "
                             f"there is no built-in simulated target for {self.name}")
        return str(target)

    def read_real(self, path: str, mirror_eye: str | None = None) -> RealData:
        """The labeled real data the loop scores and analyses (DataFormatError when the
        folder cannot serve); ``mirror_eye``: that side mirrored onto the other's (tasks
        with ``mirrors_eye_sides``)."""
        raise NotImplementedError

    def analysis_evidence(self, real: RealSplit, indices: Any) -> AnalysisEvidence:
        raise NotImplementedError

    # ------------------------------------------------------------ train / evaluate

    def train(self, settings: Settings, request: TrainRequest, log: Any = print) -> TrainedRun:
        raise NotImplementedError

    def describe_run(self, run: TrainedRun) -> list[tuple[str, str]]:
        """``(key, value)`` lines the command line prints for a finished run."""
        return [("checkpoint", str(run.checkpoint_dir.resolve())), ("mlflow_run", run.run_id)]

    def evaluate(self, model: str, data: str, *, tta_shift: int = 0) -> dict[str, Any]:
        """Score ``model`` on ``data``; ``tta_shift`` > 0 asks for test-time shift averaging
        (a task without it refuses)."""
        raise NotImplementedError

    def evaluation_lines(self, result: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------ the loop's rounds

    def train_round(self, settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                    batch_dir: str, init_from: str | None, mlflow_run_id: str | None,
                    real: RealSplit, report: Callable[[str], None] | None = None,
                    label: str = "train") -> dict[str, Any]:
        """Train the round's model; returns ``checkpoint``, ``train_config``, ``metrics``
        and ``samples_per_s``. ``report`` gets progress lines starting with ``label``."""
        raise NotImplementedError

    def round_serving_model(self, settings: Settings, cfg: LoopConfig, *, checkpoint: str,
                            real: RealSplit) -> tuple[Any, Any, list[Path]] | None:
        """What registering a round's model takes: ``(predictor, input example, files it
        carries)``, or None when the task's rounds cannot be served on their own."""
        return None

    def evaluate_round(self, settings: Settings, cfg: LoopConfig, *, lid: str, k: int,
                       checkpoint: str, real: RealSplit) -> dict[str, Any]:
        """Score the round's model on every real sample (per-sample errors saved for the
        analysis); returns ``real_error`` (held-out mean), ``analysis_error`` and the
        ``metrics`` the round's MLflow run logs."""
        raise NotImplementedError
