"""Documents: adding them (:func:`add_documents`), reading them, and retiring them, the one
writer that takes a note out of use and puts it back.

A retired document leaves the annotation queue, training, the metrics and every export:
:func:`documents`, :func:`document_ids` and
:func:`~noteloop.db.gold.gold_documents` leave it out unless asked, and the readers that
count rows themselves (queue, dashboard, adjudication, the training trigger) filter on
``documents.retired_at``. Nothing of it is deleted: its text, gold versions, suggestions
and audit history stay, and :func:`restore` brings it back as it was.

Documents are named by their external ids, the ids people see. A command naming an id
the project does not have changes nothing (all or nothing); naming a document that is
retired already (or, to restore, one that is not) is not an error, it is left as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from noteloop.core.errors import InvalidDocumentError, NotFoundError
from noteloop.core.schema import AnnotationStatus, Document, Split
from noteloop.db import audit, convert, gold, limits, models, projects
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import Annotation, Project, utcnow

_SHOWN_UNKNOWN = 20  # unknown ids named in the error; the rest are counted


@dataclass(frozen=True)
class AddResult:
    """Row ids of the documents added (in input order) and the ones skipped, with why."""

    added: list[int]
    duplicates: list[tuple[str, str]]  # (document id, reason)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def add_documents(
    session: Session, project: Project, docs: Iterable[Document], split: Split = Split.POOL
) -> AddResult:
    """Store the texts of ``docs`` (their annotations are not stored: see save_annotation).

    A document whose id, or whose exact text (SHA-256), the project holds already (or an
    earlier document of the same batch) is skipped and reported, not an error; so is one
    that another import added while this one ran (the insert skips what the unique
    constraints refuse, instead of failing the whole transaction on PostgreSQL).

    Raises:
        InvalidDocumentError: an id the database cannot hold (too long); nothing written.
    """
    begin_write(session)
    split = Split(split)
    known = _known(session, project)
    by_hash = {sha: ext for ext, sha in known.items()}
    rows, duplicates = [], []
    for doc in docs:
        _check_storable(doc)
        sha = text_sha256(doc.text)
        reason = _duplicate_reason(doc.id, sha, known, by_hash)
        if reason:
            duplicates.append((doc.id, reason))
            continue
        known[doc.id], by_hash[sha] = sha, doc.id
        rows.append(_document_row(project, doc, sha, split))
    ids = _insert_new(session, rows)
    raced = [row for row in rows if row["external_id"] not in ids]
    if raced:
        duplicates.extend(_raced_reasons(session, project, raced))
    session.flush()
    return AddResult(
        added=[ids[row["external_id"]] for row in rows if row["external_id"] in ids],
        duplicates=duplicates,
    )


def _known(session: Session, project: Project) -> dict[str, str]:
    """External id -> text hash of the project's documents."""
    query = select(models.Document.external_id, models.Document.sha256).where(
        models.Document.project_id == project.id
    )
    return dict(session.execute(query).all())


def _check_storable(doc: Document) -> None:
    problem = limits.document_id_problem(doc.id)
    if problem:
        raise InvalidDocumentError(f"{problem}; nothing was added")


def _insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert ``rows``, skipping any a unique constraint refuses (another import added
    the same document meanwhile); external id -> row id of the ones inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    ids: dict[str, int] = {}
    table = models.Document.__table__
    for chunk in limits.chunks(rows, 200):
        statement = (
            insert(table)
            .values(list(chunk))
            .on_conflict_do_nothing()
            .returning(table.c.external_id, table.c.id)
        )
        ids.update(session.execute(statement).all())
    return ids


def _raced_reasons(
    session: Session, project: Project, raced: Sequence[dict[str, Any]]
) -> list[tuple[str, str]]:
    known = _known(session, project)
    by_hash = {sha: ext for ext, sha in known.items()}
    return [
        (row["external_id"], _duplicate_reason(row["external_id"], row["sha256"], known, by_hash))
        for row in raced
    ]


def _duplicate_reason(
    doc_id: str, sha: str, known: Mapping[str, str], by_hash: Mapping[str, str]
) -> str:
    if doc_id in known:
        return f"a document with id {doc_id} exists already"
    if sha in by_hash:
        return f"same text as document {by_hash[sha]}"
    return ""


def _document_row(project: Project, doc: Document, sha: str, split: Split) -> dict[str, Any]:
    return {
        "project_id": project.id,
        "external_id": doc.id,
        "text": doc.text,
        "sha256": sha,
        "metadata": dict(doc.metadata),  # the column's name (the attribute is ``meta``)
        "split": split.value,
        "n_chars": len(doc.text),
        "created_at": utcnow(),
    }


def _document_query(project: Project, split: Split | None, include_retired: bool) -> Any:
    query = select(models.Document).where(models.Document.project_id == project.id)
    if split is not None:
        query = query.where(models.Document.split == Split(split).value)
    if not include_retired:
        # The one place the queue, training, metrics and export leave retired notes out.
        query = query.where(models.Document.retired_at.is_(None))
    return query.order_by(models.Document.id)


def documents(
    session: Session,
    project: Project,
    split: Split | None = None,
    *,
    include_retired: bool = False,
) -> list[Document]:
    """The project's documents (text and metadata, no annotations), oldest first.

    Retired documents are left out unless ``include_retired``.
    """
    query = _document_query(project, split, include_retired)
    return [convert.document_from_row(r) for r in session.scalars(query)]


def document_ids(
    session: Session,
    project: Project,
    split: Split | None = None,
    *,
    include_retired: bool = False,
) -> dict[str, int]:
    """Document id (the core ``Document.id``) -> row id, oldest first; retired documents
    only with ``include_retired``."""
    query = _document_query(project, split, include_retired).with_only_columns(
        models.Document.external_id, models.Document.id
    )
    return dict(session.execute(query).all())


