"""Name registries for models and domain-adaptation methods (timm style).

Flows, Optuna and tests pick components by string: ``create_model("gaze_resnet_s")``,
``create_method("dann", feature_dim=128)``. A builder is registered with a decorator
next to its definition; registering fills an in-process dict and does nothing else.

Models carry a ``task`` tag (``"gaze"``, ``"landmarks"``, ``"label_transfer"``):
``create_model`` finds any name, ``list_models(task=...)`` lists one task's models. The
default, ``task="gaze"``, matches :class:`~models.train.TrainConfig`'s default task and
keeps registry-parametrised gaze tests on gaze models; ``task=None`` lists all.

Examples::

    >>> @register_model("tiny")
    ... def tiny(**cfg): return TinyNet(**cfg)
    >>> model = create_model("tiny", width=8)
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "Registry",
    "create_method",
    "create_model",
    "create_task",
    "list_methods",
    "list_models",
    "list_tasks",
    "model_task",
    "register_method",
    "register_model",
    "register_task",
]

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """A named collection of builder functions: ``name -> callable(**cfg)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}
        self._tags: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **tags: Any) -> Callable[[F], F]:
        """Decorator: register ``fn`` under ``name`` with optional ``tags`` (e.g.
        ``task="landmarks"``). Re-registering warns and replaces, as timm does, so a
        reloaded module does not break the process."""

        def deco(fn: F) -> F:
            if name in self._builders and self._builders[name] is not fn:
                warnings.warn(f"{self.kind} {name!r} registered twice; the later one wins",
                              stacklevel=2)
            self._builders[name] = fn
            self._tags[name] = dict(tags)
            return fn

        return deco

    def tags(self, name: str) -> dict[str, Any]:
        """The tags ``name`` was registered with (``{}`` if none); KeyError if unknown."""
        if name not in self._builders:
            raise KeyError(f"unknown {self.kind} {name!r}")
        return dict(self._tags.get(name, {}))

    def create(self, name: str, **cfg: Any) -> Any:
        try:
            builder = self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None
        return builder(**cfg)

    def names(self, pattern: str | None = None, **tags: Any) -> list[str]:
        """Sorted names matching the glob ``pattern`` and having every given tag value
        (a tag given as None is not filtered on)."""
        names = sorted(n for n in self._builders
                       if all(v is None or self._tags.get(n, {}).get(k) == v
                              for k, v in tags.items()))
        return names if pattern is None else fnmatch.filter(names, pattern)

    def __contains__(self, name: str) -> bool:
        return name in self._builders


_MODELS = Registry("model")
_METHODS = Registry("method")
_TASKS = Registry("task")


def register_model(name: str, task: str = "gaze") -> Callable[[F], F]:
    """Register a model builder ``fn(**cfg) -> nn.Module`` under ``name`` for ``task``."""
    return _MODELS.register(name, task=task)


def create_model(name: str, **cfg: Any) -> Any:
    """Build the model registered as ``name``; ``cfg`` overrides its defaults.

    ``create_model(name, **model.config)`` rebuilds a model from its own config.
    """
    return _MODELS.create(name, **cfg)


def list_models(pattern: str | None = None, task: str | None = "gaze") -> list[str]:
    """Registered model names of ``task`` (all tasks if None), sorted; ``pattern`` is a
    shell glob (``"gaze_*"``)."""
    return _MODELS.names(pattern, task=task)


def model_task(name: str) -> str:
    """The task a registered model serves (``"gaze"``, ``"landmarks"``...)."""
    return _MODELS.tags(name)["task"]


def register_method(name: str) -> Callable[[F], F]:
    """Register a domain-adaptation method builder ``fn(**cfg) -> DAMethod``."""
    return _METHODS.register(name)


def create_method(name: str, **cfg: Any) -> Any:
    """Build the DA method registered as ``name`` (``source_only``, ``dann``, ``daln``...)."""
    return _METHODS.create(name, **cfg)


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered DA method names, sorted."""
    return _METHODS.names(pattern)


def register_task(name: str) -> Callable[[F], F]:
    """Register a training task (``fn() -> Task``: loss, labels, augmentation, metrics;
    see :mod:`models.train`) under ``name``."""
    return _TASKS.register(name)


def create_task(name: str) -> Any:
    """The task registered as ``name`` (``"gaze"``, ``"landmarks"``)."""
    return _TASKS.create(name)


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return _TASKS.names()
