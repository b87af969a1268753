"""Row-level write rules shared by every ``Catalog`` method.

* :func:`insert_new` + :func:`check_same`: insert unless the id exists, else compare, so a
  re-add of identical content is a no-op and a different one a :class:`CatalogConflict`;
* :func:`fill_links`: nullable links are written once, never changed;
* :func:`check_move` with the ``*_NEXT`` tables: statuses only move forward.

Every function takes the open write session; none commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog.errors import CatalogConflict, CatalogError, CatalogNotFound
from catalog.schema import (
    ROUND_STATUSES,
    Analysis,
    Base,
    Batch,
    Distribution,
    Loop,
    LoopRound,
    TrainingRun,
    training_run_batches,
)
from catalog.values import now, row_dict

# Allowed status changes (besides repeating the current one).
BATCH_NEXT = {"pending": {"accepted", "quarantined"}, "accepted": {"quarantined"},
              "quarantined": set()}
RUN_NEXT = {"running": {"finished", "failed"}, "finished": set(), "failed": set()}
LOOP_NEXT = {"running": {"finished", "failed"}, "failed": {"running"}, "finished": set()}
ROUND_FIELDS = ("distribution_id", "batch_id", "run_id", "analysis_id", "real_error",
                "mlflow_run_id", "status")
ROUND_LINKS = {"distribution_id": Distribution, "batch_id": Batch, "run_id": TrainingRun,
               "analysis_id": Analysis}

KINDS: dict[type[Base], str] = {Distribution: "distribution", Batch: "batch",
                                TrainingRun: "training run", Analysis: "analysis", Loop: "loop"}


def insert_new(s: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT unless the primary key exists; True when this call inserted the row."""
    dialect = s.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING rather than rowcount: psycopg reports -1 for this statement.
    key = next(iter(table.primary_key.columns))
    stmt = dialect_insert(table).values(**values).on_conflict_do_nothing().returning(key)
    return s.execute(stmt).first() is not None


def stored(s: Session, model: type[Base], id: str) -> Any:
    """The committed row (after an insert that did nothing, so it exists)."""
    row = s.get(model, id, populate_existing=True)
    if row is None:  # only if another writer deletes rows, which the catalog never does
        raise CatalogNotFound(KINDS[model], id, "neither inserted nor found")
    return row


def locked(s: Session, model: type[Base], id: str, kind: str) -> Any:
    """The row, locked for this transaction (SELECT .. FOR UPDATE on PostgreSQL)."""
    row = s.get(model, id, with_for_update=True, populate_existing=True)
    if row is None:
        raise CatalogNotFound(kind, id)
    return row


def require(s: Session, model: type[Base], id: str, role: str) -> None:
    if s.get(model, id) is None:
        raise CatalogNotFound(KINDS[model], id, f"not in the catalog (needed as the {role})")


def fields_of(row: Any, like: Mapping[str, Any]) -> dict[str, Any]:
    return {key: getattr(row, key) for key in like}


def check_same(kind: str, id: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    diffs = {key: (old[key], new[key]) for key in new if old[key] != new[key]}
    if diffs:
        raise CatalogConflict(kind, id, diffs)


def fill_links(s: Session, model: type[Base], kind: str, row: Any,
               links: Mapping[str, Any]) -> None:
    """Write-once links: set the ones still empty, refuse to change the others."""
    changes = {key: value for key, value in links.items()
               if value is not None and getattr(row, key) is None}
    diffs = {key: (getattr(row, key), value) for key, value in links.items()
             if value is not None and getattr(row, key) not in (None, value)}
    if diffs:
        raise CatalogConflict(kind, row.id, diffs)
    if changes:
        if hasattr(model, "updated_at"):
            changes["updated_at"] = now()
        s.execute(update(model).where(model.id == row.id).values(**changes))


def update_round(s: Session, row: LoopRound, where: str, fields: Mapping[str, Any]) -> None:
    changes: dict[str, Any] = {}
    diffs: dict[str, tuple[object, object]] = {}
    for key, value in fields.items():
        old = getattr(row, key)
        if key == "status":
            if ROUND_STATUSES.index(value) < ROUND_STATUSES.index(old):
                raise CatalogError(f"{where}: status cannot go back from {old!r} to {value!r}")
            if value != old:
                changes[key] = value
        elif key == "real_error":
            if value != old:
                changes[key] = value
        elif value is not None and old is None:
            changes[key] = value
        elif (key == "batch_id" and value is not None and value != old and row.run_id is None
              and _refines(s, value, old)):
            changes[key] = value  # the round trains on its batch refined (a child of it)
        elif value is not None and value != old:
            diffs[key] = (old, value)
    if diffs:
        raise CatalogConflict("loop round", f"{row.loop_id}#{row.index}", diffs)
    if changes:
        s.execute(update(LoopRound)
                  .where(LoopRound.loop_id == row.loop_id, LoopRound.index == row.index)
                  .values(**changes, updated_at=now()))


def _refines(s: Session, child: str, parent: str | None) -> bool:
    row = s.get(Batch, child)
    return row is not None and parent is not None and row.parent_id == parent


def run_batches(s: Session, run_id: str) -> list[str]:
    query = (select(training_run_batches.c.batch_id)
             .where(training_run_batches.c.run_id == run_id)
             .order_by(training_run_batches.c.batch_id))
    return list(s.scalars(query))


def as_dict(row: Any) -> dict[str, Any] | None:
    return None if row is None else row_dict(row)


def check_in(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise CatalogError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def check_move(kind: str, id: str, old: str, new: str, table: Mapping[str, set[str]]) -> None:
    if new != old and new not in table[old]:
        allowed = ", ".join(sorted(table[old])) or "nothing (final)"
        raise CatalogError(f"{kind} {id!r} is {old!r}; it cannot become {new!r} "
                           f"(allowed from {old!r}: {allowed})")
