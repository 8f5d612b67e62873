"""The check-then-write rules of a team server: no schema change.

The rules hold with what the schema has already: row locks (the project row for schema
and settings edits, the note row for a claim), the unique constraints on documents that
``INSERT ... ON CONFLICT DO NOTHING`` relies on, and the versioned annotation row. A
whole-schema save is checked against the schema it was made from, not a version column.
This revision keeps its place in the chain so that databases migrated through it stay
comparable.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
