"""The feedback loop's configuration: the one place its defaults are written (the
command line and the flow's form read them from here)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from synthloop.errors import UsageError
from synthloop.refine_methods import REFINE_METHODS, default_strength
from synthloop.taskspec import TASK_NAMES, get_task

__all__ = ["LANDMARKER_METHODS", "LOOP_DEFAULTS", "REFINE_METHOD_NAMES",
           "ROUND_START_CHOICES", "ROUND_START_NAMES", "TRANSFER_FIT_NAMES", "UPDATE_NAMES",
           "LoopConfig", "resolve_round_start"]

#: Fields added after the gaze loop shipped: left out of ``to_dict`` while unset, so a gaze
#: loop keeps its id (and its catalog rows and MLflow params) exactly.
_OPTIONAL_FIELDS = ("model_kwargs", "transfer_steps", "transfer_fit", "refine_steps", "restart",
                    "refine_method", "refine_strength", "mirror_eye", "update",
                    "round_start")

#: what a closed loop's update moves: "all" re-weights the label factors by the real
#: errors and fits the appearance (nuisance) factors to the real images' statistics;
#: "labels" re-weights the label factors only and leaves appearance as the start drew it
UPDATE_NAMES = ("all", "labels")

#: where a round's training starts: "warm" from the previous round's weights (the model
#: accumulates every round's steps), "scratch" from fresh weights, so that each round's
#: model is the work of its own distribution alone at the same budget (on real eyes more
#: steps on synthetic eyes made both arms worse after round 0)
ROUND_START_NAMES = ("warm", "scratch")
#: what the command line and the form offer: "default" is the task's own
#: (``TaskSpec.loop_round_start``: scratch for gaze, warm for landmarks)
ROUND_START_CHOICES = ("default", *ROUND_START_NAMES)

#: landmarks: the label-transfer fits (the keys of ``models.transfer_fits.TRANSFER_FITS``,
#: written out so that reading a configuration does not import torch; a test keeps them equal)
TRANSFER_FIT_NAMES = ("ridge", "mlp")

#: how a batch may be refined (``synthloop.refine_methods`` imports no torch); a round's
#: batch by every method: those that place the real faces' 68 points with a landmark model
#: (``synthloop refine --landmarker``) use the previous round's model, so a loop's round 0
#: trains on the rendered batch
REFINE_METHOD_NAMES = tuple(REFINE_METHODS)
#: the methods that need a landmark model (tasks whose spec ``places_points``)
LANDMARKER_METHODS = tuple(n for n, m in REFINE_METHODS.items() if "landmarker" in m.reads)
#: the methods that take a strength (the patches)
_STRENGTH_METHODS = tuple(n for n, m in REFINE_METHODS.items() if m.strength is not None)


def resolve_round_start(task: str, choice: str) -> str:
    """A ``ROUND_START_CHOICES`` entry as the round start it means for ``task``."""
    if choice not in ROUND_START_CHOICES:
        raise UsageError(f"round start {choice!r}: choose from {', '.join(ROUND_START_CHOICES)}")
    return get_task(task).loop_round_start if choice == "default" else choice


@dataclass(frozen=True)
class LoopConfig:
    """Everything that fixes a loop's results (with the real data and the code).

    ``real``: labeled real data (the task's format); the analysis part is a seeded
    ``1 - holdout_frac`` of it (``split_seed``, not the loop seed: every seed and both
    modes are scored on the same held-out samples). ``patience``: rounds without a
    relative held-out gain of ``min_improvement`` before stopping (None: run every
    round). ``model`` and ``batch_size`` default to the task's own.
    """

    task: str
    real: str
    rounds: int = 3
    seed: int = 0
    open_loop: bool = False
    n_per_round: int = 6000
    steps_per_round: int = 500
    method: str = "source_only"
    batch_size: int | None = None  # None: the task's default
    model: str | None = None  # None: the task's default
    holdout_frac: float = 0.5
    split_seed: int = 0
    min_improvement: float = 0.02
    patience: int | None = 1
    policy_step: float = 0.7
    distribution: str | None = None  # initial distribution JSON; default: the built-in one
    model_kwargs: dict[str, Any] | None = None  # architecture overrides (e.g. hourglass width)
    transfer_steps: int | None = None  # landmarks: label-transfer fit steps (None: 2000)
    transfer_fit: str | None = None  # landmarks: TRANSFER_FIT_NAMES (None: the first);
    # tasks without a label transfer drop it, so it is no part of their identity
    refine_steps: int | None = None  # SimGAN steps refining each round's batch toward the
    # analysis part before training (None: no refinement)
    restart: int | None = None  # n >= 1: the n-th fresh loop with otherwise equal settings
    refine_method: str | None = None  # "mean-patch": each round's batch moved by the analysis
    # part's mean image minus its own (no steps); "pose-mean-patch": the same per head pose
    # (the real eyes' meta.csv head_pose_P_deg); None: SimGAN when refine_steps is set
    refine_strength: float | None = None  # the patches: how far (None: the method's default,
    # written into the configuration so that the loop's id records it)
    mirror_eye: str | None = None  # "L" or "R": the real eyes of that side mirrored onto the
    # other's (yaw negated) everywhere the loop reads them; the models record it
    update: str | None = None  # UPDATE_NAMES; None is "all", written so that a loop
    # with the default update keeps the id it had before the choice existed
    round_start: str | None = None  # ROUND_START_NAMES; None is "warm" (the same reason; the
    # command line and the form pass the task's default, resolve_round_start)

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise UsageError(f"task {self.task!r}: the loop runs for {', '.join(TASK_NAMES)}")
        spec = get_task(self.task)
        if self.model is None:
            object.__setattr__(self, "model", spec.default_model)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", spec.default_batch_size)
        if self.rounds < 1 or self.n_per_round < 1 or self.steps_per_round < 1:
            raise UsageError("rounds, n_per_round and steps_per_round must be positive")
        if not spec.label_transfer:
            object.__setattr__(self, "transfer_fit", None)
        elif self.transfer_fit is None:
            object.__setattr__(self, "transfer_fit", TRANSFER_FIT_NAMES[0])
        elif self.transfer_fit not in TRANSFER_FIT_NAMES:
            raise UsageError(f"transfer_fit {self.transfer_fit!r}: choose from "
                             f"{', '.join(TRANSFER_FIT_NAMES)}")
        if self.refine_steps is not None and self.refine_steps < 1:
            raise UsageError(f"refine_steps must be positive (or None), got {self.refine_steps}")
        if self.refine_method not in (None, *REFINE_METHOD_NAMES):
            raise UsageError(f"refine_method {self.refine_method!r}: choose from "
                             f"{', '.join(REFINE_METHOD_NAMES)}")
        if self.refine_method in LANDMARKER_METHODS and not spec.places_points:
            raise UsageError(f"refine_method {self.refine_method} aligns faces by their 68 points: "
                             f"it refines landmarks loops, not the {self.task} loop")
        if self.refine_method == "simgan":  # one spelling per loop: the id depends on it
            if self.refine_steps is None:
                raise UsageError("refine_method simgan needs refine_steps (the refiner's steps)")
            object.__setattr__(self, "refine_method", None)
        fitted = self.refine_method is not None and not REFINE_METHODS[self.refine_method].trains
        if fitted and self.refine_steps is not None:
            raise UsageError(f"{self.refine_method} trains nothing: leave refine_steps unset")
        patch = self.refine_method in _STRENGTH_METHODS
        if not patch and self.refine_strength is not None:
            raise UsageError("refine_strength is the patches': set refine_method "
                             + ", ".join(_STRENGTH_METHODS))
        if patch:
            strength = default_strength(self.refine_method, self.refine_strength)
            if not 0.0 < strength <= 4.0:
                raise UsageError(f"refine_strength must be in (0, 4], got {strength}")
            object.__setattr__(self, "refine_strength", float(strength))
        if self.mirror_eye is not None:
            if not spec.mirrors_eye_sides:
                raise UsageError(f"mirror_eye (one eye side mirrored onto the other's) applies to "
                                 f"eye patches, not to the {self.task} loop")
            if self.mirror_eye not in ("L", "R"):
                raise UsageError(f"mirror_eye must be L or R, got {self.mirror_eye!r}")
        if self.update not in (None, *UPDATE_NAMES):
            raise UsageError(f"update {self.update!r}: choose from {', '.join(UPDATE_NAMES)}")
        if self.update == UPDATE_NAMES[0] or self.open_loop:  # one spelling per loop (its
            # id depends on it); an open loop updates nothing, so the choice is no part of it
            object.__setattr__(self, "update", None)
        if self.round_start not in (None, *ROUND_START_NAMES):
            raise UsageError(f"round_start {self.round_start!r}: choose from "
                             f"{', '.join(ROUND_START_NAMES)}")
        if self.round_start == ROUND_START_NAMES[0]:
            object.__setattr__(self, "round_start", None)
        if not 0.05 <= self.holdout_frac <= 0.95:
            raise UsageError(f"holdout_frac must be in [0.05, 0.95], got {self.holdout_frac}")

    @property
    def refines(self) -> bool:
        """Whether each round's batch is refined before training."""
        return self.refine_steps is not None or self.refine_method is not None

    @property
    def fits_appearance(self) -> bool:
        """Whether a closed loop's update also fits the appearance (nuisance) factors."""
        return self.update is None

    def starting_weights(self, previous: str | None) -> str | None:
        """The checkpoint a round's training starts from, given the previous round's
        (None in round 0): that one when rounds warm-start, else none (fresh weights)."""
        return previous if self.round_start is None else None

    @property
    def mode(self) -> str:
        return "open" if self.open_loop else "closed"

    @property
    def error_unit(self) -> str:
        return get_task(self.task).error_unit

    @property
    def error_metric(self) -> str:
        return get_task(self.task).error_metric

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in _OPTIONAL_FIELDS:
            if d[name] is None:
                d.pop(name)
        return d


#: field -> default, for the command line's and the flow form's defaults
LOOP_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(LoopConfig)
                                 if f.default is not MISSING}
