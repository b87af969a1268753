"""Name registries for models and domain-adaptation methods (timm style).

Flows, Optuna and tests pick components by string: ``create_model("gaze_resnet_s")``,
``create_method("dann", feature_dim=128)``. A builder is registered with a decorator
next to its definition; registering fills an in-process dict and does nothing else.

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
    "list_methods",
    "list_models",
    "register_method",
    "register_model",
]

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """A named collection of builder functions: ``name -> callable(**cfg)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register ``fn`` under ``name``. Re-registering warns and replaces,
        as timm does, so a reloaded module does not break the process."""

        def deco(fn: F) -> F:
            if name in self._builders and self._builders[name] is not fn:
                warnings.warn(f"{self.kind} {name!r} registered twice; the later one wins",
                              stacklevel=2)
            self._builders[name] = fn
            return fn

        return deco

    def create(self, name: str, **cfg: Any) -> Any:
        try:
            builder = self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None
        return builder(**cfg)

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self._builders)
        return names if pattern is None else fnmatch.filter(names, pattern)

    def __contains__(self, name: str) -> bool:
        return name in self._builders


_MODELS = Registry("model")
_METHODS = Registry("method")


def register_model(name: str) -> Callable[[F], F]:
    """Register a model builder ``fn(**cfg) -> nn.Module`` under ``name``."""
    return _MODELS.register(name)


def create_model(name: str, **cfg: Any) -> Any:
    """Build the model registered as ``name``; ``cfg`` overrides its defaults.

    ``create_model(name, **model.config)`` rebuilds a model from its own config.
    """
    return _MODELS.create(name, **cfg)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell glob (``"gaze_*"``)."""
    return _MODELS.names(pattern)


def register_method(name: str) -> Callable[[F], F]:
    """Register a domain-adaptation method builder ``fn(**cfg) -> DAMethod``."""
    return _METHODS.register(name)


def create_method(name: str, **cfg: Any) -> Any:
    """Build the DA method registered as ``name`` (``source_only``, ``dann``, ``daln``...)."""
    return _METHODS.create(name, **cfg)


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered DA method names, sorted."""
    return _METHODS.names(pattern)
