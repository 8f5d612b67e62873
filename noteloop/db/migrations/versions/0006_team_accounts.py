"""Login throttling: the recent failed logins per user name and per client address.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

An older database gets an empty ``login_throttles`` table: nobody has failed yet.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('user', 'address')", name=op.f("ck_login_throttles_kind")),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_login_throttles_failures_nonnegative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_throttles")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_login_throttles_kind_key")),
    )


def downgrade() -> None:
    op.drop_table("login_throttles")
