"""Run-form fields: what the Prefect dashboard shows as a plain input.

The dashboard turns an optional field (``str | None``) into a type toggle; these fields
are plain strings, numbers or objects whose empty value ("", 0, {}) means "the built-in
default". Python callers may still pass None for that: it is read as the empty value.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["EmptyDict", "EmptyText", "ZeroInt", "none_as"]


def none_as(empty: Any) -> BeforeValidator:
    """Read None as ``empty`` (the form's own way of saying "not given")."""
    return BeforeValidator(lambda v: copy.copy(empty) if v is None else v)


EmptyText = Annotated[str, none_as("")]
ZeroInt = Annotated[int, none_as(0)]
EmptyDict = Annotated[dict[str, Any], none_as({})]
