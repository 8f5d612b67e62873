"""Gold: an annotator's annotation of a note, its one writer, its readers, and restore.

:func:`save_annotation` is the one writer of gold, whoever saves (the Annotate page, an
import, a lead adjudicating or restoring): it checks the gold against the note's text, the
project schema and the suggestions, advances the version atomically, keeps a submitted
save as a gold version (:mod:`noteloop.db.gold_versions`) and writes the audit row.
:func:`load_annotation` reads one annotator's gold, :func:`gold_documents` the gold that
training, evaluation and export read. :func:`restore` makes a kept version the newest again.

The caller owns the transaction: functions flush but never commit, so an import can add
documents and their gold in one transaction and roll all of it back. The writers start the
session's transaction with ``BEGIN IMMEDIATE`` when none is open yet
(:func:`noteloop.db.engine.begin_write`).

Errors: :class:`NotFoundError` for a missing document; :class:`ConflictError` for a stale
annotation version; :class:`StoreError` for a bad annotator name or argument; the core
validation errors (``InvalidSpanError``, ``SchemaError``...) for gold that does not fit its
document or the project schema. All of them are raised before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.core.errors import ConflictError, InvalidSpanError, SchemaError
from noteloop.core.schema import AnnotationStatus, Document, Equivalence, Relation, Span, Split
from noteloop.db import audit, convert, documents, gold_versions, limits, models, projects
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import Annotation, Project, utcnow

# --------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class LoadedAnnotation:
    """An annotator's gold for one document; version 0 (and no status) when there is none."""

    document: Document
    version: int
    status: AnnotationStatus | None
    seconds_spent: float
    saved_by: str | None = None
    saved_at: datetime | None = None


def load_annotation(session: Session, document_id: int, annotator: str) -> LoadedAnnotation:
    """The document with ``annotator``'s gold, and the version to pass back when saving."""
    doc_row = documents.get_document(session, document_id)
    ann = _find_annotation(session, document_id, annotator)
    if ann is None:
        return LoadedAnnotation(convert.document_from_row(doc_row), 0, None, 0.0)
    document = _gold_documents(session, [(doc_row, ann.id)])[0]
    return LoadedAnnotation(
        document=document,
        version=ann.version,
        status=AnnotationStatus(ann.status),
        seconds_spent=ann.seconds_spent,
        saved_by=ann.updated_by,
        saved_at=ann.updated_at,
    )


def annotation_documents(session: Session, annotation_ids: Sequence[int]) -> dict[int, Document]:
    """Annotation id -> its document with that annotation's gold, whatever its status."""
    pairs: list[tuple[models.Document, int]] = []
    ids = list(annotation_ids)
    for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        query = (
            select(models.Document, Annotation.id)
            .join(Annotation, Annotation.document_id == models.Document.id)
            .where(Annotation.id.in_(ids[i : i + 500]))
        )
        pairs.extend((doc_row, ann_id) for doc_row, ann_id in session.execute(query))
    docs = _gold_documents(session, pairs)
    return {ann_id: doc for (_, ann_id), doc in zip(pairs, docs, strict=True)}


def _find_annotation(session: Session, document_id: int, annotator: str) -> Annotation | None:
    query = select(Annotation).where(
        Annotation.document_id == document_id, Annotation.annotator == annotator
    )
    return session.scalar(query.execution_options(populate_existing=True))


def _gold_documents(
    session: Session, pairs: Sequence[tuple[Any, int]]
) -> list[Document]:
    """Documents (rows as :func:`convert.document_from_row` takes them) with the gold of
    the paired annotation ids, in three queries."""
    ids = [ann_id for _, ann_id in pairs]
    spans = _rows_by_annotation(session, models.Span, ids)
    relations = _rows_by_annotation(session, models.Relation, ids)
    equivalences = _rows_by_annotation(session, models.Equivalence, ids)
    return [
        convert.document_from_row(
            row, spans.get(ann_id, []), relations.get(ann_id, []), equivalences.get(ann_id, [])
        )
        for row, ann_id in pairs
    ]


