"""One training loop for every task and DA method: gaze or landmarks; source-only, DANN,
DALN (and any registered one).

Per step (:func:`train_step`): a labeled source batch and, when the method needs one,
an unlabeled target batch; augmentation; ONE forward pass over ``cat([x_s, x_t])``
(BatchNorm sees both domains, as in TLlib); split the features; the task loss on the
source half; the method's transfer loss on both halves; ``task + trade_off * transfer``.
The learning rate and the reversal coefficient are pure functions of the step.

What differs between tasks lives in a *task* object (``cfg.task``, registered by name
like models and methods; :class:`models.tasks.base.Task`): which labels a batch carries,
how augmentation treats them, the loss, the training-batch metric, evaluation and the
selectors (:mod:`models.tasks.gaze`, the default, and :mod:`models.tasks.landmarks`).

Everything random is keyed by ``(seed, step)``: model init by ``cfg.seed``, batches by
the sources' own seeds and the step, augmentation and dropout by
``step_seed(cfg.seed, step, stream)``. So a run resumed from ``last.pt`` at step ``k``
is bit-for-bit the uninterrupted run on CPU (the optimiser state is in the checkpoint),
and no sampler or generator state needs saving.

:func:`train` adds evaluation, label-free checkpoint selection, checkpoints, resume and
Ctrl-C handling, and reports through ``callback(step, metrics)`` (how MLflow reaches the
loop); it prints nothing. It reads top to bottom as three parts: restore or initialise
(:func:`_restore_or_init`), the step, and evaluate-and-select (:class:`_Progress`).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from models.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from models.data import BatchSource, step_seed
from models.ema import WeightEMA
from models.evaluate import evaluate
from models.precision import cpu_has_native_bf16, use_bf16
from models.registry import create_method, create_model, create_task
from models.schedules import grl_coeff, warmup_cosine
from models.tasks.base import Task
from models.train_config import RESUME_FREE, TrainConfig, upgrade_config

__all__ = [
    "TrainConfig",
    "TrainResult",
    "build",
    "lr_at",
    "make_optimizer",
    "train",
    "train_step",
]

# random streams derived from (cfg.seed, step); the sources use their own seeds
AUG_STREAM = 1
MODEL_RNG_STREAM = 2

@dataclass
class TrainResult:
    steps: int  # the step the run ended at (== cfg.steps when complete)
    final_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_step: int | None
    best_score: float | None
    checkpoint_dir: Path
    samples_per_s: float  # source + target images per second through data + train_step


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


def _mixed_precision(cfg: TrainConfig, device: torch.device, announce: str | None = None) -> bool:
    """bf16 autocast and channels_last: ``amp`` on a GPU, ``cpu_amp`` on a CPU with native
    bf16 (:mod:`models.precision`; ``announce`` names the work in the one log line said
    when a CPU without it trains in float32 instead)."""
    if device.type == "cuda":
        return cfg.amp
    if device.type != "cpu" or not cfg.cpu_amp:
        return False
    return use_bf16(device, True, announce) if announce else cpu_has_native_bf16()


def _autocast(cfg: TrainConfig, device: torch.device):
    if _mixed_precision(cfg, device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
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
    if _mixed_precision(cfg, device):
        x = x.contiguous(memory_format=torch.channels_last)

    model.train()
    method.train()
    with _model_rng(cfg.seed, step, device):
        with _autocast(cfg, device):
            out = model(x)
            feats = method.features_of(out)
            f_s, f_t = feats.split([n_s, x.shape[0] - n_s])
            src = type(out)(*(t[:n_s] for t in out))
            task_losses = task.loss(model, src, labels, cfg)
            transfer, diag = method.transfer_loss(model, f_s, f_t, coeff, labels=labels,
                                                  outputs=out)
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
    now = {k: v for k, v in _plain(cfg.to_dict()).items() if k not in RESUME_FREE}
    # fields added since the checkpoint was written read as their defaults (task="gaze")
    then = {k: v for k, v in _plain({**TrainConfig.defaults(), **upgrade_config(saved)}).items()
            if k not in RESUME_FREE}
    diff = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if diff:
        detail = ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise ValueError(f"{path}: written by a different training config ({detail}); "
                         "pass resume=False or use another out_dir")


_LAST_VALUE = ("lr", "grl_coeff")  # schedules: report the value at the log step, not a mean


@dataclass
class _Progress:
    """What a run accumulates between checkpoints: the history of logged records, the
    best selection score so far, and the train metrics summed since the last record."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int | None = None
    best_score: float | None = None
    window: dict[str, float] = field(default_factory=dict)
    window_n: int = 0

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.window[k] = v if k in _LAST_VALUE else self.window.get(k, 0.0) + v
        self.window_n += 1

    def record(self, step: int) -> dict[str, float]:
        """The window's means (schedules: their last value) as the record for ``step``."""
        rec: dict[str, float] = {"step": step}
        rec.update({k: v if k in _LAST_VALUE else v / self.window_n for k, v in self.window.items()})
        return rec

    def close(self, record: dict[str, float]) -> None:
        self.history.append(record)
        self.window, self.window_n = {}, 0

    def improved(self, step: int, score: float | None, mode: str) -> bool:
        """Whether ``score`` beats the best so far (then it becomes the best)."""
        if score is None or not math.isfinite(score):
            return False
        if self.best_score is not None and not (
                score < self.best_score if mode == "min" else score > self.best_score):
            return False
        self.best_step, self.best_score = step, float(score)
        return True

    def extra(self, select: str) -> dict[str, Any]:
        return {"history": self.history, "best_step": self.best_step,
                "best_score": self.best_score, "window": self.window,
                "window_n": self.window_n, "select": select}

    @classmethod
    def from_extra(cls, ex: dict[str, Any]) -> _Progress:
        return cls(list(ex.get("history", [])), ex.get("best_step"), ex.get("best_score"),
                   dict(ex.get("window", {})), int(ex.get("window_n", 0)))


