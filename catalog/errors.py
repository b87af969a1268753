"""Errors the catalog raises. Each message names the row (kind and id) or the database
(URL without password, or file) and says what is wrong, so a person can act on it."""

from __future__ import annotations

from realdata.errors import SynthloopError


class CatalogError(SynthloopError):
    """Anything the catalog cannot do: a bad URL, an unreadable database, a missing row,
    a forbidden status change."""


class CatalogNotFound(CatalogError):
    """A row the call needs (the row itself, or one it references) is not in the catalog."""

    def __init__(self, kind: str, id: str, problem: str = "not in the catalog"):
        self.kind, self.id = kind, id
        super().__init__(f"{kind} {id!r}: {problem}")


class CatalogConflict(CatalogError):
    """A row with this id already exists with different content.

    Ids are content hashes or caller-chosen names, so two different rows under one id
    means a bug upstream (or two writers disagreeing); the catalog never overwrites.
    """

    def __init__(self, kind: str, id: str, fields: dict[str, tuple[object, object]]):
        self.kind, self.id, self.fields = kind, id, fields
        diffs = "; ".join(f"{name}: existing {_short(old)}, new {_short(new)}"
                          for name, (old, new) in fields.items())
        super().__init__(f"{kind} {id!r} already exists with different content ({diffs})")


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
