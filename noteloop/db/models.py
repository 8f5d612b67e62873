"""The tables. Gold (annotations, spans, relations) and model output (suggestions) live apart.

Some classes share their names with the core vocabulary (``models.Document`` is the row
of a ``core.schema.Document``): where both are in scope, name these through the module
(``models.Span``). :mod:`noteloop.db.convert` maps between the two.
Every constraint has a name (the naming convention below), so later Alembic migrations,
which rebuild SQLite tables in batch mode, can find them.

A document's text is immutable: every stored offset counts its characters. The ORM
refuses to change it (:func:`_refuse_text_change`); a raw SQL ``UPDATE`` is not guarded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from noteloop.core.errors import InvalidDocumentError
from noteloop.core.schema import AnnotationStatus, Role, SpanSource, Split

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The allowed values of the text columns that CheckConstraints guard. Migration 0001
# spells them out: a new value needs a migration.
ROLES = tuple(r.value for r in Role)
SPLITS = tuple(s.value for s in Split)
ANNOTATION_STATUSES = tuple(s.value for s in AnnotationStatus)
SPAN_SOURCES = tuple(s.value for s in SpanSource)
SUGGESTION_KINDS = ("span", "relation")
DECISIONS = ("accepted", "edited", "rejected")
CLAIM_PURPOSES = ("annotate", "second", "reopen")
QUEUE_PICKS = ("strategy", "random")
MODEL_STATUSES = ("pending", "ready", "failed")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_JOB = "status IN ('queued', 'running')"
CHUNK_STATUSES = ("queued", "running", "done", "failed")
CURVE_TASKS = ("entity", "relation")


# Python None in these columns is SQL NULL ("not applicable"), not the JSON text 'null'.
_NULLABLE_JSON = JSON(none_as_null=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp: stored naive (SQLite keeps no zone), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created() -> Mapped[datetime]:
    return mapped_column(UtcDateTime(), default=utcnow, nullable=False)


# --------------------------------------------------------------------------- people, projects


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("name", name="uq_projects_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # LabelSchema.to_dict(); read back with projects.project_schema.
    label_schema: Mapped[dict[str, Any]] = mapped_column("schema", JSON, nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return f"Project(id={self.id!r}, name={self.name!r})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name", name="uq_users_name"),
        CheckConstraint(_one_of("role", ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    # scrypt$n$r$p$salt_hex$hash_hex (accounts.hash_password); never the password itself.
    password_hash: Mapped[str] = mapped_column(String(300), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, name={self.name!r}, role={self.role!r})"


class Membership(Base):
    """An annotator's access to a project (leads and admins see every project)."""

    __tablename__ = "project_members"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )

    def __repr__(self) -> str:
        return f"Membership(user_id={self.user_id!r}, project_id={self.project_id!r})"


class Login(Base):
    """A logged-in browser: the cookie carries a random token, the table only its SHA-256.

    Ends at log out, at revocation by an admin, after ``idle`` minutes without a request,
    or at ``expires_at`` whatever the activity.
    """

    __tablename__ = "logins"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_logins_token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = _created()
    seen_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    client: Mapped[str] = mapped_column(String(300), nullable=False, default="")

    def __repr__(self) -> str:
        return f"Login(id={self.id!r}, user_id={self.user_id!r}, ended_at={self.ended_at!r})"


THROTTLE_KINDS = ("user", "address")


