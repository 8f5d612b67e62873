"""Annotations say whether they are a lead's adjudication: the note's final gold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table with CHECK constraints in place. Every
    # annotation stored so far is an annotator's own work, hence the default.
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(sa.Column("adjudicated", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("adjudicated")
