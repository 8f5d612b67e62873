"""The gold lifecycle: logins, claims, drafts, skips, gold versions, per-annotator
suggestion decisions, retired documents and the serving model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

What the data of an older database becomes:
- a suggestion's one ``status`` becomes the decision of the annotator who submitted the
  note last (the one whose submit wrote it); suggestions still open on a submitted note,
  from the batch its annotator was shown, become that annotator's rejections (they were
  left open at submit, which now counts as rejecting them);
- an in-progress annotation without any gold was a claim made by opening the note: it
  becomes a claim (it expires like any other) and the empty annotation goes;
- every submitted annotation gets its current gold as its first kept version;
- every project serves its newest ready trained version, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _int(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON(), nullable=False)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False)


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*(columns or ("id",)), name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _uq(table: str, *columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=op.f(f"uq_{table}_{'_'.join(columns)}"))


def _ck(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _one_of(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    _create_tables()
    with op.batch_alter_table("documents") as batch:
        batch.add_column(_time("retired_at", nullable=True))
        batch.add_column(_str("retired_by", 200, nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("verdict", sa.Text(), nullable=False, server_default=""))
    bind = op.get_bind()
    _move_decisions(bind)
    _claims_from_empty_annotations(bind)
    _first_gold_versions(bind)
    _serving_models(bind)
    # batch mode: SQLite drops a column by rebuilding the table (its CHECK names the column).
    with op.batch_alter_table("suggestions") as batch:
        batch.drop_constraint(op.f("ck_suggestions_status"), type_="check")
        batch.drop_column("status")


def _create_tables() -> None:
    op.create_table(
        "logins",
        _id(),
        _str("token_hash", 64),
        _int("user_id"),
        _time("created_at"),
        _time("seen_at"),
        _time("expires_at"),
        _time("ended_at", nullable=True),
        _str("ended_by", 200, nullable=True),
        _str("client", 300),
        _fk("logins", "user_id", "users", "CASCADE"),
        _pk("logins"),
        _uq("logins", "token_hash"),
    )
    op.create_index(op.f("ix_logins_user_id"), "logins", ["user_id"], unique=False)
    op.create_table(
        "suggestion_decisions",
        _id(),
        _int("suggestion_id"),
        _str("annotator", 200),
        _str("status", 20),
        _time("decided_at"),
        _ck("suggestion_decisions", "status", _one_of("status", "accepted", "edited", "rejected")),
        _fk("suggestion_decisions", "suggestion_id", "suggestions", "CASCADE"),
        _pk("suggestion_decisions"),
        _uq("suggestion_decisions", "suggestion_id", "annotator"),
    )
    op.create_table(
        "gold_versions",
        _id(),
        _int("annotation_id"),
        _int("version"),
        _str("saved_by", 200),
        _time("saved_at"),
        _json("content"),
        _json("changes"),
        _int("restored_from", nullable=True),
        _fk("gold_versions", "annotation_id", "annotations", "CASCADE"),
        _pk("gold_versions"),
        _uq("gold_versions", "annotation_id", "version"),
    )
    op.create_table(
        "drafts",
        _id(),
        _int("document_id"),
        _str("annotator", 200),
        _int("base_version"),
        _int("model_version_id", nullable=True),
        _json("state"),
        _time("created_at"),
        _time("updated_at"),
        _ck("drafts", "base_version_nonnegative", "base_version >= 0"),
        _fk("drafts", "document_id", "documents", "CASCADE"),
        _fk("drafts", "model_version_id", "model_versions", "SET NULL"),
        _pk("drafts"),
        _uq("drafts", "document_id", "annotator"),
    )
    op.create_table(
        "claims",
        _id(),
        _int("document_id"),
        _str("annotator", 200),
        _int("slot", nullable=True),
        _str("purpose", 20),
        _str("claimed_by", 200),
        _time("claimed_at"),
        _time("active_at"),
        _ck("claims", "purpose", _one_of("purpose", "annotate", "second", "reopen")),
        _fk("claims", "document_id", "documents", "CASCADE"),
        _pk("claims"),
        _uq("claims", "document_id", "annotator"),
        _uq("claims", "document_id", "slot"),
    )
    op.create_index(op.f("ix_claims_annotator"), "claims", ["annotator"], unique=False)
    op.create_table(
        "skips",
        _id(),
        _int("document_id"),
        _str("annotator", 200),
        _text("reason"),
        _time("at"),
        _fk("skips", "document_id", "documents", "CASCADE"),
        _pk("skips"),
    )
    op.create_index(
        op.f("ix_skips_annotator_document_id"), "skips", ["annotator", "document_id"], unique=False
    )
    op.create_table(
        "serving_models",
        _int("project_id"),
        _int("model_version_id"),
        _str("chosen_by", 200),
        _time("chosen_at"),
        _text("reason"),
        _fk("serving_models", "project_id", "projects", "CASCADE"),
        _fk("serving_models", "model_version_id", "model_versions", "CASCADE"),
        _pk("serving_models", "project_id"),
    )


# --------------------------------------------------------------------------- data


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _rows(bind: Any, sql: str, **params: Any) -> list[Any]:
    return list(bind.execute(sa.text(sql), params))


def _move_decisions(bind: Any) -> None:
    """Statuses become the decisions of the note's last submitter; open suggestions of the
    batch a submitter was shown become their rejections."""
    submitted = _rows(
        bind,
        "SELECT id, document_id, annotator, started_at, submitted_at FROM annotations "
        "WHERE status = 'submitted' AND adjudicated = :no ORDER BY submitted_at, id",
        no=False,
    )
    last: dict[int, str] = {}
    for row in submitted:
        last[row.document_id] = row.annotator  # ordered: the last submitter wins
    decisions: dict[tuple[int, str], str] = {}
    for sid, doc, status in _rows(
        bind, "SELECT id, document_id, status FROM suggestions WHERE status != 'open'"
    ):
        if doc in last:
            decisions[(sid, last[doc])] = status
    for row in submitted:
        for (sid,) in _rows(
            bind,
            "SELECT id FROM suggestions WHERE document_id = :doc AND status = 'open' "
            "AND model_version_id = :version",
            doc=row.document_id,
            version=_shown_version(bind, row.document_id, row.started_at),
        ):
            decisions.setdefault((sid, row.annotator), "rejected")
    _insert(
        bind,
        "suggestion_decisions",
        [
            {"suggestion_id": sid, "annotator": who, "status": status, "decided_at": _now()}
            for (sid, who), status in decisions.items()
        ],
    )


def _shown_version(bind: Any, document_id: int, started_at: Any) -> int:
    """The batch the Annotate page showed: the newest one made before the note was opened."""
    found = _rows(
        bind,
        "SELECT model_version_id FROM suggestions WHERE document_id = :doc "
        "AND created_at <= :started GROUP BY model_version_id "
        "ORDER BY MIN(created_at) DESC LIMIT 1",
        doc=document_id,
        started=started_at,
    )
    return found[0][0] if found else -1


def _claims_from_empty_annotations(bind: Any) -> None:
    empty = _rows(
        bind,
        "SELECT a.id, a.document_id, a.annotator, a.updated_at FROM annotations a "
        "WHERE a.status = 'in_progress' "
        "AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.annotation_id = a.id) "
        "AND NOT EXISTS (SELECT 1 FROM relations r WHERE r.annotation_id = a.id) "
        "ORDER BY a.id",
    )
    slots: dict[int, int] = {}
    claims = []
    for ann_id, doc, who, at in empty:
        slot = slots.get(doc, 0)
        slots[doc] = slot + 1
        if slot <= 1:  # a first and a second annotation; any more were never possible
            claims.append(
                {
                    "document_id": doc,
                    "annotator": who,
                    "slot": slot,
                    "purpose": "annotate" if slot == 0 else "second",
                    "claimed_by": who,
                    "claimed_at": at,
                    "active_at": at,
                }
            )
        bind.execute(sa.text("DELETE FROM annotations WHERE id = :id"), {"id": ann_id})
    _insert(bind, "claims", claims)


def _first_gold_versions(bind: Any) -> None:
    """Each submitted annotation's gold as it stands, in the audit form of gold saves."""
    annotations = _rows(
        bind,
        "SELECT id, version, updated_by, updated_at FROM annotations WHERE status = 'submitted'",
    )
    rows = []
    for ann_id, version, who, at in annotations:
        rows.append(
            {
                "annotation_id": ann_id,
                "version": version,
                "saved_by": who,
                "saved_at": at,
                "content": _content(bind, ann_id),
                "changes": {"previous": None, "note": "the gold as it stood when versions began"},
                "restored_from": None,
            }
        )
    _insert(bind, "gold_versions", rows)


