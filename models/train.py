"""One training loop for every task and DA method: gaze or landmarks; source-only, DANN,
DALN (and any registered one).

Per step (:func:`train_step`): a labeled source batch and, when the method needs one,
an unlabeled target batch; augmentation; ONE forward pass over ``cat([x_s, x_t])``
(BatchNorm sees both domains, as in TLlib); split the features; the task loss on the
source half; the method's transfer loss on both halves; ``task + trade_off * transfer``.
The learning rate and the reversal coefficient are pure functions of the step.

What differs between tasks lives in a *task* object (``cfg.task``, registered by name
like models and methods; :class:`Task`): which labels a batch carries, how augmentation
treats them, the loss, the training-batch metric, evaluation and the selectors. The gaze
task (:class:`GazeTask`, the default) is the loop's original code moved behind that
interface, op for op, so gaze runs give the same numbers as before for the same seed.
The landmark task is :class:`models.landmark_losses.LandmarkTask`.

Everything random is keyed by ``(seed, step)``: model init by ``cfg.seed``, batches by
the sources' own seeds and the step, augmentation and dropout by
``step_seed(cfg.seed, step, stream)``. So a run resumed from ``last.pt`` at step ``k``
is bit-for-bit the uninterrupted run on CPU (the optimiser state is in the checkpoint),
and no sampler or generator state needs saving.

:func:`train` adds evaluation, label-free checkpoint selection, checkpoints, resume and
Ctrl-C handling, and reports through ``callback(step, metrics)`` (how MLflow reaches the
loop); it prints nothing.

Examples::

    >>> cfg = TrainConfig(method="dann", steps=2000)
    >>> src = ShardSource(BatchReader("batches/b1"), cfg.batch_size, seed=0)
    >>> tgt = ArraySource(real.images, cfg.batch_size, seed=1)
    >>> res = train(cfg, src, tgt, "runs/r1", val_source=val_s, val_target=val_t)
    >>> model = load_model("runs/r1")       # best.pt
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

import models.hourglass  # noqa: F401  registers the landmark models
import models.landmark_losses  # noqa: F401  registers the landmark task
from models.augment import augment
from models.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from models.configs import strict_from_dict
from models.da_losses import angular_error_deg, gaze_loss
from models.data import BatchSource, step_seed
from models.registry import (
    create_method,
    create_model,
    create_task,
    list_tasks,
    model_task,
    register_task,
)
from models.schedules import grl_coeff, warmup_cosine
from models.validators import unsupervised_scores

__all__ = [
    "SELECTORS",
    "GazeTask",
    "Task",
    "TrainConfig",
    "TrainResult",
    "build",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "predict",
    "train",
    "train_step",
]

# random streams derived from (cfg.seed, step); the sources use their own seeds
AUG_STREAM = 1
MODEL_RNG_STREAM = 2

#: gaze selection name -> (metric key in the eval dict, "min" | "max"); each task has its
#: own (``create_task(name).selectors``; the landmark ones are in models.landmark_losses)
SELECTORS: dict[str, tuple[str, str]] = {
    # Default. Mean entropy of the pitch/yaw bin softmaxes on target images: a model that
    # transfers makes confident bin predictions on the target too. It is no method's
    # training objective here: DALN maximises the nuclear norm of the softmax matrix,
    # which *is* BNM (selecting DALN with BNM would score what it optimises), and DANN
    # optimises a discriminator. Its known failure (confident collapse) shows up as a low
    # target_im, which is reported next to it.
    "entropy": ("target_entropy", "min"),
    "im": ("target_im", "max"),
    "snd": ("target_snd", "max"),
    "bnm": ("target_bnm", "max"),  # circular for DALN; offered for comparisons
    "source_error": ("source_angular_error_deg", "min"),  # the "source-val" baseline
}

# config fields that do not change the weights a run produces: may differ on resume
_RESUME_FREE = frozenset({"device", "amp", "eval_every", "ckpt_every", "log_every"})


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
    trade_off: float = 1.0
    grl_alpha: float = 10.0
    # gaze_loss regression term: "l1" (deg) or "mse" (deg^2). L1 x 0.1 keeps the task loss
    # at a few nats, comparable to the transfer losses (~0.4-0.7); with L2CS's deg^2 MSE at
    # alpha 1 the task loss is ~100-250 and a trade_off of 1 left DANN's term negligible
    # (measured: domain accuracy stayed at 0.82-0.88, target error unchanged).
    reg: str = "l1"
    reg_alpha: float = 0.1
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # bf16 autocast, and channels_last, only when device is cuda
    augment: bool = True
    eval_every: int = 250
    ckpt_every: int = 500
    log_every: int = 10  # history/callback granularity; train metrics averaged over it
    select: str = "entropy"
    # the task (labels, loss, metrics, selectors): "gaze" or "landmarks"; task_kwargs are
    # its options (landmarks: models.landmark_losses.LandmarkTaskConfig; gaze: none, its
    # options are the reg/reg_alpha fields above, kept for compatibility)
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
        for name in ("steps", "batch_size", "eval_every", "ckpt_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.target_batch_size is not None and self.target_batch_size <= 0:
            raise ValueError(f"target_batch_size must be positive, got {self.target_batch_size}")
        if self.warmup < 0 or self.lr <= 0:
            raise ValueError(f"need lr > 0 and warmup >= 0, got {self.lr}, {self.warmup}")
        if self.reg not in ("mse", "l1"):
            raise ValueError(f"reg must be 'mse' or 'l1', got {self.reg!r}")

    @property
    def target_batch(self) -> int:
        return self.target_batch_size or self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, d)

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


@dataclass
class TrainResult:
    steps: int  # the step the run ended at (== cfg.steps when complete)
    final_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_step: int | None
    best_score: float | None
    checkpoint_dir: Path
    samples_per_s: float  # source + target images per second through data + train_step


# --------------------------------------------------------------------------- tasks


class Task(Protocol):
    """What the loop needs to know about a task; registered with ``register_task(name)``.

    ``labels`` picks the label tensors from a source batch (on the device);
    ``augment(x, labels, gen, cfg)`` augments the (source + target) images and moves the
    source labels along if geometry changes them; ``loss(model, out, labels, cfg)``
    returns named losses with the total under ``loss_key``; ``train_metrics`` the metrics
    on the training batch; ``evaluate`` the eval dict; ``selectors`` maps selection names
    to ``(eval key, "min" | "max")``; ``check_config`` refuses configs the task cannot run.
    """

    name: str
    loss_key: str
    selectors: Mapping[str, tuple[str, str]]
    eval_chunk: int

    def check_config(self, cfg: TrainConfig) -> None: ...

    def labels(self, batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]: ...

    def augment(self, x: Tensor, labels: dict[str, Tensor], gen: torch.Generator,
                cfg: TrainConfig) -> tuple[Tensor, dict[str, Tensor]]: ...

    def loss(self, model: nn.Module, out: Any, labels: dict[str, Tensor],
             cfg: TrainConfig) -> dict[str, Tensor]: ...

    def train_metrics(self, model: nn.Module, out: Any,
                      labels: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def evaluate(self, model: nn.Module, val_source: Mapping[str, Tensor] | None,
                 val_target: Mapping[str, Tensor] | None, *, amp: bool,
                 chunk: int) -> dict[str, float]: ...


@register_task("gaze")
class GazeTask:
    """Eye patches ``image`` uint8 ``(N, 1, 36, 60)`` with ``pitchyaw`` ``(N, 2)`` radians;
    the L2CS loss of :func:`~models.da_losses.gaze_loss` (``cfg.reg``, ``cfg.reg_alpha``)."""

    name = "gaze"
    loss_key = "gaze"
    selectors = SELECTORS
    eval_chunk = 512

    def check_config(self, cfg: TrainConfig) -> None:
        if cfg.task_kwargs:
            raise ValueError(f"the gaze task takes no task_kwargs (its options are reg and "
                             f"reg_alpha), got {sorted(cfg.task_kwargs)}")
        if cfg.select not in self.selectors:
            raise ValueError(f"select must be one of {sorted(self.selectors)}, got {cfg.select!r}")

    def labels(self, batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
        return {"pitchyaw": batch["pitchyaw"].to(device, non_blocking=True).float()}

    def augment(self, x: Tensor, labels: dict[str, Tensor], gen: torch.Generator,
                cfg: TrainConfig) -> tuple[Tensor, dict[str, Tensor]]:
        return augment(x, gen), labels  # no op changes the gaze label (models.augment)

    def loss(self, model: nn.Module, out: Any, labels: dict[str, Tensor],
             cfg: TrainConfig) -> dict[str, Tensor]:
        return gaze_loss(out, labels["pitchyaw"], model.bins, alpha=cfg.reg_alpha, reg=cfg.reg)

    def train_metrics(self, model: nn.Module, out: Any,
                      labels: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"src_angular_error_deg": angular_error_deg(out.pitchyaw.detach(), labels["pitchyaw"])}

    def evaluate(self, model: nn.Module, val_source: Mapping[str, Tensor] | None,
                 val_target: Mapping[str, Tensor] | None, *, amp: bool,
                 chunk: int) -> dict[str, float]:
        res: dict[str, float] = {}
        if val_source is not None:
            out = predict(model, val_source["image"], amp, chunk)
            y = val_source["pitchyaw"].to(out.pitchyaw.device)
            res["source_angular_error_deg"] = float(angular_error_deg(out.pitchyaw, y))
        if val_target is not None:
            out = predict(model, val_target["image"], amp, chunk)
            res.update(unsupervised_scores(out.logits, out.features, prefix="target_"))
            if val_target.get("pitchyaw") is not None:
                y = val_target["pitchyaw"].to(out.pitchyaw.device)
                res["target_angular_error_deg"] = float(angular_error_deg(out.pitchyaw, y))
        return res


def task_of(model: nn.Module) -> str:
    """The task a model instance serves (its ``task`` attribute; gaze models have none)."""
    return getattr(model, "task", "gaze")


# --------------------------------------------------------------------------- pieces


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warmup, then cosine to ``lr * min_lr_frac``."""
    return warmup_cosine(step, cfg.steps, cfg.lr, cfg.warmup, cfg.lr * cfg.min_lr_frac)