def _rows_by_annotation(
    session: Session, model: Any, annotation_ids: list[int]
) -> dict[int, list[Any]]:
    """Core rows of ``model`` per annotation id, in row order.

    Span rows hold ``id``, ``annotation_id`` and then :data:`convert.SPAN_COLUMNS`, so
    that ``row[2:]`` is the span's content tuple.
    """
    table = model.__table__
    columns = [table.c.id, table.c.annotation_id]
    if model is models.Span:
        columns += [table.c[name] for name in convert.SPAN_COLUMNS]
    else:
        columns = list(table.c)
    out: dict[int, list[Any]] = {}
    # Chunks keep the IN list under SQLite's bound-parameter limit.
    for i in range(0, len(annotation_ids), 500):
        chunk = annotation_ids[i : i + 500]
        query = select(*columns).where(table.c.annotation_id.in_(chunk)).order_by(table.c.id)
        for row in session.execute(query):
            out.setdefault(row.annotation_id, []).append(row)
    return out


def gold_documents(
    session: Session,
    project: Project,
    *,
    split: Split | None = None,
    annotator: str | None = None,
    submitted_only: bool = True,
    include_retired: bool = False,
) -> list[Document]:
    """The project's documents that have gold, with it, oldest document first; retired
    documents only with ``include_retired`` (training, evaluation and export leave them out).

    When several annotators annotated a note and no ``annotator`` is given, a lead's
    adjudication is the gold (the most recent one, if leads adjudicated twice:
    :func:`noteloop.db.adjudication.adjudicate`); without one, the most recently
    submitted annotation (or, with ``submitted_only=False``, the most recently saved one).
    One annotation per note either way, so training reads the adjudicated version.
    """
    chosen = GoldDocuments.of(
        session, project, split=split, annotator=annotator, submitted_only=submitted_only,
        include_retired=include_retired,
    )
    return list(chosen)


# Documents read per query when gold streams: a few megabytes of notes at a time.
STREAM_BATCH = 200