def _content(bind: Any, annotation_id: int) -> dict[str, Any]:
    # The same form as noteloop.db.convert.audit_json, written out here so that this
    # migration never changes when the package's code does.
    spans, keys = [], {}
    for row in _rows(
        bind,
        "SELECT id, key, label, start, \"end\", fragments, attributes, notes, concept, source, "
        "suggestion_id FROM spans WHERE annotation_id = :a ORDER BY id",
        a=annotation_id,
    ):
        keys[row.id] = row.key
        out: list[Any] = [row.key, row.label, row.start, row.end]
        extra = {
            name: _json_value(getattr(row, name))
            for name in ("fragments", "attributes", "notes", "concept", "source", "suggestion_id")
            if getattr(row, name) not in (None, "")
        }
        if extra.get("source") == "manual":
            del extra["source"]
        spans.append([*out, extra] if extra else out)
    relations = []
    for row in _rows(
        bind,
        "SELECT key, label, head_id, tail_id, notes FROM relations WHERE annotation_id = :a "
        "ORDER BY id",
        a=annotation_id,
    ):
        rel: list[Any] = [row.key, row.label, keys[row.head_id], keys[row.tail_id]]
        notes = _json_value(row.notes)
        relations.append([*rel, notes] if notes else rel)
    equivalences = [
        [row.label, _json_value(row.members)]
        for row in _rows(
            bind,
            "SELECT label, members FROM equivalences WHERE annotation_id = :a ORDER BY id",
            a=annotation_id,
        )
    ]
    return {"spans": spans, "relations": relations, "equivalences": equivalences}