def build(cfg: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """Model and DA method, initialised from ``cfg.seed`` without touching the caller's
    global RNG, on the CPU (move them yourself)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(cfg.seed)
        model = create_model(cfg.model, **cfg.model_kwargs)
        method = create_method(cfg.method, feature_dim=model.feature_dim, **cfg.method_kwargs)
    return model, method


def make_optimizer(model: nn.Module, method: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the model and the method's extra parameters (see :class:`TrainConfig`)."""
    seen: set[int] = set()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in [*model.parameters(), *method.extra_parameters()]:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _model_rng(seed: int, step: int, device: torch.device) -> Iterator[None]:
    """Dropout and any other in-model randomness drawn from ``(seed, step)``; the
    caller's global RNG state is restored afterwards."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        s = step_seed(seed, step, MODEL_RNG_STREAM)
        torch.default_generator.manual_seed(s)
        if device.type == "cuda":
            torch.cuda.manual_seed(s)
        yield


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_step(model: nn.Module, method: nn.Module, opt: torch.optim.Optimizer,
               batch_s: dict[str, Tensor], batch_t: dict[str, Tensor] | None, step: int,
               cfg: TrainConfig) -> dict[str, float]:
    """One optimisation step; framework-free, returns named losses and diagnostics.

    Keys: ``loss`` (the total), the task's losses on the source half (gaze: ``gaze``,
    ``ce_pitch``, ``ce_yaw``, ``reg_pitch``, ``reg_yaw``; landmarks: ``landmarks``,
    ``coord``, ``coord_inter``, ``heatmap``), ``transfer``, the method's diagnostics
    (``domain_acc`` for DANN, ``discrepancy`` for DALN), the task's training-batch metric
    (``src_angular_error_deg`` / ``src_nme_crop``, on the augmented batch), ``grad_norm``
    (if clipping), ``grl_coeff``, ``lr``.
    """
    device = _device_of(model)
    lr = lr_at(step, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
    coeff = grl_coeff(step, cfg.steps, cfg.grl_alpha)

    task: Task = create_task(cfg.task)
    x_s = batch_s["image"].to(device, non_blocking=True)
    labels = task.labels(batch_s, device)
    n_s = x_s.shape[0]
    if method.needs_target:
        if batch_t is None:
            raise ValueError(f"method {cfg.method!r} needs a target batch")
        x = torch.cat([x_s, batch_t["image"].to(device, non_blocking=True)])
    else:
        x = x_s
    if cfg.augment:
        gen = torch.Generator(device=device).manual_seed(step_seed(cfg.seed, step, AUG_STREAM))
        x, labels = task.augment(x, labels, gen, cfg)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)

    model.train()
    method.train()
    with _model_rng(cfg.seed, step, device):
        with _autocast(cfg, device):
            out = model(x)
            feats = method.features_of(out) if hasattr(method, "features_of") else out.features
            f_s, f_t = feats.split([n_s, x.shape[0] - n_s])
            src = type(out)(*(t[:n_s] for t in out))
            task_losses = task.loss(model, src, labels, cfg)
            transfer, diag = method.transfer_loss(model, f_s, f_t, coeff)
        loss = task_losses[task.loss_key] + cfg.trade_off * transfer.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
    named: dict[str, Tensor] = {"loss": loss, **task_losses, "transfer": transfer, **diag}
    if cfg.grad_clip is not None:
        params = [p for g in opt.param_groups for p in g["params"]]
        named["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    with torch.no_grad():
        named.update(task.train_metrics(model, src, labels))
        # one device->host copy for all scalars (one sync per step on a GPU)
        values = torch.stack([v.detach().float().reshape(()) for v in named.values()]).tolist()
    return {**dict(zip(named, values, strict=True)), "grl_coeff": coeff, "lr": lr}


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, amp: bool = True, chunk: int = 512):
    """The model's outputs (its NamedTuple, float32) over ``images`` in chunks, in the
    model's current mode (call ``model.eval()`` first for inference). Holds every output
    field for every image: for landmark models over many images, stream instead
    (:func:`models.landmark_losses.predict_points`)."""
    device = _device_of(model)
    parts = []
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with (torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda"
              else contextlib.nullcontext()):
            out = model(x)
        parts.append([t.float() for t in out])
    return type(out)(*(torch.cat(ts) for ts in zip(*parts, strict=True)))


@torch.no_grad()
def evaluate(model: nn.Module, val_source: dict[str, Tensor] | None = None,
             val_target: dict[str, Tensor] | None = None, *, amp: bool = True,
             chunk: int | None = None, task: str | None = None) -> dict[str, float]:
    """Metrics on fixed validation batches, model in eval mode (running BN statistics).
    ``task`` defaults to the model's own (:func:`task_of`); ``chunk`` to the task's.

    Gaze:

    - ``source_angular_error_deg`` on labeled ``val_source``;
    - ``target_entropy``, ``target_im``, ``target_bnm``, ``target_snd``,
      ``target_snd_features``, ``target_max_entropy``: label-free scores on ``val_target``
      (:mod:`models.validators`);
    - ``target_angular_error_deg`` if ``val_target`` carries ``pitchyaw``: for benchmarks
      only, never used for selection.

    Landmarks: see :meth:`models.landmark_losses.LandmarkTask.evaluate`.
    """
    t: Task = create_task(task or task_of(model))
    was_training = model.training
    model.eval()
    try:
        return t.evaluate(model, val_source, val_target, amp=amp, chunk=chunk or t.eval_chunk)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- the loop


class _InterruptGuard:
    """While active (main thread only), the first Ctrl-C only sets ``requested``: the
    loop finishes the step, saves ``last.pt`` and raises KeyboardInterrupt at a step
    boundary, so the saved state resumes exactly. A second Ctrl-C raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None
        self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
            except (ValueError, OSError):
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)