class LoginThrottle(Base):
    """The recent failed logins of one user name or one client address, kept in the
    database so that every app process of a team judges the same count.

    ``failures`` counts the failures since the count last began (a success clears a user
    name's count; a quiet window restarts either); past the limit, logins of that name or
    from that address are refused until ``locked_until``, whatever the password.
    """

    __tablename__ = "login_throttles"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_login_throttles_kind_key"),
        CheckConstraint(_one_of("kind", THROTTLE_KINDS), name="kind"),
        CheckConstraint("failures >= 0", name="failures_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    key: Mapped[str] = mapped_column(String(300), nullable=False)  # a user name or address
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def __repr__(self) -> str:
        return (
            f"LoginThrottle(kind={self.kind!r}, key={self.key!r}, failures={self.failures!r}, "
            f"locked_until={self.locked_until!r})"
        )


# --------------------------------------------------------------------------- documents, gold


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_documents_project_id_external_id"),
        UniqueConstraint("project_id", "sha256", name="uq_documents_project_id_sha256"),
        CheckConstraint(_one_of("split", SPLITS), name="split"),
        Index("ix_documents_project_id_split", "project_id", "split"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    external_id: Mapped[str] = mapped_column(String(500), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)  # immutable, see module doc
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    split: Mapped[str] = mapped_column(String(10), nullable=False, default="pool")
    n_chars: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _created()
    # A retired document leaves the queue, training, metrics and export; it stays here,
    # with its gold, and a lead can restore it (retired_at back to NULL).
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    retired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)

    def __repr__(self) -> str:
        return (
            f"Document(id={self.id!r}, project_id={self.project_id!r}, "
            f"external_id={self.external_id!r}, split={self.split!r}, n_chars={self.n_chars!r})"
        )


@event.listens_for(Document, "before_update")
def _refuse_text_change(_mapper: Mapper[Any], _connection: Any, target: Document) -> None:
    state = inspect(target)
    for name in ("text", "sha256", "n_chars"):
        if state.attrs[name].history.has_changes():
            raise InvalidDocumentError(
                f"document {target.external_id}: the text of a stored document cannot change "
                "(every annotation offset counts its characters); add it as a new document"
            )


class Annotation(Base):
    """One annotator's gold for one document; ``version`` counts saves (optimistic locking)."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("document_id", "annotator", name="uq_annotations_document_id_annotator"),
        CheckConstraint(_one_of("status", ANNOTATION_STATUSES), name="status"),
        CheckConstraint("version >= 0", name="version_nonnegative"),
        CheckConstraint("seconds_spent >= 0", name="seconds_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    # A user name, not a foreign key: imported gold and simulated annotators need no account.
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="in_progress")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    seconds_spent: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # A lead's merge of other annotators' versions: the note's final gold (the most
    # recently submitted one, when leads adjudicated twice); never an annotator's own work,
    # so agreement leaves it out.
    adjudicated: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="0"
    )
    updated_by: Mapped[str] = mapped_column(String(200), nullable=False)
    started_at: Mapped[datetime] = _created()
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"Annotation(id={self.id!r}, document_id={self.document_id!r}, "
            f"annotator={self.annotator!r}, status={self.status!r}, version={self.version!r}, "
            f"adjudicated={self.adjudicated!r})"
        )


class Span(Base):
    __tablename__ = "spans"
    __table_args__ = (
        UniqueConstraint("annotation_id", "key", name="uq_spans_annotation_id_key"),
        CheckConstraint("start >= 0", name="start_nonnegative"),
        CheckConstraint('start < "end"', name="start_before_end"),
        CheckConstraint(_one_of("source", SPAN_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(100), nullable=False)  # core Span.id
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    start: Mapped[int] = mapped_column(Integer, nullable=False)
    end: Mapped[int] = mapped_column(Integer, nullable=False)
    # NULL for the usual case (one fragment start..end, no attributes, no notes): a NULL
    # costs nothing to read, a JSON value a decode, and notes hold hundreds of spans.
    fragments: Mapped[list[list[int]] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    attributes: Mapped[list[list[str]] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    notes: Mapped[list[str] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    concept: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="manual")
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="SET NULL"), nullable=True, index=True
    )

    def __repr__(self) -> str:
        return (
            f"Span(id={self.id!r}, key={self.key!r}, label={self.label!r}, "
            f"start={self.start!r}, end={self.end!r}, source={self.source!r})"
        )


class Relation(Base):
    __tablename__ = "relations"
    __table_args__ = (
        UniqueConstraint("annotation_id", "key", name="uq_relations_annotation_id_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(100), nullable=False)  # core Relation.id
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    # Indexed: deleting a span looks up the relations that cascade with it.
    head_id: Mapped[int] = mapped_column(
        ForeignKey("spans.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tail_id: Mapped[int] = mapped_column(
        ForeignKey("spans.id", ondelete="CASCADE"), nullable=False, index=True
    )
    notes: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)

    def __repr__(self) -> str:
        return (
            f"Relation(id={self.id!r}, key={self.key!r}, label={self.label!r}, "
            f"head_id={self.head_id!r}, tail_id={self.tail_id!r})"
        )


class Equivalence(Base):
    __tablename__ = "equivalences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    members: Mapped[list[str]] = mapped_column(JSON, nullable=False)  # span keys

    def __repr__(self) -> str:
        return f"Equivalence(id={self.id!r}, label={self.label!r}, members={self.members!r})"


# --------------------------------------------------------------------------- the gold lifecycle


class GoldVersion(Base):
    """One saved state of an annotation's gold: every submit (and every restore) adds one.

    ``content`` is the gold in the audit form (:func:`noteloop.db.convert.audit_json`),
    ``changes`` what differs from the version before (counts and the span keys); the
    annotation's span and relation rows always hold the newest version.
    """

    __tablename__ = "gold_versions"
    __table_args__ = (
        UniqueConstraint("annotation_id", "version", name="uq_gold_versions_annotation_id_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    saved_by: Mapped[str] = mapped_column(String(200), nullable=False)
    saved_at: Mapped[datetime] = _created()
    content: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # The version this one restored, when a lead restored an earlier version.
    restored_from: Mapped[int | None] = mapped_column(Integer, nullable=True)

    def __repr__(self) -> str:
        return (
            f"GoldVersion(annotation_id={self.annotation_id!r}, version={self.version!r}, "
            f"saved_by={self.saved_by!r})"
        )


class Draft(Base):
    """An annotator's unsubmitted work on a note: the widget's state, saved as they go.

    Relative to the gold version it was made on (``base_version``) and to the suggestion
    batch it was shown (``model_version_id``), so that reopening the note replays it on
    exactly what it was made against. Never read by training, metrics or export.
    """

    __tablename__ = "drafts"
    __table_args__ = (
        UniqueConstraint("document_id", "annotator", name="uq_drafts_document_id_annotator"),
        CheckConstraint("base_version >= 0", name="base_version_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    base_version: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"Draft(document_id={self.document_id!r}, annotator={self.annotator!r}, "
            f"base_version={self.base_version!r})"
        )


class Claim(Base):
    """A lease on a note by one annotator, renewed by their activity on it.

    ``slot`` makes "two people never get the same note" a constraint, not a check: the
    first annotation of a note takes slot 0, the second one (double annotation) slot 1,
    and ``UNIQUE(document_id, slot)`` refuses a second claimer, on any database. A reopened
    submission needs no slot (slot NULL): only its own annotator edits it.
    """

    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("document_id", "annotator", name="uq_claims_document_id_annotator"),
        UniqueConstraint("document_id", "slot", name="uq_claims_document_id_slot"),
        CheckConstraint(_one_of("purpose", CLAIM_PURPOSES), name="purpose"),
        Index("ix_claims_annotator", "annotator"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False, default="annotate")
    claimed_by: Mapped[str] = mapped_column(String(200), nullable=False)
    claimed_at: Mapped[datetime] = _created()
    active_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"Claim(document_id={self.document_id!r}, annotator={self.annotator!r}, "
            f"slot={self.slot!r}, purpose={self.purpose!r})"
        )


class Skip(Base):
    """An annotator passed on a note (with their reason): not offered to them again."""

    __tablename__ = "skips"
    __table_args__ = (Index("ix_skips_annotator_document_id", "annotator", "document_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return f"Skip(document_id={self.document_id!r}, annotator={self.annotator!r})"


# --------------------------------------------------------------------------- model output


class ModelVersion(Base):
    """A trained adapter; only ``ready`` versions (complete on disk, and in ``model_files``
    when published by this code) are served. ``path`` is the folder it was published to
    on the host that trained it."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_model_versions_project_id_name"),
        CheckConstraint(_one_of("status", MODEL_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    backend: Mapped[str] = mapped_column(String(50), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    n_train_docs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="ready")
    # Why the version serves or was kept as a candidate when it was published.
    verdict: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    created_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"ModelVersion(id={self.id!r}, project_id={self.project_id!r}, name={self.name!r}, "
            f"backend={self.backend!r}, status={self.status!r})"
        )


class Suggestion(Base):
    """One predicted span or relation; relations point at span suggestions of the same batch."""

    __tablename__ = "suggestions"
    __table_args__ = (
        UniqueConstraint(
            "document_id",
            "model_version_id",
            "key",
            name="uq_suggestions_document_id_model_version_id_key",
        ),
        CheckConstraint(_one_of("kind", SUGGESTION_KINDS), name="kind"),
        CheckConstraint("score >= 0 AND score <= 1", name="score_range"),
        CheckConstraint(
            "(kind = 'span' AND start IS NOT NULL AND \"end\" IS NOT NULL "
            'AND start >= 0 AND start < "end") '
            "OR (kind = 'relation' AND head_id IS NOT NULL AND tail_id IS NOT NULL)",
            name="kind_fields",
        ),
        Index("ix_suggestions_document_id_model_version_id", "document_id", "model_version_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    key: Mapped[str] = mapped_column(String(100), nullable=False)  # the item's id in its batch
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fragments: Mapped[list[list[int]] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    attributes: Mapped[list[list[str]] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    concept: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    head_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    tail_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), nullable=True, index=True
    )
    score: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"Suggestion(id={self.id!r}, kind={self.kind!r}, key={self.key!r}, "
            f"label={self.label!r}, score={self.score!r})"
        )


class SuggestionDecision(Base):
    """How one annotator treated one suggestion. Per annotator: on a note that two people
    annotate, each one's decisions are their own. No row: still open for that annotator."""

    __tablename__ = "suggestion_decisions"
    __table_args__ = (
        UniqueConstraint(
            "suggestion_id", "annotator", name="uq_suggestion_decisions_suggestion_id_annotator"
        ),
        CheckConstraint(_one_of("status", DECISIONS), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(
        ForeignKey("suggestions.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    decided_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"SuggestionDecision(suggestion_id={self.suggestion_id!r}, "
            f"annotator={self.annotator!r}, status={self.status!r})"
        )


class ServingModel(Base):
    """The model version whose suggestions a project's annotators get, and who chose it.

    A row of its own rather than a column of ``projects``: projects and model versions
    would otherwise point at each other.
    """

    __tablename__ = "serving_models"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
    )
    chosen_by: Mapped[str] = mapped_column(String(200), nullable=False)
    chosen_at: Mapped[datetime] = _created()
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")

    def __repr__(self) -> str:
        return (
            f"ServingModel(project_id={self.project_id!r}, "
            f"model_version_id={self.model_version_id!r}, chosen_by={self.chosen_by!r})"
        )


# --------------------------------------------------------------------------- worker


class TrainingJob(Base):
    """Background work queued by the app and run by the worker; always ends terminal."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
        Index("ix_training_jobs_status_created_at", "status", "created_at"),
        # One active job per project and kind, held by the database itself: two processes
        # that enqueue at once cannot both insert (jobs.enqueue catches the loser's error).
        Index(
            "uq_training_jobs_one_active",
            "project_id",
            "kind",
            unique=True,
            sqlite_where=sql_text(ACTIVE_JOB),
            postgresql_where=sql_text(ACTIVE_JOB),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # train, predict, rank...
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    phase: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # How many times a worker started this job: a job that keeps killing its worker (out of
    # memory, say) is failed after a few recoveries instead of looping for ever.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    reason: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default="")
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def __repr__(self) -> str:
        return (
            f"TrainingJob(id={self.id!r}, kind={self.kind!r}, status={self.status!r}, "
            f"progress={self.progress!r})"
        )


class ModelFile(Base):
    """One file of a published model version, kept in the database: every worker host and
    every ``noteloop predict`` reads a version from here, whichever host trained it.

    Adapters and heads are a few megabytes; a host that lacks the version's folder writes
    these files into its own models folder once (:func:`noteloop.usecases.modeling.version_folder`).
    """

    __tablename__ = "model_files"
    __table_args__ = (
        UniqueConstraint("model_version_id", "path", name="uq_model_files_model_version_id_path"),
        CheckConstraint("size >= 0", name="size_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
    )
    path: Mapped[str] = mapped_column(String(500), nullable=False)  # relative, '/'-separated
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)

    def __repr__(self) -> str:
        return (
            f"ModelFile(model_version_id={self.model_version_id!r}, path={self.path!r}, "
            f"size={self.size!r})"
        )


class PredictChunk(Base):
    """A slice of a job's pool prediction, which any worker may take: a large pool is
    predicted by several workers at once, and the job ranks the queue once every chunk of
    its current attempt is done.

    Like a job, a chunk belongs to the worker and attempt that claimed it (``worker_id``,
    ``attempts``) and is reclaimed when its heartbeat goes stale. ``result`` holds what the
    ranking needs of each note: its row id, confidence and embedding.
    """

    __tablename__ = "predict_chunks"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "job_attempt", "seq", name="uq_predict_chunks_job_id_job_attempt_seq"
        ),
        CheckConstraint(_one_of("status", CHUNK_STATUSES), name="status"),
        Index("ix_predict_chunks_status_job_id", "status", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=False
    )
    job_attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
    )
    document_ids: Mapped[list[int]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    stored: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")

    def __repr__(self) -> str:
        return (
            f"PredictChunk(id={self.id!r}, job_id={self.job_id!r}, seq={self.seq!r}, "
            f"status={self.status!r}, worker_id={self.worker_id!r})"
        )


class CurvePoint(Base):
    """One point of a learning curve; ``label`` '' is the micro average over labels."""

    __tablename__ = "curve_points"
    __table_args__ = (
        CheckConstraint(_one_of("task", CURVE_TASKS), name="task"),
        Index("ix_curve_points_project_id_task_metric", "project_id", "task", "metric"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=True
    )
    # Which series the point belongs to (active-learning strategy, "random"...), '' = live.
    strategy: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    n_gold_docs: Mapped[int] = mapped_column(Integer, nullable=False)
    annotator_hours: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    task: Mapped[str] = mapped_column(String(20), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    metric: Mapped[str] = mapped_column(String(50), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"CurvePoint(id={self.id!r}, task={self.task!r}, label={self.label!r}, "
            f"metric={self.metric!r}, n_gold_docs={self.n_gold_docs!r}, value={self.value!r})"
        )


class QueueScore(Base):
    """A document's place in the annotation queue, as the last ranking left it."""

    __tablename__ = "queue_scores"
    __table_args__ = (
        UniqueConstraint(
            "project_id", "document_id", name="uq_queue_scores_project_id_document_id"
        ),
        Index("ix_queue_scores_project_id_rank", "project_id", "rank"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    strategy: Mapped[str] = mapped_column(String(100), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    computed_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"QueueScore(document_id={self.document_id!r}, strategy={self.strategy!r}, "
            f"rank={self.rank!r}, score={self.score!r})"
        )


class QueuePick(Base):
    """How a claimed note came out of the queue: the strategy's pick or one of the random
    share the worker keeps as a guard (``ProjectSettings.random_share``). Written when the
    note is claimed, so it outlives the queue's next ranking, and read by the Dashboard to
    set the strategy's picks beside the random ones."""

    __tablename__ = "queue_picks"
    __table_args__ = (
        CheckConstraint(_one_of("pick", QUEUE_PICKS), name="pick"),
        Index("ix_queue_picks_document_id_annotator", "document_id", "annotator"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    pick: Mapped[str] = mapped_column(String(20), nullable=False)
    strategy: Mapped[str] = mapped_column(String(100), nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    picked_at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"QueuePick(document_id={self.document_id!r}, annotator={self.annotator!r}, "
            f"pick={self.pick!r}, strategy={self.strategy!r})"
        )


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    entity: Mapped[str] = mapped_column(String(100), nullable=False)  # a table name
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[Any | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    after: Mapped[Any | None] = mapped_column(_NULLABLE_JSON, nullable=True)
    at: Mapped[datetime] = _created()

    def __repr__(self) -> str:
        return (
            f"AuditLog(id={self.id!r}, user={self.user!r}, action={self.action!r}, "
            f"entity={self.entity!r}, entity_id={self.entity_id!r})"
        )