class GoldDocuments:
    """The documents :func:`gold_documents` chooses, counted up front and read a batch at
    a time on each pass, so an export of 10,000 notes holds one batch, not the project.

    Iterating twice reads the database twice (a writer that checks every document before
    it writes a file does). ``on_progress(done, total)`` hears of every batch.
    """

    def __init__(
        self,
        session: Session,
        chosen: Sequence[tuple[int, int, str, str]],  # document row id, annotation id, id, split
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._session = session
        self._chosen = list(chosen)
        self.on_progress = on_progress

    @classmethod
    def of(
        cls,
        session: Session,
        project: Project,
        *,
        split: Split | None = None,
        annotator: str | None = None,
        submitted_only: bool = True,
        include_retired: bool = False,
    ) -> GoldDocuments:
        """The gold :func:`gold_documents` gives, not yet read."""
        recent = func.coalesce(Annotation.submitted_at, Annotation.updated_at)
        query = (
            select(
                models.Document.id, Annotation.id, models.Document.external_id,
                models.Document.split,
            )
            .join(Annotation, Annotation.document_id == models.Document.id)
            .where(models.Document.project_id == project.id)
            .order_by(
                models.Document.id, Annotation.adjudicated.desc(), recent.desc(),
                Annotation.id.desc(),
            )
        )
        if split is not None:
            query = query.where(models.Document.split == Split(split).value)
        if not include_retired:
            query = query.where(models.Document.retired_at.is_(None))
        if annotator is not None:
            query = query.where(Annotation.annotator == annotator)
        if submitted_only:
            query = query.where(Annotation.status == AnnotationStatus.SUBMITTED.value)
        first: dict[int, tuple[int, int, str, str]] = {}
        for row in session.execute(query):
            first.setdefault(row[0], tuple(row))  # type: ignore[arg-type]
        return cls(session, list(first.values()))

    def __len__(self) -> int:
        return len(self._chosen)

    def __iter__(self) -> Iterator[Document]:
        total = len(self._chosen)
        for done, batch in enumerate(limits.chunks(self._chosen, STREAM_BATCH), start=1):
            yield from self._read(batch)
            if self.on_progress:
                self.on_progress(min(done * STREAM_BATCH, total), total)

    def splits(self) -> dict[str, Split]:
        """Document id -> its split."""
        return {external_id: Split(split) for _, _, external_id, split in self._chosen}

    def _read(self, batch: Sequence[tuple[int, int, str, str]]) -> list[Document]:
        # Columns, not ORM rows: the session keeps no copy of the notes once written.
        table = models.Document
        query = select(table.id, table.external_id, table.text, table.meta).where(
            table.id.in_([doc_id for doc_id, *_ in batch])
        )
        rows = {row.id: row for row in self._session.execute(query)}
        return _gold_documents(self._session, [(rows[doc_id], ann) for doc_id, ann, *_ in batch])


def annotators_of(session: Session, document_id: int) -> list[str]:
    """Who has submitted gold for the note (adjudications included), by name."""
    query = (
        select(Annotation.annotator)
        .where(
            Annotation.document_id == document_id,
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
        .order_by(Annotation.annotator)
    )
    return list(session.scalars(query))


# --------------------------------------------------------------------------- the writer


def save_annotation(
    session: Session,
    document_id: int,
    annotator: str,
    spans: Iterable[Span],
    relations: Iterable[Relation],
    equivalences: Iterable[Equivalence] = (),
    *,
    expected_version: int,
    seconds_spent: float = 0.0,
    status: AnnotationStatus = AnnotationStatus.SUBMITTED,
    saved_by: str | None = None,
    restored_from: int | None = None,
) -> int:
    """Replace ``annotator``'s gold for the document; returns the new version.

    ``expected_version`` is the version that was loaded (0: none existed). When someone
    saved in between, ConflictError names them and nothing is written. The check is an
    atomic ``UPDATE ... WHERE version = expected`` (a unique constraint for the first
    save), so it holds across processes. ``saved_by`` (default: the annotator) is who
    saves, a lead correcting an annotator's work say. A submitted save is also kept as a
    gold version (:mod:`noteloop.db.gold_versions`); ``restored_from`` names the kept version
    it brings back, when a lead restores one. Writes one audit row; the caller commits.

    Call it on a session without an open transaction (a fresh one, or after commit): it
    then begins with ``BEGIN IMMEDIATE`` and waits its turn behind another writer. In a
    transaction that began by reading, SQLite may refuse the write ("database is
    locked") when another process saved in between; nothing is overwritten either way.

    Raises:
        ConflictError: the stored version is not ``expected_version``.
        InvalidSpanError, InvalidRelationError, SchemaError: the gold does not fit the
            document's text or the project schema.
        NotFoundError: no such document.
    """
    who = saved_by or annotator
    status = AnnotationStatus(status)
    _check_save_arguments(annotator, expected_version, seconds_spent)
    begin_write(session)
    doc_row = documents.get_document(session, document_id)
    current = _find_annotation(session, document_id, annotator)
    if (current.version if current else 0) != expected_version:
        raise _conflict(doc_row.external_id, annotator, current, expected_version)
    new_doc = _validated(session, doc_row, spans, relations, equivalences)
    if current is None:
        annotation_id = _create_annotation(session, doc_row, annotator, who)
    else:
        annotation_id = current.id
    stored = _rows_by_annotation(session, models.Span, [annotation_id]).get(annotation_id, [])
    wanted = [convert.span_values(s, annotation_id) for s in new_doc.spans]
    before = _annotation_record(session, current, stored) if current else None
    change = {"updated_by": who, "status": status, "seconds": seconds_spent}
    _advance_version(session, doc_row, annotator, annotation_id, expected_version, change)
    _write_gold(session, annotation_id, new_doc, stored, wanted)
    after = _after_record(expected_version + 1, status, new_doc, wanted)
    if status is AnnotationStatus.SUBMITTED:
        content = {k: after[k] for k in ("spans", "relations", "equivalences")}
        gold_versions.keep_version(
            session, annotation_id, expected_version + 1, who, content, restored_from=restored_from
        )
    action = "save_annotation" if restored_from is None else "restore_gold_version"
    audit.record_audit(session, who, action, "annotations", annotation_id, before, after)
    session.flush()
    return expected_version + 1


def _check_save_arguments(annotator: str, expected_version: int, seconds_spent: float) -> None:
    limits.check_name("annotator", annotator)
    if not isinstance(expected_version, int) or expected_version < 0:
        raise StoreError(f"expected_version must be an integer >= 0, got {expected_version!r}")
    if not seconds_spent >= 0:
        raise StoreError(f"seconds_spent must be >= 0, got {seconds_spent!r}")


def _validated(
    session: Session,
    doc_row: models.Document,
    spans: Iterable[Span],
    relations: Iterable[Relation],
    equivalences: Iterable[Equivalence],
) -> Document:
    """The gold as a Document, checked against the text, the schema and the suggestions."""
    doc = convert.document_from_row(doc_row).with_annotations(spans, relations, equivalences)
    project = session.get(Project, doc_row.project_id)
    assert project is not None  # documents.project_id is a foreign key
    problems = projects.project_schema(project).problems(doc)
    if problems:
        shown = "; ".join(message for _, message in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SchemaError(
            f"document {doc.id}: the annotation does not fit project {project.name}'s "
            f"schema, nothing saved: {shown}{more}"
        )
    _check_suggestion_links(session, doc_row, doc)
    return doc


def _check_suggestion_links(session: Session, doc_row: models.Document, doc: Document) -> None:
    wanted = {s.suggestion_id for s in doc.spans if s.suggestion_id is not None}
    if not wanted:
        return
    found = set(
        session.scalars(
            select(models.Suggestion.id).where(
                models.Suggestion.id.in_(wanted), models.Suggestion.document_id == doc_row.id
            )
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise InvalidSpanError(
            f"document {doc.id}: suggestion id(s) {missing} are not suggestions for this "
            "document, nothing saved"
        )


def _create_annotation(session: Session, doc_row: models.Document, annotator: str, who: str) -> int:
    """Insert the annotation row at version 0; the unique constraint decides a race."""
    now = utcnow()
    row = Annotation(
        document_id=doc_row.id,
        annotator=annotator,
        status=AnnotationStatus.IN_PROGRESS.value,
        version=0,
        seconds_spent=0.0,
        updated_by=who,
        started_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        current = _find_annotation(session, doc_row.id, annotator)
        if current is None:  # not the (document, annotator) constraint: a real error
            raise
        raise _conflict(doc_row.external_id, annotator, current, 0) from None
    return row.id


def _advance_version(
    session: Session,
    doc_row: models.Document,
    annotator: str,
    annotation_id: int,
    expected: int,
    change: Mapping[str, Any],
) -> None:
    """``UPDATE ... SET version = version + 1 WHERE version = expected``, or ConflictError.

    The WHERE clause makes the check and the claim one atomic statement: of two savers
    that loaded the same version, exactly one updates a row.
    """
    now = utcnow()
    status = AnnotationStatus(change["status"])
    values: dict[str, Any] = {
        "version": Annotation.version + 1,
        "seconds_spent": Annotation.seconds_spent + float(change["seconds"]),
        "status": status.value,
        "updated_by": change["updated_by"],
        "updated_at": now,
    }
    if status is AnnotationStatus.SUBMITTED:
        values["submitted_at"] = now
    statement = (
        update(Annotation)
        .where(Annotation.id == annotation_id, Annotation.version == expected)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        current = _find_annotation(session, doc_row.id, annotator)
        raise _conflict(doc_row.external_id, annotator, current, expected)


def _conflict(external_id: str, annotator: str, current: Any, expected: int) -> ConflictError:
    """The error for a stale save; ``current`` has the stored version, updated_by/_at."""
    if current is None:
        return ConflictError(
            f"document {external_id}: {annotator}'s annotation (version {expected}) "
            "no longer exists; reload the note",
            saved_by="",
            saved_at="",
            current_version=0,
        )
    saved_at = current.updated_at.isoformat(timespec="seconds")
    return ConflictError(
        f"document {external_id}: {current.updated_by} saved {annotator}'s annotation "
        f"at {saved_at} (now version {current.version}, you loaded version {expected}); "
        "nothing was saved: reload the note to see their changes",
        saved_by=current.updated_by,
        saved_at=saved_at,
        current_version=current.version,
    )


def _after_record(
    version: int, status: AnnotationStatus, doc: Document, wanted: list[dict[str, Any]]
) -> dict[str, Any]:
    spans = [convert.span_tuple(v) for v in wanted]
    record = convert.audit_json(spans, doc.relations, doc.equivalences)
    return {"version": version, "status": status.value, **record}


def _annotation_record(
    session: Session, ann: Annotation, stored_spans: list[Any]
) -> dict[str, Any]:
    """The audit form of the annotation as stored, before this save changes it."""
    keys = {row.id: row.key for row in stored_spans}
    relations = _rows_by_annotation(session, models.Relation, [ann.id]).get(ann.id, [])
    equivalences = _rows_by_annotation(session, models.Equivalence, [ann.id]).get(ann.id, [])
    record = convert.audit_json(
        (row[2:] for row in stored_spans),
        [convert.relation_from_row(r, keys) for r in relations],
        [convert.equivalence_from_row(e) for e in equivalences],
    )
    return {"version": ann.version, "status": ann.status, **record}


def _write_gold(
    session: Session,
    annotation_id: int,
    doc: Document,
    stored: list[Any],
    wanted: list[dict[str, Any]],
) -> None:
    """Make the annotation's rows say ``doc``: the same result as replacing them all.

    Span rows that did not change are kept (an annotator's save usually adds or edits a
    few spans of hundreds), unless the spans were reordered: then all are rewritten, so
    that loading returns them in the order they were saved. Relations and equivalences,
    few per note, are always rewritten.
    """
    for model in (models.Relation, models.Equivalence):
        session.execute(delete(model).where(model.annotation_id == annotation_id))
    if not _write_span_changes(session, stored, wanted):
        session.execute(delete(models.Span).where(models.Span.annotation_id == annotation_id))
        _insert(session, models.Span, wanted)
    if doc.relations:
        query = select(models.Span.key, models.Span.id).where(
            models.Span.annotation_id == annotation_id
        )
        ids = dict(session.execute(query).all())
        values = [convert.relation_values(r, annotation_id, ids) for r in doc.relations]
        _insert(session, models.Relation, values)
    values = [convert.equivalence_values(e, annotation_id) for e in doc.equivalences]
    _insert(session, models.Equivalence, values)


def _write_span_changes(session: Session, stored: list[Any], wanted: list[dict[str, Any]]) -> bool:
    """Delete, update and add only the spans that changed; False when order forbids it."""
    old = {row.key: row for row in stored}
    kept = [v["key"] for v in wanted if v["key"] in old]
    keep, n_kept = set(kept), len(kept)
    # Kept spans must come first and in their stored order: new rows sort after old ones.
    if [v["key"] for v in wanted[:n_kept]] != kept or kept != [k for k in old if k in keep]:
        return False
    gone = [row.id for row in stored if row.key not in keep]
    for i in range(0, len(gone), 500):
        session.execute(delete(models.Span).where(models.Span.id.in_(gone[i : i + 500])))
    changed = [
        {"row_id": old[v["key"]].id, **v}
        for v in wanted[:n_kept]
        if old[v["key"]][2:] != convert.span_tuple(v)
    ]
    if changed:
        table = models.Base.metadata.tables["spans"]
        session.execute(update(table).where(table.c.id == bindparam("row_id")), changed)
    _insert(session, models.Span, wanted[n_kept:])
    return True


def _insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    # Core inserts on the table: several times faster than ORM bulk inserts for many rows.
    if rows:
        session.execute(insert(model.__table__), rows)


def restore(
    session: Session,
    document_id: int,
    annotator: str,
    version: int,
    by: str,
    *,
    expected_version: int,
) -> int:
    """Make kept version ``version`` of ``annotator``'s gold the newest one again; returns
    the new version number. A new version, so the one it replaces stays in the history.

    ``expected_version`` is the newest version the person restoring was shown: when
    someone saved the note since, nothing is restored (they would undo a change they
    never saw).

    Raises:
        NotFoundError: no such annotation or kept version.
        ConflictError: the annotation is no longer at ``expected_version``.
    """
    begin_write(session)
    kept = gold_versions.kept_version(session, document_id, annotator, version)
    spans, relations, equivalences = convert.gold_from_audit(kept.content)
    return save_annotation(
        session,
        document_id,
        annotator,
        spans,
        relations,
        equivalences,
        expected_version=expected_version,
        status=AnnotationStatus.SUBMITTED,
        saved_by=by,
        restored_from=version,
    )
