"""The interface a training task implements; :func:`models.train.train` and
:func:`models.predict.evaluate` reach every task-specific decision through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = ["Task"]


class Task(Protocol):
    """What the loop needs to know about a task; registered with ``register_task(name)``.

    ``check_config`` refuses configs the task cannot run (its ``task_kwargs``, the
    selector); ``labels`` picks the label tensors from a source batch (on the device);
    ``augment(x, labels, gen, cfg)`` augments the (source + target) images and moves the
    source labels along if geometry changes them; ``loss(model, out, labels, cfg)``
    returns named losses with the total under ``loss_key``; ``train_metrics`` the metrics
    on the training batch; ``evaluate`` the eval dict; ``selectors`` maps selection names
    to ``(eval key, "min" | "max")``.
    """

    name: str
    loss_key: str
    selectors: Mapping[str, tuple[str, str]]
    eval_chunk: int

    def check_config(self, cfg: Any) -> None: ...

    def labels(self, batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]: ...

    def augment(self, x: Tensor, labels: dict[str, Tensor], gen: torch.Generator,
                cfg: Any) -> tuple[Tensor, dict[str, Tensor]]: ...

    def loss(self, model: nn.Module, out: Any, labels: dict[str, Tensor],
             cfg: Any) -> dict[str, Tensor]: ...

    def train_metrics(self, model: nn.Module, out: Any,
                      labels: dict[str, Tensor]) -> dict[str, Tensor]: ...

    def evaluate(self, model: nn.Module, val_source: Mapping[str, Tensor] | None,
                 val_target: Mapping[str, Tensor] | None, *, amp: bool,
                 chunk: int) -> dict[str, float]: ...
