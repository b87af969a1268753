"""The training run's configuration: everything that fixes a run's weights (with the
sources' seeds and data), validated against the registries, and read back from saved
checkpoints of any age."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from models.configs import strict_from_dict
from models.registry import create_task, list_methods, list_tasks, method_serves, model_task
from realdata.errors import UsageError

__all__ = ["RESUME_FREE", "TrainConfig", "upgrade_config"]

# config fields that do not change the weights a run produces: may differ on resume
RESUME_FREE = frozenset({"device", "amp", "cpu_amp", "eval_every", "ckpt_every", "log_every"})
# fields of configs saved before the gaze loss options moved into task_kwargs
_LEGACY_GAZE_FIELDS = ("reg", "reg_alpha")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a training run (with the sources' seeds and data).

    The optimiser is AdamW rather than TLlib's SGD+Nesterov: TLlib fine-tunes
    ImageNet backbones, where SGD's smaller effective steps protect pretrained features;
    here the small gaze CNN trains from scratch in a few thousand steps, where Adam
    converges much faster and is far less sensitive to the learning rate across
    model widths and methods (fewer Optuna trials wasted). Weight decay is decoupled
    and applied to weight matrices/kernels only, not to BatchNorm or biases (nanoGPT).
    """

    model: str = "gaze_resnet_s"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "source_only"
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 64  # source batch; the target batch defaults to the same size
    target_batch_size: int | None = None
    lr: float = 3e-3
    min_lr_frac: float = 0.05  # cosine decays to lr * min_lr_frac
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float | None = None  # max global grad norm; None = off
    # decay of an exponential moving average of the weights (models.ema), the copy that is
    # evaluated, selected and saved as the model; None = the online weights themselves
    ema: float | None = None
    trade_off: float = 1.0
    grl_alpha: float = 10.0
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # bf16 autocast, and channels_last, only when device is cuda
    # the same on the CPU: about 2x faster for the landmark CNNs on CPUs with native bf16,
    # slower for small nets, so asked for by name (resuming may switch it); honoured only
    # where the CPU has native bf16 (models.precision: emulated, it was 11x slower)
    cpu_amp: bool = False
    augment: bool = True
    eval_every: int = 250
    ckpt_every: int = 500
    log_every: int = 10  # history/callback granularity; train metrics averaged over it
    select: str = "entropy"
    # the task (labels, loss, metrics, selectors): "gaze" or "landmarks"; task_kwargs are
    # its options (models.tasks.gaze.GazeTaskConfig, models.tasks.landmarks.LandmarkTaskConfig)
    task: str = "gaze"
    task_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        object.__setattr__(self, "method_kwargs", dict(self.method_kwargs))
        object.__setattr__(self, "task_kwargs", dict(self.task_kwargs))
        if self.task not in list_tasks():
            raise ValueError(f"task must be one of {list_tasks()}, got {self.task!r}")
        try:
            served = model_task(self.model)
        except KeyError:
            served = self.task  # an unknown model fails in create_model, listing the names
        if served != self.task:
            raise ValueError(f"model {self.model!r} is a {served!r} model; this config's task "
                             f"is {self.task!r}")
        create_task(self.task).check_config(self)
        if self.method in list_methods() and not method_serves(self.method, self.task):
            raise UsageError(f"method {self.method!r} does not serve the {self.task!r} task")
        for name in ("steps", "batch_size", "eval_every", "ckpt_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.target_batch_size is not None and self.target_batch_size <= 0:
            raise ValueError(f"target_batch_size must be positive, got {self.target_batch_size}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1) or None, got {self.ema}")
        if self.warmup < 0 or self.lr <= 0:
            raise ValueError(f"need lr > 0 and warmup >= 0, got {self.lr}, {self.warmup}")

    @property
    def target_batch(self) -> int:
        return self.target_batch_size or self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, upgrade_config(d))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Default values of the fields that have one (for configs saved before a field existed)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.default is not MISSING:
                out[f.name] = f.default
            elif f.default_factory is not MISSING:
                out[f.name] = f.default_factory()
        return out


def upgrade_config(d: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's fields: the gaze loss options ``reg``/``reg_alpha`` were
    top-level fields; they are the gaze task's ``task_kwargs`` now (left out where they
    equal the task's defaults, so an old run and its new continuation compare equal)."""
    if not any(k in d for k in _LEGACY_GAZE_FIELDS):
        return dict(d)
    from models.tasks.gaze import GazeTaskConfig

    d = dict(d)
    legacy = {k: d.pop(k) for k in _LEGACY_GAZE_FIELDS if k in d}
    defaults = GazeTaskConfig().to_dict()
    moved = {k: v for k, v in legacy.items() if v != defaults[k]}
    if moved:
        d["task_kwargs"] = {**moved, **d.get("task_kwargs", {})}
    return d
