"""Config dataclass helpers shared by models and training."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any]) -> T:
    """Build a config dataclass from a dict, refusing unknown keys: a typo in a saved or
    hand-written config must fail loudly, not be ignored."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise TypeError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**d)