def _plain(x: Any) -> Any:
    """JSON-normal form (tuples -> lists) for comparing configs across a save/load."""
    return json.loads(json.dumps(x, default=str))


def _check_resumable(cfg: TrainConfig, saved: dict[str, Any], path: Path) -> None:
    now = {k: v for k, v in _plain(cfg.to_dict()).items() if k not in _RESUME_FREE}
    # fields added since the checkpoint was written read as their defaults (task="gaze")
    then = {k: v for k, v in _plain({**TrainConfig.defaults(), **saved}).items()
            if k not in _RESUME_FREE}
    diff = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if diff:
        detail = ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise ValueError(f"{path}: written by a different training config ({detail}); "
                         "pass resume=False or use another out_dir")


def _improved(score: float | None, best: float | None, mode: str) -> bool:
    if score is None or not math.isfinite(score):
        return False
    if best is None:
        return True
    return score < best if mode == "min" else score > best


_LAST_VALUE = ("lr", "grl_coeff")  # schedules: report the value at the log step, not a mean


def train(cfg: TrainConfig, source: BatchSource, target: BatchSource | None,
          out_dir: str | Path, *, val_source: dict[str, Tensor] | None = None,
          val_target: dict[str, Tensor] | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None,
          resume: bool = True, init_weights: str | Path | None = None) -> TrainResult:
    """Train ``cfg.steps`` steps, evaluating every ``eval_every`` and at the end.

    Writes ``out_dir/last.pt`` every ``ckpt_every`` steps, at the end and on Ctrl-C;
    ``out_dir/best.pt`` (no optimiser state) whenever the ``cfg.select`` score on the
    validation batches improves. With ``resume=True`` an existing ``last.pt`` is
    continued from its step (its config must match, except device/amp/eval/ckpt/log
    cadence); with ``resume=False`` an existing ``last.pt``/``best.pt`` is replaced.

    ``callback(step, metrics)`` is called every ``log_every`` steps and at every eval
    with the train metrics averaged since the previous call (plus eval metrics).

    ``init_weights`` (a checkpoint of the same model) warm-starts a fresh run: its model
    weights replace the seeded initialisation; the optimiser, schedule and step start
    anew. Ignored when resuming (the run's own ``last.pt`` already holds its weights).
    The feedback loop uses it to continue one model across rounds.
    """
    out_dir = Path(out_dir)
    device = torch.device(cfg.device)
    metric, mode = create_task(cfg.task).selectors[cfg.select]
    if metric.startswith("target_") and val_target is None:
        raise ValueError(f"select={cfg.select!r} needs val_target (unlabeled target images)")
    if metric.startswith("source_") and val_source is None:
        raise ValueError(f"select={cfg.select!r} needs val_source")

    model, method = build(cfg)
    if method.needs_target and target is None:
        raise ValueError(f"method {cfg.method!r} needs a target source")
    for src, want, what in ((source, cfg.batch_size, "source"), (target, cfg.target_batch, "target")):
        have = getattr(src, "batch_size", None)
        if src is not None and have is not None and have != want:
            raise ValueError(f"{what} source has batch_size {have}, config says {want}")
    model.to(device)
    method.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, method, cfg)

    train_cfg = cfg.to_dict()
    history: list[dict[str, float]] = []
    best_step: int | None = None
    best_score: float | None = None
    window: dict[str, float] = {}
    window_n = 0
    start = 0
    last_path, best_path = out_dir / LAST, out_dir / BEST
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path, map_location=device)
        _check_resumable(cfg, ck["train_config"], last_path)
        model.load_state_dict(ck["model_state"])
        method.load_state_dict(ck["method_state"])
        if ck.get("optimizer_state") is None:
            raise ValueError(f"{last_path}: has no optimiser state; cannot resume")
        opt.load_state_dict(ck["optimizer_state"])
        start = int(ck["step"])
        ex = ck.get("extra", {})
        history = list(ex.get("history", []))
        best_step, best_score = ex.get("best_step"), ex.get("best_score")
        window, window_n = dict(ex.get("window", {})), int(ex.get("window_n", 0))
    else:
        for p in (last_path, best_path):
            p.unlink(missing_ok=True)
        if init_weights is not None:
            init = load_checkpoint(Path(init_weights), map_location=device)
            if init["train_config"].get("model") != cfg.model:
                raise ValueError(f"{init_weights}: holds a {init['train_config'].get('model')!r} "
                                 f"model, this run trains {cfg.model!r}")
            if init["train_config"].get("task", "gaze") != cfg.task:
                raise ValueError(f"{init_weights}: trained for task "
                                 f"{init['train_config'].get('task', 'gaze')!r}, not {cfg.task!r}")
            model.load_state_dict(init["model_state"])
    out_dir.mkdir(parents=True, exist_ok=True)

    step = start
    saved_at = start if start > 0 else -1

    def save_last() -> None:
        nonlocal saved_at
        extra = {"history": history, "best_step": best_step, "best_score": best_score,
                 "window": window, "window_n": window_n, "select": cfg.select}
        save_checkpoint(last_path, model, opt, method, step, train_cfg, extra,
                        metrics=history[-1] if history else {})
        saved_at = step

    t_train = 0.0
    n_seen = 0
    in_step = False
    try:
        with _InterruptGuard() as guard:
            while step < cfg.steps:
                t0 = time.perf_counter()
                in_step = True
                bs = source.batch(step)
                bt = target.batch(step) if (method.needs_target and target is not None) else None
                m = train_step(model, method, opt, bs, bt, step, cfg)
                step += 1
                in_step = False
                t_train += time.perf_counter() - t0
                n_seen += bs["image"].shape[0] + (bt["image"].shape[0] if bt is not None else 0)

                for k, v in m.items():
                    window[k] = v if k in _LAST_VALUE else window.get(k, 0.0) + v
                window_n += 1
                is_eval = step % cfg.eval_every == 0 or step == cfg.steps
                if is_eval or step % cfg.log_every == 0:
                    record: dict[str, float] = {"step": step}
                    record.update({k: v if k in _LAST_VALUE else v / window_n for k, v in window.items()})
                    if is_eval:
                        record.update(evaluate(model, val_source, val_target, amp=cfg.amp,
                                               task=cfg.task))
                        score = record.get(metric)
                        if _improved(score, best_score, mode):
                            best_step, best_score = step, float(score)
                            save_checkpoint(best_path, model, None, method, step, train_cfg,
                                            {"select": cfg.select, "best_score": best_score},
                                            metrics=record)
                    history.append(record)
                    window, window_n = {}, 0
                    if callback is not None:
                        callback(step, dict(record))
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    save_last()
                if guard.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        # between steps the state is consistent: keep it so that resume continues exactly
        if not in_step and saved_at != step:
            save_last()
        raise

    return TrainResult(
        steps=step,
        final_metrics=dict(history[-1]) if history else {},
        history=history,
        best_step=best_step,
        best_score=best_score,
        checkpoint_dir=out_dir,
        samples_per_s=n_seen / t_train if t_train > 0 else 0.0,
    )
