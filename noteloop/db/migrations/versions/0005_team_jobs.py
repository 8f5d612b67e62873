"""Jobs owned by one worker and attempt, one active job per project and kind, model files
in the database, prediction chunks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

What the data of an older database becomes:
- where a project has several active (queued or running) jobs of one kind, which the old
  check in Python let two processes create, one stays active (a running one before a
  queued one, then the newest) and the others are cancelled with an error that says why;
  only then can the unique index hold;
- versions published before keep loading from their folder (``model_versions.path``);
  new versions also store their files in ``model_files``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_JOB = "status IN ('queued', 'running')"
DUPLICATE_ERROR = (
    "cancelled when the database moved to one active job per project and kind: "
    "job {kept} of the same kind stays active"
)


def upgrade() -> None:
    _cancel_duplicate_active_jobs(op.get_bind())
    op.create_index(
        "uq_training_jobs_one_active",
        "training_jobs",
        ["project_id", "kind"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_JOB),
        postgresql_where=sa.text(ACTIVE_JOB),
    )
    _create_model_files()
    _create_predict_chunks()


def _cancel_duplicate_active_jobs(bind: sa.Connection) -> None:
    jobs = sa.table(
        "training_jobs",
        sa.column("id", sa.Integer()),
        sa.column("project_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("error", sa.Text()),
        sa.column("finished_at", sa.DateTime()),
    )
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.project_id, jobs.c.kind, jobs.c.status)
        .where(sa.text(ACTIVE_JOB))
        .order_by(jobs.c.id)
    ).all()
    groups: dict[tuple[int, str], list[sa.Row]] = {}
    for row in rows:
        groups.setdefault((row.project_id, row.kind), []).append(row)
    for group in groups.values():
        # A running job first (a worker is on it), then the newest queued one.
        kept = max(group, key=lambda r: (r.status == "running", r.id))
        for row in group:
            if row.id != kept.id:
                bind.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(
                        status="cancelled",
                        error=DUPLICATE_ERROR.format(kept=kept.id),
                        finished_at=sa.func.current_timestamp(),
                    )
                )


def _cascade(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def _create_model_files() -> None:
    op.create_table(
        "model_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("size >= 0", name=op.f("ck_model_files_size_nonnegative")),
        _cascade("model_files", "model_version_id", "model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_files")),
        sa.UniqueConstraint(
            "model_version_id", "path", name=op.f("uq_model_files_model_version_id_path")
        ),
    )


def _create_predict_chunks() -> None:
    op.create_table(
        "predict_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("job_attempt", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("document_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_predict_chunks_status"),
        ),
        _cascade("predict_chunks", "job_id", "training_jobs"),
        _cascade("predict_chunks", "model_version_id", "model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predict_chunks")),
        sa.UniqueConstraint(
            "job_id",
            "job_attempt",
            "seq",
            name=op.f("uq_predict_chunks_job_id_job_attempt_seq"),
        ),
    )
    op.create_index(
        "ix_predict_chunks_status_job_id", "predict_chunks", ["status", "job_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_predict_chunks_status_job_id", table_name="predict_chunks")
    op.drop_table("predict_chunks")
    op.drop_table("model_files")
    op.drop_index("uq_training_jobs_one_active", table_name="training_jobs")