def get_document(session: Session, document_id: int) -> models.Document:
    row = session.get(models.Document, document_id)
    if row is None:
        raise NotFoundError(f"no document with row id {document_id}")
    return row


@dataclass(frozen=True)
class DocumentRow:
    """One document as the Documents page and ``noteloop documents list`` show it."""

    id: str  # the external id
    split: str
    words: int
    gold: bool  # someone submitted gold for it
    retired_at: datetime | None
    retired_by: str | None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    @property
    def status(self) -> str:
        return "retired" if self.retired else "live"


def retire(
    session: Session, project: str, external_ids: Iterable[str], by: str, reason: str = ""
) -> list[str]:
    """Retire the named documents of ``project`` (a name); returns the ids retired now.

    One ``retire_document`` audit row per document, with the reason. The caller commits.

    Raises:
        NotFoundError: no such project, or ids the project does not have (named).
        StoreError: no id given.
    """
    return _set_retired(session, project, external_ids, by, reason, retiring=True)


def restore(
    session: Session, project: str, external_ids: Iterable[str], by: str, reason: str = ""
) -> list[str]:
    """Bring retired documents back into use; returns the ids restored now.

    One ``restore_document`` audit row per document. The caller commits.

    Raises:
        NotFoundError: no such project, or ids the project does not have (named).
        StoreError: no id given.
    """
    return _set_retired(session, project, external_ids, by, reason, retiring=False)


def _set_retired(
    session: Session,
    project_name: str,
    external_ids: Iterable[str],
    by: str,
    reason: str,
    *,
    retiring: bool,
) -> list[str]:
    verb = "retire" if retiring else "restore"
    wanted = list(dict.fromkeys(external_ids))  # once each, in the order given
    if not wanted:
        raise StoreError(f"name at least one document to {verb}")
    begin_write(session)  # before the first read: what is read here is what gets written
    project = projects.get_project(session, project_name)
    rows = _locked_rows(session, project, wanted, verb)
    changing = [row for row in rows if (row.retired_at is None) == retiring]
    now = utcnow()
    for row in changing:
        before = _state(row)
        row.retired_at, row.retired_by = (now, by) if retiring else (None, None)
        after = {**_state(row), "reason": reason.strip()}
        audit.record_audit(session, by, f"{verb}_document", "documents", row.id, before, after)
    session.flush()
    return [row.external_id for row in changing]


def _locked_rows(
    session: Session, project: Project, wanted: Sequence[str], verb: str
) -> list[models.Document]:
    """The rows of ``wanted``, in that order, locked until commit (a row lock on
    PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the whole file already)."""
    found: dict[str, models.Document] = {}
    for chunk in limits.chunks(wanted):
        query = (
            select(models.Document)
            .where(
                models.Document.project_id == project.id,
                models.Document.external_id.in_(chunk),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found.update((row.external_id, row) for row in session.scalars(query))
    missing = [ext for ext in wanted if ext not in found]
    if missing:
        raise NotFoundError(_unknown(project.name, missing, verb))
    return [found[ext] for ext in wanted]


def _unknown(project: str, missing: Sequence[str], verb: str) -> str:
    shown = ", ".join(missing[:_SHOWN_UNKNOWN])
    more = f" and {len(missing) - _SHOWN_UNKNOWN} more" if len(missing) > _SHOWN_UNKNOWN else ""
    noun = "document" if len(missing) == 1 else "documents"
    return f"project {project} has no {noun} {shown}{more}: nothing was {verb}d"


def _state(row: models.Document) -> dict[str, Any]:
    at = row.retired_at.isoformat(timespec="seconds") if row.retired_at else None
    return {"external_id": row.external_id, "retired_at": at, "retired_by": row.retired_by}


def document_rows(
    session: Session,
    project: str,
    *,
    retired: bool | None = None,
    split: Split | None = None,
) -> list[DocumentRow]:
    """The project's documents, oldest first: every one (``retired=None``), only the
    retired ones (True) or only the live ones (False); of one split when given."""
    project_row = projects.get_project(session, project)
    submitted = (
        select(Annotation.id)
        .where(
            Annotation.document_id == models.Document.id,
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
        .exists()
    )
    query = select(
        models.Document.external_id,
        models.Document.split,
        models.Document.text,
        submitted,
        models.Document.retired_at,
        models.Document.retired_by,
    ).where(models.Document.project_id == project_row.id)
    if split is not None:
        query = query.where(models.Document.split == Split(split).value)
    if retired is not None:
        column = models.Document.retired_at
        query = query.where(column.is_not(None) if retired else column.is_(None))
    return [
        DocumentRow(ext, split_, len(text.split()), bool(gold), at, who)
        for ext, split_, text, gold, at, who in session.execute(query.order_by(models.Document.id))
    ]


@dataclass(frozen=True)
class Browse:
    """What the Documents page lists for one split: every document, retired ones too,
    and each as a core Document with its gold when it has some."""

    rows: list[DocumentRow]
    documents: dict[str, Document]


def browse(session: Session, project: str, split: Split) -> Browse:
    """The split's documents for the Documents page, retired ones included and marked."""
    project_row = projects.get_project(session, project)
    with_gold = {
        d.id: d
        for d in gold.gold_documents(session, project_row, split=split, include_retired=True)
    }
    plain = documents(session, project_row, split, include_retired=True)
    return Browse(
        document_rows(session, project, split=split),
        {d.id: with_gold.get(d.id, d) for d in plain},
    )
