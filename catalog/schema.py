"""ORM tables of the lineage catalog.

The graph they hold: a scene *distribution* makes *batches*; accepted batches train a
*training run*; an *analysis* of that run on real data proposes the *next distribution*
(whose ``parent_id`` is the one it refines). *Loops* and their *rounds* index the same
rows by loop and round number, so a loop can be resumed and read back.

This module is the current shape of the tables; the database gets its shape from the
alembic scripts in ``catalog/migrations`` (a test checks the two agree). Changing a
table here means adding a migration there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations (and SQLite batch rebuilds) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BATCH_STATUSES = ("pending", "accepted", "quarantined")
RUN_STATUSES = ("running", "finished", "failed")
LOOP_STATUSES = ("running", "finished", "failed")
LOOP_MODES = ("closed", "open")
#: Round statuses in the order a round goes through them.
ROUND_STATUSES = ("started", "generated", "trained", "analysed", "done")

# none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null'.
Json = JSON(none_as_null=True)
Id = String(255)
Name = String(255)
Timestamp = DateTime(timezone=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Distribution(Base):
    """A scene distribution version; ``id`` is the caller's hash of ``content``."""

    __tablename__ = "distributions"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(Name)
    task: Mapped[str] = mapped_column(Name)
    content: Mapped[str] = mapped_column(Text)  # the canonical JSON text that was hashed
    parent_id: Mapped[str | None] = mapped_column(
        Id, ForeignKey("distributions.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Batch(Base):
    """A generated or refined batch on disk; quarantined batches are kept but never
    trained on."""

    __tablename__ = "batches"
    __table_args__ = (CheckConstraint(_one_of("status", BATCH_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    distribution_id: Mapped[str] = mapped_column(
        Id, ForeignKey("distributions.id"), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    shards: Mapped[list[dict[str, str]]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # a refined batch: the batch it was made from, and the refiner's MLflow run
    parent_id: Mapped[str | None] = mapped_column(Id, ForeignKey("batches.id"), index=True)
    refiner: Mapped[str | None] = mapped_column(Text)


training_run_batches = Table(
    "training_run_batches",
    Base.metadata,
    Column("run_id", Id, ForeignKey("training_runs.id"), primary_key=True),
    Column("batch_id", Id, ForeignKey("batches.id"), primary_key=True, index=True),
)


class TrainingRun(Base):
    """One training (or tuning trial) run and the batches it trained on."""

    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    task: Mapped[str] = mapped_column(Name)
    method: Mapped[str] = mapped_column(Name)
    mlflow_run_id: Mapped[str | None] = mapped_column(Id)
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Analysis(Base):
    """Error analysis of a run on real data; may propose the next distribution."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    run_id: Mapped[str] = mapped_column(Id, ForeignKey("training_runs.id"), index=True)
    data_ref: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(Json)
    slices: Mapped[Any] = mapped_column(Json)
    next_distribution_id: Mapped[str | None] = mapped_column(
        Id, ForeignKey("distributions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Loop(Base):
    """A closed (simulated target) or open (real target) feedback loop."""

    __tablename__ = "loops"
    __table_args__ = (CheckConstraint(_one_of("status", LOOP_STATUSES), name="status"),
                      CheckConstraint(_one_of("mode", LOOP_MODES), name="mode"))

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    task: Mapped[str] = mapped_column(Name)
    mode: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    mlflow_run_id: Mapped[str | None] = mapped_column(Id)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class LoopRound(Base):
    """Round ``index`` of a loop: which rows it made, how far it got, the real error."""

    __tablename__ = "loop_rounds"
    __table_args__ = (CheckConstraint(_one_of("status", ROUND_STATUSES), name="status"),)

    loop_id: Mapped[str] = mapped_column(Id, ForeignKey("loops.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    distribution_id: Mapped[str] = mapped_column(Id, ForeignKey("distributions.id"))
    batch_id: Mapped[str | None] = mapped_column(Id, ForeignKey("batches.id"))
    run_id: Mapped[str | None] = mapped_column(Id, ForeignKey("training_runs.id"))
    analysis_id: Mapped[str | None] = mapped_column(Id, ForeignKey("analyses.id"))
    real_error: Mapped[float | None] = mapped_column(Float)
    mlflow_run_id: Mapped[str | None] = mapped_column(Id)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
