"""Notes annotated by two or more people, and a lead's adjudication of them.

An adjudication is a gold annotation like any other, saved through
:func:`noteloop.db.gold.save_annotation` under the adjudicating lead's name (so it has a
version, an optimistic check and an audit row), and flagged ``adjudicated``. The
annotators' own versions stay as they were: agreement keeps measuring them, and the lead
can adjudicate again. :func:`noteloop.db.gold.gold_documents` makes the newest
adjudication the note's gold, so training, evaluation and export read it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from noteloop.core.errors import ConflictError
from noteloop.core.schema import AnnotationStatus, Document, Role
from noteloop.db import accounts, audit, documents, gold, models
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import Annotation, Project

ADJUDICATORS = (Role.LEAD.value, Role.ADMIN.value)


@dataclass(frozen=True)
class FinalGold:
    """The adjudication that is a note's gold now: whose, which version, when."""

    annotation_id: int
    lead: str
    version: int
    saved_at: datetime


@dataclass(frozen=True)
class SharedNote:
    """A note that two or more annotators submitted, and its adjudication if any."""

    document_id: int  # row id
    external_id: str
    split: str
    annotators: tuple[str, ...]  # who submitted their own version, by name
    final: FinalGold | None


def _submitted(project: Project) -> Select[int, str, str, str, bool]:
    return (
        select(
            models.Document.id,
            models.Document.external_id,
            models.Document.split,
            Annotation.annotator,
            Annotation.adjudicated,
        )
        .join(Annotation, Annotation.document_id == models.Document.id)
        .where(
            models.Document.project_id == project.id,
            models.Document.retired_at.is_(None),
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
        .order_by(models.Document.id, Annotation.annotator)
    )


def shared_notes(session: Session, project: Project) -> list[SharedNote]:
    """The project's live notes with two or more submitted annotators' versions, oldest
    first (a retired note is neither adjudicated nor counted in agreement)."""
    own: dict[int, list[str]] = defaultdict(list)
    names: dict[int, tuple[str, str]] = {}
    for doc_id, external_id, split, annotator, adjudicated in session.execute(_submitted(project)):
        names[doc_id] = (external_id, split)
        if not adjudicated:
            own[doc_id].append(annotator)
    shared = [doc_id for doc_id, people in own.items() if len(people) >= 2]
    finals = _finals(session, shared)
    return [
        SharedNote(doc_id, *names[doc_id], tuple(own[doc_id]), finals.get(doc_id))
        for doc_id in shared
    ]


def _finals(session: Session, document_ids: list[int]) -> dict[int, FinalGold]:
    """The newest submitted adjudication of each document that has one."""
    query = (
        select(Annotation)
        .where(
            Annotation.document_id.in_(document_ids),
            Annotation.adjudicated.is_(True),
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
        # The same order as gold.gold_documents, so "final" here is the gold there.
        .order_by(
            func.coalesce(Annotation.submitted_at, Annotation.updated_at).desc(),
            Annotation.id.desc(),
        )
        .execution_options(populate_existing=True)
    )
    out: dict[int, FinalGold] = {}
    for ann in session.scalars(query):
        saved = ann.submitted_at or ann.updated_at
        out.setdefault(ann.document_id, FinalGold(ann.id, ann.annotator, ann.version, saved))
    return out


@dataclass(frozen=True)
class NoteVersions:
    """What the adjudication view shows of one note.

    ``versions`` maps each annotator to their submitted version; ``final`` and
    ``final_document`` are the current adjudication; ``lead_version`` is the version of
    the lead's own adjudication to pass back when saving (0: none yet).
    """

    note: SharedNote
    versions: Mapping[str, Document]
    final_document: Document | None
    lead_version: int


def note_versions(session: Session, project: Project, document_id: int, lead: str) -> NoteVersions:
    """The annotators' versions of one shared note and its current adjudication.

    Raises:
        NotFoundError: no such document.
        StoreError: the note is not one of the project's notes with two versions.
    """
    note = _shared_note(session, project, document_id)
    versions = {
        name: gold.load_annotation(session, document_id, name).document for name in note.annotators
    }
    final = None
    if note.final is not None:
        final = gold.load_annotation(session, document_id, note.final.lead).document
    mine = gold.load_annotation(session, document_id, lead)
    return NoteVersions(note, versions, final, mine.version)


def _shared_note(session: Session, project: Project, document_id: int) -> SharedNote:
    row = documents.get_document(session, document_id)
    if row.retired_at is not None:
        raise StoreError(f"note {row.external_id} is retired: restore it to adjudicate it")
    found = next((n for n in shared_notes(session, project) if n.document_id == document_id), None)
    if row.project_id != project.id or found is None:
        raise StoreError(
            f"note {row.external_id} has fewer than two submitted versions in project "
            f"{project.name}: there is nothing to adjudicate"
        )
    return found


def adjudicate(
    session: Session,
    project: Project,
    document_id: int,
    lead: str,
    final: Document,
    *,
    expected_version: int,
    expected_final: FinalGold | None,
    seconds_spent: float = 0.0,
) -> int:
    """Save ``final`` as the note's adjudicated gold by ``lead``; returns its new version.

    ``expected_final`` is the adjudication the lead saw when they opened the note (None:
    none): when another lead adjudicated since, nothing is saved. A lead who annotated
    the note themselves cannot adjudicate it: their adjudication would replace their own
    version (it is one annotation per person and note) and the note would drop out of
    the agreement figures; another lead or an admin judges it instead.

    Raises:
        ConflictError: someone adjudicated since ``expected_final``, or the lead's own
            adjudication is not at ``expected_version``.
        StoreError: ``lead`` is not a lead or admin, annotated the note, or the note has
            fewer than two versions.
        NotFoundError: no such user or document.
        InvalidSpanError, SchemaError...: ``final`` does not fit the note or the schema.
    """
    begin_write(session)  # first: the checks below must read what the save will write over
    user = accounts.get_user(session, lead)
    if user.role not in ADJUDICATORS:
        raise StoreError(f"{lead} is an {user.role}: only leads and admins adjudicate")
    note = _shared_note(session, project, document_id)
    own = _annotation_of(session, document_id, lead)
    if own is not None and not own.adjudicated:
        raise StoreError(
            f"{lead} annotated note {note.external_id} and cannot adjudicate it: another "
            "lead or an admin must, so that both versions stay as they are"
        )
    _check_final(note, expected_final)
    version = gold.save_annotation(
        session,
        document_id,
        lead,
        final.spans,
        final.relations,
        final.equivalences,
        expected_version=expected_version,
        seconds_spent=seconds_spent,
        status=AnnotationStatus.SUBMITTED,
    )
    annotation = _annotation_of(session, document_id, lead)
    assert annotation is not None  # save_annotation just wrote it
    annotation.adjudicated = True
    before = None if expected_final is None else {"final": expected_final.lead}
    after = {"final": lead, "version": version, "from": list(note.annotators)}
    audit.record_audit(session, lead, "adjudicate", "annotations", annotation.id, before, after)
    session.flush()
    return version


def _annotation_of(session: Session, document_id: int, name: str) -> Annotation | None:
    query = select(Annotation).where(
        Annotation.document_id == document_id, Annotation.annotator == name
    )
    return session.scalar(query.execution_options(populate_existing=True))


def _check_final(note: SharedNote, expected: FinalGold | None) -> None:
    def key(final: FinalGold | None) -> tuple[int, int] | None:
        return None if final is None else (final.annotation_id, final.version)

    current = note.final
    if key(current) == key(expected):
        return
    saved_at = current.saved_at.isoformat(timespec="seconds") if current else ""
    raise ConflictError(
        f"note {note.external_id}: {current.lead if current else 'someone'} adjudicated it "
        f"{f'at {saved_at} ' if current else ''}since you opened it; nothing was saved: "
        "reload the note to see their version",
        saved_by=current.lead if current else "",
        saved_at=saved_at,
        current_version=current.version if current else 0,
    )
