"""Turning caller values into what the catalog stores, and rows into plain dicts.

Values are normalised *before* they are stored or compared, so that re-adding the same
thing is recognised as the same: tuples become lists, numpy scalars and arrays become
Python numbers and lists, dict keys become strings, exactly as a JSON round trip would
leave them. Non-finite floats (NaN, inf) become None: strict JSON has no spelling for them
and PostgreSQL's ``json`` type refuses them; "no value" is what they mean in a metric.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect

from catalog.errors import CatalogError


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset; SQLite hands back naive datetimes, which the catalog wrote as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, without importing numpy
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def jsonable(value: Any, what: str) -> Any:
    """``value`` as it reads back after storing as JSON; CatalogError naming ``what`` if it
    cannot be stored."""
    try:
        text = json.dumps(value, default=_default)
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{what} cannot be stored as JSON: {exc}") from None
    return _finite(json.loads(text))


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form the synth package hashes distributions in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def finite_or_none(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CatalogError(f"{what} must be a number, got {value!r}") from None
    return number if math.isfinite(number) else None


def row_dict(obj: Any) -> dict[str, Any]:
    """A mapped object's columns as a plain, JSON-able dict (datetimes as ISO strings)."""
    out: dict[str, Any] = {}
    for attr in inspect(type(obj)).column_attrs:
        value = getattr(obj, attr.key)
        out[attr.key] = iso(value) if isinstance(value, datetime) else value
    return out
