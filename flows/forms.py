"""Run-form fields: what the Prefect dashboard shows as a plain input.

The dashboard turns an optional field (``str | None``) into a type toggle; these fields
are plain strings, numbers or objects whose empty value ("", 0, {}) means "the built-in
default". Python callers may still pass None for that: it is read as the empty value.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

__all__ = ["EmptyDict", "EmptyText", "EyeSide", "ZeroInt", "eye_side", "none_as"]


def none_as(empty: Any) -> BeforeValidator:
    """Read None as ``empty`` (the form's own way of saying "not given")."""
    return BeforeValidator(lambda v: copy.copy(empty) if v is None else v)


EmptyText = Annotated[str, none_as("")]
ZeroInt = Annotated[int, none_as(0)]
EmptyDict = Annotated[dict[str, Any], none_as({})]
#: an eye side to mirror onto the other ("L" or "R"), or "none"
EyeSide = Annotated[Literal["none", "L", "R"], none_as("none")]


def eye_side(value: str) -> str | None:
    """An :data:`EyeSide` field's value as the jobs take it: None for "none"."""
    return None if value == "none" else value
