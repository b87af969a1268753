"""The lineage catalog: one class, plain dicts in and out.

Rules every write follows, so that Prefect retries and two concurrent writers are safe:

* Ids are content hashes or caller-chosen keys. ``add_*`` of a row that exists with the
  same content is a no-op that returns the stored row; with different content it raises
  :class:`CatalogConflict` naming the row and the fields. Status is not content: re-adding
  a batch that validation has since accepted leaves it accepted.
* Nullable links (an MLflow run id, an analysis's next distribution, a round's batch) are
  written once: a later call may fill one in, never change it.
* Status moves forward only (see the ``*_NEXT`` tables); repeating the current status is
  a no-op.
* Each call is one transaction. Inserts are ``INSERT .. ON CONFLICT DO NOTHING`` followed
  by a compare, so two writers adding the same row both succeed. On SQLite writes take
  the write lock up front (``BEGIN IMMEDIATE``, see :mod:`catalog.engine`); on PostgreSQL
  (READ COMMITTED) a serialization failure or deadlock is retried.
"""

from __future__ import annotations

import json
import operator
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from catalog import lineage as _lineage
from catalog.engine import WRITE, create_catalog_engine, redact
from catalog.errors import CatalogError, CatalogNotFound
from catalog.migrate import upgrade
from catalog.schema import (
    BATCH_STATUSES,
    LOOP_MODES,
    ROUND_STATUSES,
    Analysis,
    Batch,
    Distribution,
    Loop,
    LoopRound,
    TrainingRun,
    training_run_batches,
)
from catalog.values import canonical_json, finite_or_none, jsonable, now, row_dict
from catalog.writes import (
    BATCH_NEXT,
    LOOP_NEXT,
    ROUND_FIELDS,
    ROUND_LINKS,
    RUN_NEXT,
    as_dict,
    check_in,
    check_move,
    check_same,
    fields_of,
    fill_links,
    insert_new,
    locked,
    require,
    run_batches,
    stored,
    update_round,
)

T = TypeVar("T")