def _json_value(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def _serving_models(bind: Any) -> None:
    rows = []
    for (project_id,) in _rows(bind, "SELECT id FROM projects"):
        found = _rows(
            bind,
            "SELECT id FROM model_versions WHERE project_id = :p AND status = 'ready' "
            "AND backend != 'import' ORDER BY created_at DESC, id DESC LIMIT 1",
            p=project_id,
        )
        if found:
            rows.append(
                {
                    "project_id": project_id,
                    "model_version_id": found[0][0],
                    "chosen_by": "",
                    "chosen_at": _now(),
                    "reason": "the newest trained version",
                }
            )
    _insert(bind, "serving_models", rows)


# Columns written as JSON; every other value goes in as read (a timestamp read back from
# SQLite is text, and must be written back as that same text).
_JSON_COLUMNS = frozenset({"content", "changes", "state"})


def _insert(bind: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = [sa.column(c, sa.JSON() if c in _JSON_COLUMNS else None) for c in rows[0]]
    bind.execute(sa.table(table, *columns).insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="open"))
        batch.create_check_constraint(
            "status", _one_of("status", "open", "accepted", "edited", "rejected")
        )
    # A note's decisions fold back into one status: the most recent one.
    bind = op.get_bind()
    for sid, status in _rows(
        bind,
        "SELECT suggestion_id, status FROM suggestion_decisions ORDER BY decided_at, id",
    ):
        bind.execute(
            sa.text("UPDATE suggestions SET status = :s WHERE id = :id"), {"s": status, "id": sid}
        )
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("verdict")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("retired_by")
        batch.drop_column("retired_at")
    for table in (
        "serving_models",
        "skips",
        "claims",
        "drafts",
        "gold_versions",
        "suggestion_decisions",
        "logins",
    ):
        op.drop_table(table)
