"""Refined batches: a batch may be made from another batch (SimGAN refinement).

``batches.parent_id`` names the batch a refined batch was made from (NULL for a batch
rendered from its distribution); ``batches.refiner`` says how (the MLflow run of the
refiner). Batch mode, so SQLite gets the foreign key too (it rebuilds the table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as b:
        b.add_column(sa.Column("parent_id", sa.String(255), nullable=True))
        b.add_column(sa.Column("refiner", sa.Text(), nullable=True))
        b.create_foreign_key("fk_batches_parent_id_batches", "batches", ["parent_id"], ["id"])
        b.create_index("ix_batches_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("batches") as b:
        b.drop_index("ix_batches_parent_id")
        b.drop_constraint("fk_batches_parent_id_batches", type_="foreignkey")
        b.drop_column("refiner")
        b.drop_column("parent_id")