_ATTEMPTS = 6
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class Catalog:
    """The lineage store at ``url`` (SQLite file or PostgreSQL), migrated to the latest schema.

    Opening is cheap once the schema is current (one read). Use as a context manager, or
    call :meth:`close`, to release connections early.
    """

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_catalog_engine(url)
        self.url: str = redact(self._engine.url)
        self._writer = self._engine.execution_options(**{WRITE: True})
        try:
            self.revision: str = upgrade(self._engine, self.url)
        except CatalogError:
            self._engine.dispose()
            raise
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            self._engine.dispose()
            raise CatalogError(f"cannot open catalog {self.url}: {_reason(exc)}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    # ------------------------------------------------------------------ distributions

    def add_distribution(self, id: str, name: str, task: str, content: Mapping[str, Any] | str,
                         parent_id: str | None = None, reason: str | None = None
                         ) -> dict[str, Any]:
        """Record a distribution version. ``content`` is the canonical JSON text the id was
        hashed from, or a dict (stored as compact key-sorted JSON); conflicts compare the
        parsed JSON, so formatting differences are not conflicts."""
        if isinstance(content, str):
            try:
                parsed = _parse_content(content, id)
            except ValueError as exc:
                raise CatalogError(f"distribution {id!r}: content is not JSON ({exc})") from None
            text = content
        else:
            parsed = jsonable(content, f"distribution {id!r} content")
            text = canonical_json(parsed)
        values = {"name": name, "task": task, "content": text, "parent_id": parent_id,
                  "reason": reason}

        def write(s: Session) -> None:
            if parent_id is not None:
                require(s, Distribution, parent_id, f"parent of distribution {id!r}")
            if insert_new(s, Distribution.__table__, {"id": id, **values, "created_at": now()}):
                return
            row = stored(s, Distribution, id)
            old = {"name": row.name, "task": row.task, "content": _parse_content(row.content, id),
                   "parent_id": row.parent_id, "reason": row.reason}
            check_same("distribution", id, old, {**values, "content": parsed})

        self._write(f"add distribution {id!r}", write)
        dist = self.get_distribution(id)
        assert dist is not None
        return dist

    def get_distribution(self, id: str) -> dict[str, Any] | None:
        """The distribution row with ``content`` parsed into a dict."""
        def read(s: Session) -> dict[str, Any] | None:
            row = s.get(Distribution, id)
            if row is None:
                return None
            return {**row_dict(row), "content": _parse_content(row.content, id)}

        return self._read(f"read distribution {id!r}", read)

    def lineage(self, distribution_id: str) -> list[dict[str, Any]]:
        """Steps from ``distribution_id`` back to the root distribution, newest first; each a
        dict with ``kind`` ("distribution", "analysis", "training_run", "batch") and ``id``.
        See :mod:`catalog.lineage` for the walk."""
        return self._read(f"walk lineage of {distribution_id!r}",
                          lambda s: _lineage.walk(s, distribution_id))

    # ------------------------------------------------------------------ batches

    def add_batch(self, id: str, distribution_id: str, seed: int, n: int, path: str,
                  manifest_sha256: str, shards: Sequence[Mapping[str, str]],
                  status: str = "pending", parent_id: str | None = None,
                  refiner: str | None = None) -> dict[str, Any]:
        """Record a generated batch, or a refined one (``parent_id``: the batch it was
        made from, already recorded; ``refiner``: how). Idempotent; the stored status
        wins on a re-add."""
        check_in(status, BATCH_STATUSES, "batch status")
        values = {"distribution_id": distribution_id, "seed": operator.index(seed),
                  "n": operator.index(n), "path": str(path), "manifest_sha256": manifest_sha256,
                  "shards": jsonable(list(shards), f"batch {id!r} shards"),
                  "parent_id": parent_id, "refiner": refiner}

        def write(s: Session) -> None:
            require(s, Distribution, distribution_id, f"distribution of batch {id!r}")
            if parent_id is not None:
                require(s, Batch, parent_id, f"parent of batch {id!r}")
            stamp = now()
            if insert_new(s, Batch.__table__, {"id": id, **values, "status": status,
                                            "created_at": stamp, "updated_at": stamp}):
                return
            check_same("batch", id, fields_of(stored(s, Batch, id), values), values)

        self._write(f"add batch {id!r}", write)
        return self._get_or_fail(self.get_batch, "batch", id)

    def set_batch_status(self, id: str, status: str, detail: str | None = None
                         ) -> dict[str, Any]:
        """Accept or quarantine a batch. Quarantine is final: such a batch is kept but never
        trained on. Repeating the current status only updates ``detail`` (when given)."""
        check_in(status, BATCH_STATUSES, "batch status")

        def write(s: Session) -> None:
            row = locked(s, Batch, id, "batch")
            check_move("batch", id, row.status, status, BATCH_NEXT)
            if row.status == status and (detail is None or detail == row.status_detail):
                return
            changes: dict[str, Any] = {"status": status, "updated_at": now()}
            if detail is not None or row.status != status:
                changes["status_detail"] = detail
            s.execute(update(Batch).where(Batch.id == id).values(**changes))

        self._write(f"set status of batch {id!r}", write)
        return self._get_or_fail(self.get_batch, "batch", id)

    def get_batch(self, id: str) -> dict[str, Any] | None:
        return self._read(f"read batch {id!r}", lambda s: as_dict(s.get(Batch, id)))

    def batches(self, distribution_id: str | None = None, status: str | None = None
                ) -> list[dict[str, Any]]:
        """Batches, oldest first, optionally of one distribution and/or one status."""
        if status is not None:
            check_in(status, BATCH_STATUSES, "batch status")
        query = select(Batch).order_by(Batch.created_at, Batch.id)
        if distribution_id is not None:
            query = query.where(Batch.distribution_id == distribution_id)
        if status is not None:
            query = query.where(Batch.status == status)
        return self._read("list batches", lambda s: [row_dict(b) for b in s.scalars(query)])

    # ------------------------------------------------------------------ training runs

    def add_training_run(self, id: str, task: str, method: str, config: Mapping[str, Any],
                         batch_ids: Iterable[str], mlflow_run_id: str | None = None,
                         status: str = "running") -> dict[str, Any]:
        """Record a training run and the batches it trains on (none may be quarantined)."""
        check_in(status, tuple(RUN_NEXT), "training run status")
        ids = sorted(set(batch_ids))
        values = {"task": task, "method": method,
                  "config": jsonable(dict(config), f"training run {id!r} config")}

        def write(s: Session) -> None:
            found = {b.id: b.status for b in s.scalars(select(Batch).where(Batch.id.in_(ids)))}
            missing = [b for b in ids if b not in found]
            if missing:
                raise CatalogNotFound("training run", id, f"batches not in the catalog: "
                                      f"{', '.join(missing)}")
            bad = [b for b in ids if found[b] == "quarantined"]
            if bad:
                raise CatalogError(f"training run {id!r}: batches {', '.join(bad)} are "
                                   "quarantined (failed validation) and are never trained on")
            stamp = now()
            if insert_new(s, TrainingRun.__table__, {
                    "id": id, **values, "mlflow_run_id": mlflow_run_id, "status": status,
                    "created_at": stamp, "updated_at": stamp}):
                for batch_id in ids:
                    insert_new(s, training_run_batches, {"run_id": id, "batch_id": batch_id})
                return
            row = stored(s, TrainingRun, id)
            old = {**fields_of(row, values), "batch_ids": run_batches(s, id)}
            check_same("training run", id, old, {**values, "batch_ids": ids})
            fill_links(s, TrainingRun, "training run", row, {"mlflow_run_id": mlflow_run_id})

        self._write(f"add training run {id!r}", write)
        return self._get_or_fail(self.get_training_run, "training run", id)

    def finish_training_run(self, id: str, *, checkpoint: str | None,
                            metrics: Mapping[str, Any] | None, mlflow_run_id: str | None = None,
                            status: str = "finished") -> dict[str, Any]:
        """Close a running run as finished (or failed). Repeating the same finish is a
        no-op; finishing it differently raises CatalogConflict."""
        if status not in ("finished", "failed"):
            raise CatalogError(f"training run {id!r}: finish status must be 'finished' or "
                               f"'failed', not {status!r}")
        values = {"checkpoint": None if checkpoint is None else str(checkpoint),
                  "metrics": None if metrics is None
                  else jsonable(dict(metrics), f"training run {id!r} metrics")}

        def write(s: Session) -> None:
            row = locked(s, TrainingRun, id, "training run")
            check_move("training run", id, row.status, status, RUN_NEXT)
            if row.status == status:
                check_same("training run", id, fields_of(row, values), values)
            else:
                s.execute(update(TrainingRun).where(TrainingRun.id == id)
                          .values(**values, status=status, updated_at=now()))
            fill_links(s, TrainingRun, "training run", row, {"mlflow_run_id": mlflow_run_id})

        self._write(f"finish training run {id!r}", write)
        return self._get_or_fail(self.get_training_run, "training run", id)

    def get_training_run(self, id: str) -> dict[str, Any] | None:
        """The run with ``batch_ids`` (sorted) added."""
        def read(s: Session) -> dict[str, Any] | None:
            row = s.get(TrainingRun, id)
            return None if row is None else {**row_dict(row), "batch_ids": run_batches(s, id)}

        return self._read(f"read training run {id!r}", read)

    # ------------------------------------------------------------------ analyses

    def add_analysis(self, id: str, run_id: str, data_ref: str, metrics: Mapping[str, Any],
                     slices: Any, next_distribution_id: str | None = None) -> dict[str, Any]:
        """Record an error analysis of ``run_id`` on the real data named by ``data_ref``."""
        values = {"run_id": run_id, "data_ref": data_ref,
                  "metrics": jsonable(dict(metrics), f"analysis {id!r} metrics"),
                  "slices": jsonable(slices, f"analysis {id!r} slices")}

        def write(s: Session) -> None:
            require(s, TrainingRun, run_id, f"training run of analysis {id!r}")
            if next_distribution_id is not None:
                require(s, Distribution, next_distribution_id,
                         f"next distribution of analysis {id!r}")
            if insert_new(s, Analysis.__table__, {**values, "id": id, "created_at": now(),
                                               "next_distribution_id": next_distribution_id}):
                return
            row = stored(s, Analysis, id)
            check_same("analysis", id, fields_of(row, values), values)
            fill_links(s, Analysis, "analysis", row, {"next_distribution_id": next_distribution_id})

        self._write(f"add analysis {id!r}", write)
        return self._get_or_fail(self.get_analysis, "analysis", id)

    def get_analysis(self, id: str) -> dict[str, Any] | None:
        return self._read(f"read analysis {id!r}", lambda s: as_dict(s.get(Analysis, id)))

    # ------------------------------------------------------------------ loops

    def start_loop(self, id: str, task: str, mode: str, seed: int, config: Mapping[str, Any],
                   mlflow_run_id: str | None = None) -> dict[str, Any]:
        """Register a loop as running; the same loop again returns it as stored (any status)."""
        check_in(mode, LOOP_MODES, "loop mode")
        values = {"task": task, "mode": mode, "seed": operator.index(seed),
                  "config": jsonable(dict(config), f"loop {id!r} config")}

        def write(s: Session) -> None:
            stamp = now()
            if insert_new(s, Loop.__table__, {"id": id, **values, "mlflow_run_id": mlflow_run_id,
                                           "status": "running", "created_at": stamp,
                                           "updated_at": stamp}):
                return
            row = stored(s, Loop, id)
            check_same("loop", id, fields_of(row, values), values)
            fill_links(s, Loop, "loop", row, {"mlflow_run_id": mlflow_run_id})

        self._write(f"start loop {id!r}", write)
        return self._get_or_fail(self.get_loop, "loop", id)

    def get_loop(self, id: str) -> dict[str, Any] | None:
        return self._read(f"read loop {id!r}", lambda s: as_dict(s.get(Loop, id)))

    def set_loop_status(self, id: str, status: str, mlflow_run_id: str | None = None
                        ) -> dict[str, Any]:
        """Finish or fail a loop (a failed loop may run again); optionally fill its MLflow id."""
        check_in(status, tuple(LOOP_NEXT), "loop status")

        def write(s: Session) -> None:
            row = locked(s, Loop, id, "loop")
            check_move("loop", id, row.status, status, LOOP_NEXT)
            if row.status != status:
                s.execute(update(Loop).where(Loop.id == id)
                          .values(status=status, updated_at=now()))
            fill_links(s, Loop, "loop", row, {"mlflow_run_id": mlflow_run_id})

        self._write(f"set status of loop {id!r}", write)
        return self._get_or_fail(self.get_loop, "loop", id)

    def upsert_round(self, loop_id: str, index: int, **fields: Any) -> dict[str, Any]:
        """Create or update round ``index`` of a loop.

        Creating needs ``distribution_id`` (status defaults to "started"). Links
        (distribution, batch, run, analysis, MLflow run) are written once, except that
        the batch may move to a refined child of itself until the round has a run; ``status`` moves
        forward through started, generated, trained, analysed, done; ``real_error`` may
        be overwritten.
        """
        unknown = sorted(set(fields) - set(ROUND_FIELDS))
        if unknown:
            raise TypeError(f"upsert_round: unknown fields {unknown}; known: {ROUND_FIELDS}")
        index = operator.index(index)
        where = f"loop {loop_id!r} round {index}"
        if "status" in fields:
            check_in(fields["status"], ROUND_STATUSES, "round status")
        if "real_error" in fields:
            fields["real_error"] = finite_or_none(fields["real_error"], f"{where} real_error")

        def write(s: Session) -> None:
            for key, model in ROUND_LINKS.items():
                if fields.get(key) is not None:
                    require(s, model, fields[key], f"{key} of {where}")
            row = s.get(LoopRound, (loop_id, index), with_for_update=True)
            if row is None:
                require(s, Loop, loop_id, where)
                if fields.get("distribution_id") is None:
                    raise CatalogError(f"{where} does not exist yet; creating it needs a "
                                       "distribution_id")
                stamp = now()
                if insert_new(s, LoopRound.__table__, {
                        "status": "started", **fields, "loop_id": loop_id, "index": index,
                        "created_at": stamp, "updated_at": stamp}):
                    return
                row = s.get(LoopRound, (loop_id, index), with_for_update=True,
                            populate_existing=True)
                if row is None:
                    raise CatalogNotFound("loop round", f"{loop_id}#{index}",
                                          "neither inserted nor found")
            update_round(s, row, where, fields)

        self._write(f"update {where}", write)
        return next(r for r in self.rounds(loop_id) if r["index"] == index)

    def rounds(self, loop_id: str) -> list[dict[str, Any]]:
        """The loop's rounds ordered by index."""
        query = select(LoopRound).where(LoopRound.loop_id == loop_id).order_by(LoopRound.index)
        return self._read(f"list rounds of loop {loop_id!r}",
                          lambda s: [row_dict(r) for r in s.scalars(query)])

    # ------------------------------------------------------------------ transactions

    def _read(self, what: str, fn: Callable[[Session], T]) -> T:
        try:
            with Session(self._engine) as s, s.begin():
                return fn(s)
        except SQLAlchemyError as exc:
            raise CatalogError(f"catalog {self.url}: {what} failed: {_reason(exc)}") from exc

    def _write(self, what: str, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one write transaction, retrying transient lock/serialization errors."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with Session(self._writer) as s, s.begin():
                    return fn(s)
            except OperationalError as exc:
                if attempt < _ATTEMPTS and _transient(exc):
                    time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
                    continue
                raise CatalogError(f"catalog {self.url}: {what} failed: {_reason(exc)}"
                                   ) from exc
            except SQLAlchemyError as exc:
                raise CatalogError(f"catalog {self.url}: {what} failed: {_reason(exc)}"
                                   ) from exc
        raise AssertionError("unreachable")

    def _get_or_fail(self, get: Callable[[str], dict[str, Any] | None], kind: str, id: str
                     ) -> dict[str, Any]:
        row = get(id)
        if row is None:
            raise CatalogNotFound(kind, id, "vanished right after it was written")
        return row


# ---------------------------------------------------------------------- helpers


def _parse_content(text: str, id: str) -> Any:
    return jsonable(json.loads(text), f"distribution {id!r} content")


def _transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    message = str(exc.orig).lower()
    return code in _RETRY_SQLSTATES or "database is locked" in message or "busy" in message


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
