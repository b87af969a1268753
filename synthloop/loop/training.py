"""Training inside a round, the same for every task: the round's seed and schedule,
warm-started from the previous round's model, resumed from the round's own ``last.pt``
after an interruption, reporting into the round's MLflow run."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from synthloop.errors import UsageError
from synthloop.loop.config import LoopConfig
from synthloop.loop.rounds import round_dir, round_seed
from synthloop.runs import final_metrics
from synthloop.settings import Settings

__all__ = ["check_device", "round_train_config", "train_in_round"]


def round_train_config(cfg: LoopConfig, k: int, device: str = "cpu", **task_fields: Any):
    """The round's :class:`~models.train.TrainConfig`: ``steps_per_round`` steps, one
    evaluation at the end, checkpoints every quarter (at least 50 steps), on ``device``
    (the process's ``SYNTHLOOP_DEVICE``), the task's fields (``task``, ``model_kwargs``,
    ``select``...) on top."""
    from models.train import TrainConfig

    check_device(device)
    return TrainConfig(**{
        "model": cfg.model, "method": cfg.method, "steps": cfg.steps_per_round,
        "batch_size": cfg.batch_size, "seed": round_seed(cfg, k, 1), "device": device,
        "warmup": min(100, cfg.steps_per_round // 5), "eval_every": cfg.steps_per_round,
        "ckpt_every": max(50, cfg.steps_per_round // 4), **task_fields})


def check_device(device: str) -> None:
    """A round asked to train on a device this process lacks fails at once, saying why
    (a gpu pool worker on a host without a usable CUDA device)."""
    import torch

    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise UsageError(f"SYNTHLOOP_DEVICE={device!r}: rounds train on cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(f"SYNTHLOOP_DEVICE={device}: this process sees no CUDA device "
                         f"({socket.gethostname()}); run gpu pool workers on a GPU host")


def train_in_round(settings: Settings, *, lid: str, k: int, train_config: Any, source: Any,
                   target: Any, val_source: Any, val_target: Any, init_from: str | None,
                   mlflow_run_id: str | None, report: Callable[[str], None] | None = None,
                   label: str = "train") -> dict[str, Any]:
    """Train into ``<round>/model``; returns ``checkpoint``, ``train_config``, ``metrics``
    and ``samples_per_s``. ``report`` gets a few progress lines (:mod:`synthloop.progress`),
    each starting with ``label``."""
    from models.train import train
    from synthloop.progress import chain, images_per_step, training_progress

    out = round_dir(settings, lid, k) / "model"
    logger = None
    if mlflow_run_id:
        from synthloop.tracking import MetricLogger

        logger = MetricLogger(mlflow_run_id)
    shown = None
    if report is not None:
        shown = training_progress(report, train_config.steps, images_per_step(train_config), label)
    result = train(train_config, source, target, out, val_source=val_source,
                   val_target=val_target, callback=chain(logger, shown), resume=True,
                   init_weights=init_from)
    return {"checkpoint": str(out / "last.pt"), "train_config": train_config.to_dict(),
            "metrics": final_metrics(result), "samples_per_s": float(result.samples_per_s)}
