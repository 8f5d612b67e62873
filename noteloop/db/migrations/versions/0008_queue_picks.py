"""How each claimed note came out of the queue: the strategy's pick or a random one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

An older database gets an empty ``queue_picks`` table: the notes claimed before it are
neither the strategy's nor the random share's on the Dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_picks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("pick", sa.String(length=20), nullable=False),
        sa.Column("strategy", sa.String(length=100), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("picked_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("pick IN ('strategy', 'random')", name=op.f("ck_queue_picks_pick")),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"],
            name=op.f("fk_queue_picks_document_id_documents"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"],
            name=op.f("fk_queue_picks_model_version_id_model_versions"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_picks")),
    )
    op.create_index(
        "ix_queue_picks_document_id_annotator", "queue_picks", ["document_id", "annotator"]
    )


def downgrade() -> None:
    op.drop_index("ix_queue_picks_document_id_annotator", table_name="queue_picks")
    op.drop_table("queue_picks")
