"""Training inside a round, the same for every task: the round's seed and schedule,
warm-started from the previous round's model, resumed from the round's own ``last.pt``
after an interruption, reporting into the round's MLflow run."""

from __future__ import annotations

from typing import Any

from synthloop.loop.config import LoopConfig
from synthloop.loop.rounds import round_dir, round_seed
from synthloop.runs import final_metrics
from synthloop.settings import Settings

__all__ = ["round_train_config", "train_in_round"]


def round_train_config(cfg: LoopConfig, k: int, **task_fields: Any):
    """The round's :class:`~models.train.TrainConfig`: ``steps_per_round`` steps, one
    evaluation at the end, checkpoints every quarter (at least 50 steps), the task's
    fields (``task``, ``model_kwargs``, ``select``...) on top."""
    from models.train import TrainConfig

    return TrainConfig(**{
        "model": cfg.model, "method": cfg.method, "steps": cfg.steps_per_round,
        "batch_size": cfg.batch_size, "seed": round_seed(cfg, k, 1),
        "warmup": min(100, cfg.steps_per_round // 5), "eval_every": cfg.steps_per_round,
        "ckpt_every": max(50, cfg.steps_per_round // 4), **task_fields})


def train_in_round(settings: Settings, *, lid: str, k: int, train_config: Any, source: Any,
                   target: Any, val_source: Any, val_target: Any, init_from: str | None,
                   mlflow_run_id: str | None) -> dict[str, Any]:
    """Train into ``<round>/model``; returns ``checkpoint``, ``train_config``, ``metrics``
    and ``samples_per_s``."""
    from models.train import train

    out = round_dir(settings, lid, k) / "model"
    callback = None
    if mlflow_run_id:
        from synthloop.tracking import MetricLogger

        callback = MetricLogger(mlflow_run_id)
    result = train(train_config, source, target, out, val_source=val_source,
                   val_target=val_target, callback=callback, resume=True, init_weights=init_from)
    return {"checkpoint": str(out / "last.pt"), "train_config": train_config.to_dict(),
            "metrics": final_metrics(result), "samples_per_s": float(result.samples_per_s)}
