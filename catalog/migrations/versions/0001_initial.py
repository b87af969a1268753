"""The initial lineage schema: distributions, batches, training runs, analyses, loops, rounds.

Written out in full rather than created from ``catalog.schema``, so this revision means the
same thing forever while the ORM module moves on.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(255)
_NAME = sa.String(255)
_STATUS = sa.String(16)
_TS = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "distributions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("task", _NAME, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parent_id", _ID, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_distributions"),
        sa.ForeignKeyConstraint(["parent_id"], ["distributions.id"],
                                name="fk_distributions_parent_id_distributions"),
    )
    op.create_index("ix_distributions_parent_id", "distributions", ["parent_id"])

    op.create_table(
        "batches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("distribution_id", _ID, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("shards", _json(), nullable=False),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.ForeignKeyConstraint(["distribution_id"], ["distributions.id"],
                                name="fk_batches_distribution_id_distributions"),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'quarantined')",
                           name="ck_batches_status"),
    )
    op.create_index("ix_batches_distribution_id", "batches", ["distribution_id"])
    op.create_index("ix_batches_status", "batches", ["status"])

    op.create_table(
        "training_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("task", _NAME, nullable=False),
        sa.Column("method", _NAME, nullable=False),
        sa.Column("mlflow_run_id", _ID, nullable=True),
        sa.Column("config", _json(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("metrics", _json(), nullable=True),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
        sa.CheckConstraint("status IN ('running', 'finished', 'failed')",
                           name="ck_training_runs_status"),
    )

    op.create_table(
        "training_run_batches",
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("batch_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "batch_id", name="pk_training_run_batches"),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"],
                                name="fk_training_run_batches_run_id_training_runs"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"],
                                name="fk_training_run_batches_batch_id_batches"),
    )
    op.create_index("ix_training_run_batches_batch_id", "training_run_batches", ["batch_id"])

    op.create_table(
        "analyses",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("data_ref", sa.Text(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("slices", _json(), nullable=False),
        sa.Column("next_distribution_id", _ID, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_analyses"),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"],
                                name="fk_analyses_run_id_training_runs"),
        sa.ForeignKeyConstraint(["next_distribution_id"], ["distributions.id"],
                                name="fk_analyses_next_distribution_id_distributions"),
    )
    op.create_index("ix_analyses_run_id", "analyses", ["run_id"])
    op.create_index("ix_analyses_next_distribution_id", "analyses", ["next_distribution_id"])

    op.create_table(
        "loops",
        sa.Column("id", _ID, nullable=False),
        sa.Column("task", _NAME, nullable=False),
        sa.Column("mode", _STATUS, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("mlflow_run_id", _ID, nullable=True),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loops"),
        sa.CheckConstraint("status IN ('running', 'finished', 'failed')",
                           name="ck_loops_status"),
        sa.CheckConstraint("mode IN ('closed', 'open')", name="ck_loops_mode"),
    )

    op.create_table(
        "loop_rounds",
        sa.Column("loop_id", _ID, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("distribution_id", _ID, nullable=False),
        sa.Column("batch_id", _ID, nullable=True),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("analysis_id", _ID, nullable=True),
        sa.Column("real_error", sa.Float(), nullable=True),
        sa.Column("mlflow_run_id", _ID, nullable=True),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("loop_id", "index", name="pk_loop_rounds"),
        sa.ForeignKeyConstraint(["loop_id"], ["loops.id"], name="fk_loop_rounds_loop_id_loops"),
        sa.ForeignKeyConstraint(["distribution_id"], ["distributions.id"],
                                name="fk_loop_rounds_distribution_id_distributions"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"],
                                name="fk_loop_rounds_batch_id_batches"),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"],
                                name="fk_loop_rounds_run_id_training_runs"),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"],
                                name="fk_loop_rounds_analysis_id_analyses"),
        sa.CheckConstraint(
            "status IN ('started', 'generated', 'trained', 'analysed', 'done')",
            name="ck_loop_rounds_status"),
    )


def downgrade() -> None:
    for table in ("loop_rounds", "loops", "analyses", "training_run_batches", "training_runs",
                  "batches", "distributions"):
        op.drop_table(table)
