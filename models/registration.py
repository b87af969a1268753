"""The mechanics of the name registries (timm style): a :class:`Registry` per kind and the
decorators that fill them. Component modules (models, DA methods, tasks) import only
this module, so registering never pulls in anything else; :mod:`models.registry` loads
the built-in components and is where callers create and list them.

Examples::

    >>> @register_model("tiny")
    ... def tiny(**cfg): return TinyNet(**cfg)
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from realdata.errors import UnknownNameError

__all__ = ["METHODS", "MODELS", "TASKS", "Registry", "register_method", "register_model",
           "register_task"]

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
            raise UnknownNameError(f"unknown {self.kind} {name!r}")
        return dict(self._tags.get(name, {}))

    def create(self, name: str, **cfg: Any) -> Any:
        try:
            builder = self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered: {known}") from None
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


MODELS = Registry("model")
METHODS = Registry("method")
TASKS = Registry("task")


def register_model(name: str, task: str = "gaze") -> Callable[[F], F]:
    """Register a model builder ``fn(**cfg) -> nn.Module`` under ``name`` for ``task``."""
    return MODELS.register(name, task=task)


def register_method(name: str, *, needs_target: bool,
                    tasks: tuple[str, ...] | None = None) -> Callable[[F], F]:
    """Register a domain-adaptation method builder ``fn(**cfg) -> DAMethod``;
    ``needs_target``: whether it trains on unlabeled target images (its instances say the
    same; the tag lets callers ask without building one); ``tasks``: the training tasks it
    serves (None: every task)."""
    return METHODS.register(name, needs_target=needs_target, tasks=tasks)


def register_task(name: str) -> Callable[[F], F]:
    """Register a training task (``fn() -> Task``: loss, labels, augmentation, metrics;
    see :mod:`models.tasks.base`) under ``name``."""
    return TASKS.register(name)
