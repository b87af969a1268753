"""Metrics of a model on fixed validation batches, through its task."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.registry import create_task
from models.tasks.base import Task

__all__ = ["evaluate", "task_of"]


def task_of(model: nn.Module) -> str:
    """The task a model instance serves (its ``task`` attribute; gaze models have none)."""
    return getattr(model, "task", "gaze")


@torch.no_grad()
def evaluate(model: nn.Module, val_source: dict[str, Tensor] | None = None,
             val_target: dict[str, Tensor] | None = None, *, amp: bool = True,
             chunk: int | None = None, task: str | None = None) -> dict[str, float]:
    """The task's metrics (:meth:`models.tasks.base.Task.evaluate`) with the model in eval
    mode (running BN statistics), restoring its mode afterwards. ``task`` defaults to the
    model's own (:func:`task_of`); ``chunk`` to the task's."""
    t: Task = create_task(task or task_of(model))
    was_training = model.training
    model.eval()
    try:
        return t.evaluate(model, val_source, val_target, amp=amp, chunk=chunk or t.eval_chunk)
    finally:
        model.train(was_training)
