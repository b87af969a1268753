"""Built-in models, domain-adaptation methods and training tasks, created and listed by
name (timm style): ``create_model("gaze_resnet_s")``, ``create_method("dann",
feature_dim=128)``, ``create_task("landmarks")``.

Importing this module loads every built-in component, which registers itself with a
decorator of :mod:`models.registration` next to its definition. Models carry a ``task``
tag (``"gaze"``, ``"landmarks"``, ``"label_transfer"``): ``create_model`` finds any name,
``list_models(task=...)`` lists one task's models (default ``"gaze"``, ``None`` = all).

The names the command line and the flows offer without importing torch are in
:mod:`models.names`; a test keeps them equal to what is registered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import models.da_losses  # noqa: F401  registers the DA methods
import models.gaze_net  # noqa: F401  registers the gaze models
import models.hourglass  # noqa: F401  registers the landmark models
import models.iwdan  # noqa: F401  registers IWDAN
import models.label_transfer  # noqa: F401  registers the label-transfer net
import models.landmark_patch  # noqa: F401  registers the face-aligned mean patch
import models.landmark_resnet  # noqa: F401  registers the CPU-sized landmark models
import models.mean_patch  # noqa: F401  registers the mean-patch refiner
import models.patch_discriminator  # noqa: F401  registers the SimGAN discriminator
import models.pose_mean_patch_refiner  # noqa: F401  registers the per-pose mean patch
import models.real_context  # noqa: F401  registers faces set into real photographs
import models.refiner  # noqa: F401  registers the SimGAN refiner
import models.rsd  # noqa: F401  registers RSD
import models.tasks.gaze  # noqa: F401  registers the gaze task
import models.tasks.landmarks  # noqa: F401  registers the landmark task
from models.checkpoint import load_checkpoint, resolve_checkpoint
from models.registration import (
    METHODS,
    MODELS,
    TASKS,
    Registry,
    register_method,
    register_model,
    register_task,
)
from realdata.errors import DataFormatError

__all__ = [
    "Registry",
    "create_method",
    "create_model",
    "create_task",
    "list_methods",
    "list_models",
    "list_tasks",
    "load_model",
    "method_needs_target",
    "method_serves",
    "model_from_checkpoint",
    "model_input_size",
    "model_task",
    "register_method",
    "register_model",
    "register_task",
]


def create_model(name: str, **cfg: Any) -> Any:
    """Build the model registered as ``name``; ``cfg`` overrides its defaults.

    ``create_model(name, **model.config)`` rebuilds a model from its own config.
    """
    return MODELS.create(name, **cfg)


def list_models(pattern: str | None = None, task: str | None = "gaze") -> list[str]:
    """Registered model names of ``task`` (all tasks if None), sorted; ``pattern`` is a
    shell glob (``"gaze_*"``)."""
    return MODELS.names(pattern, task=task)


def model_task(name: str) -> str:
    """The task a registered model serves (``"gaze"``, ``"landmarks"``...)."""
    return MODELS.tags(name)["task"]


def model_input_size(name: str, **cfg: Any) -> int | None:
    """The crop size in pixels that model ``name`` (with ``cfg``) is trained and served
    at, its ``input_size``; None for a model without one. Builds the model once to ask,
    without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        size = getattr(create_model(name, **cfg), "input_size", None)
    return None if size is None else int(size)


def create_method(name: str, **cfg: Any) -> Any:
    """Build the DA method registered as ``name`` (``source_only``, ``dann``, ``daln``...)."""
    return METHODS.create(name, **cfg)


def method_needs_target(name: str) -> bool:
    """Whether the method trains on unlabeled target images (without building it)."""
    return bool(METHODS.tags(name)["needs_target"])


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered DA method names, sorted."""
    return METHODS.names(pattern)


def method_serves(name: str, task: str) -> bool:
    """Whether DA method ``name`` can train a ``task`` model."""
    tasks = METHODS.tags(name).get("tasks")
    return tasks is None or task in tasks


def create_task(name: str) -> Any:
    """The task registered as ``name`` (``"gaze"``, ``"landmarks"``)."""
    return TASKS.create(name)


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return TASKS.names()


def load_model(path_or_dir: str | Path, map_location: str | torch.device = "cpu", *,
               task: str | None = None) -> nn.Module:
    """Rebuild the model from a checkpoint (or a run folder: ``best.pt``, else
    ``last.pt``), load its weights and return it in eval mode. ``task`` (``"gaze"``,
    ``"landmarks"``...): refuse a checkpoint of another task's model."""
    path = resolve_checkpoint(path_or_dir)
    return model_from_checkpoint(load_checkpoint(path, map_location=map_location), path,
                                 map_location, task=task)


def model_from_checkpoint(ck: dict[str, Any], path: Path, map_location: str | torch.device = "cpu",
                          *, task: str | None = None) -> nn.Module:
    """:func:`load_model` from a checkpoint already read from ``path`` (named in errors),
    for a caller that needs more of the checkpoint than the model."""
    try:
        model = create_model(ck["model_name"], **ck["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(path, f"cannot rebuild model {ck['model_name']!r} ({e})") from None
    if task is not None and model_task(ck["model_name"]) != task:
        raise DataFormatError(path, f"a {model_task(ck['model_name'])} model "
                                    f"({ck['model_name']}), not a {task} model")
    try:
        model.load_state_dict(ck["model_state"])
    except RuntimeError as e:
        raise DataFormatError(path, f"weights do not fit model {ck['model_name']!r} ({e})") from None
    return model.to(map_location).eval()