def _restore_or_init(cfg: TrainConfig, model: nn.Module, method: nn.Module,
                     opt: torch.optim.Optimizer, out_dir: Path, device: torch.device, *,
                     resume: bool, init_weights: str | Path | None,
                     ema: WeightEMA | None) -> tuple[int, _Progress]:
    """``(start step, progress)``: continued from ``out_dir/last.pt`` when resuming (its
    config must match), else a fresh run (old checkpoints removed), warm-started from
    ``init_weights`` when given. The weight average, if any, is restored or restarted
    at the model's weights."""
    last_path = out_dir / LAST
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path, map_location=device)
        _check_resumable(cfg, ck["train_config"], last_path)
        model.load_state_dict(ck.get("online_state", ck["model_state"]))
        if ema is not None:
            ema.model.load_state_dict(ck["model_state"])
        method.load_state_dict(ck["method_state"])
        if ck.get("optimizer_state") is None:
            raise ValueError(f"{last_path}: has no optimiser state; cannot resume")
        opt.load_state_dict(ck["optimizer_state"])
        return int(ck["step"]), _Progress.from_extra(ck.get("extra", {}))
    for p in (last_path, out_dir / BEST):
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
    if ema is not None:
        ema.copy_from(model)
    return 0, _Progress()


def _check_sources(cfg: TrainConfig, method: nn.Module, source: BatchSource,
                   target: BatchSource | None, val_source: Any, val_target: Any) -> tuple[str, str]:
    """The selection ``(metric, mode)``, after checking that the sources and validation
    batches fit the config."""
    metric, mode = create_task(cfg.task).selectors[cfg.select]
    if metric.startswith("target_") and val_target is None:
        raise ValueError(f"select={cfg.select!r} needs val_target (unlabeled target images)")
    if metric.startswith("source_") and val_source is None:
        raise ValueError(f"select={cfg.select!r} needs val_source")
    if method.needs_target and target is None:
        raise ValueError(f"method {cfg.method!r} needs a target source")
    for src, want, what in ((source, cfg.batch_size, "source"), (target, cfg.target_batch, "target")):
        have = getattr(src, "batch_size", None)
        if src is not None and have is not None and have != want:
            raise ValueError(f"{what} source has batch_size {have}, config says {want}")
    return metric, mode


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
    model, method = build(cfg)
    metric, mode = _check_sources(cfg, method, source, target, val_source, val_target)
    model.to(device)
    method.to(device)
    if _mixed_precision(cfg, device, announce=f"{cfg.task} training"):
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, method, cfg)
    train_cfg = cfg.to_dict()
    ema = WeightEMA(model, cfg.ema) if cfg.ema is not None else None
    step, progress = _restore_or_init(cfg, model, method, opt, out_dir, device, resume=resume,
                                      init_weights=init_weights, ema=ema)
    # what is evaluated, selected and saved as the model: the weight average when there is one
    served = ema.model if ema is not None else model
    out_dir.mkdir(parents=True, exist_ok=True)
    saved_at = step if step > 0 else -1

    def save_last() -> int:
        save_checkpoint(out_dir / LAST, served, opt, method, step, train_cfg,
                        progress.extra(cfg.select),
                        metrics=progress.history[-1] if progress.history else {},
                        online_state=model.state_dict() if ema is not None else None)
        return step

    t_train, n_seen, in_step = 0.0, 0, False
    try:
        with _InterruptGuard() as guard:
            while step < cfg.steps:
                t0 = time.perf_counter()
                in_step = True
                bs = source.batch(step)
                bt = target.batch(step) if (method.needs_target and target is not None) else None
                progress.add(train_step(model, method, opt, bs, bt, step, cfg))
                if ema is not None:
                    ema.update(model, step)
                step += 1
                in_step = False
                t_train += time.perf_counter() - t0
                n_seen += bs["image"].shape[0] + (bt["image"].shape[0] if bt is not None else 0)

                is_eval = step % cfg.eval_every == 0 or step == cfg.steps
                if is_eval or step % cfg.log_every == 0:
                    record = progress.record(step)
                    if is_eval:
                        record.update(evaluate(served, val_source, val_target, amp=cfg.amp,
                                               task=cfg.task))
                        if progress.improved(step, record.get(metric), mode):
                            save_checkpoint(out_dir / BEST, served, None, method, step, train_cfg,
                                            {"select": cfg.select, "best_score": progress.best_score},
                                            metrics=record)
                    progress.close(record)
                    if callback is not None:
                        callback(step, dict(record))
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    saved_at = save_last()
                if guard.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        # between steps the state is consistent: keep it so that resume continues exactly
        if not in_step and saved_at != step:
            save_last()
        raise

    return TrainResult(
        steps=step,
        final_metrics=dict(progress.history[-1]) if progress.history else {},
        history=progress.history,
        best_step=progress.best_step,
        best_score=progress.best_score,
        checkpoint_dir=out_dir,
        samples_per_s=n_seen / t_train if t_train > 0 else 0.0,
    )
