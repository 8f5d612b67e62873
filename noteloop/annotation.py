"""The annotate flow: which note comes next, what the widget shows, and saving a submission.

The Annotate page calls these three functions and renders; the rules live here:

- finish this note first: an annotator with a note in progress gets that note back, so
  the queue never jumps mid-note (a note is claimed, as an in-progress annotation, the
  moment it is opened);
- otherwise a note chosen for double annotation (the project's ``double_annotation``
  share) that one other annotator has submitted and nobody has in progress, so that
  agreement is measured as soon as possible, on notes the annotator has not seen;
- otherwise the best-ranked note of the active-learning queue that nobody has submitted
  and nobody else has in progress; before any queue exists, the first such pool note;
- a submission is one transaction with the optimistic version check, and records how
  each suggestion was treated (accepted, edited, rejected).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from noteloop.components.annotator import AnnotatorView, result_to_annotation
from noteloop.core.agreement import chosen_for_double_annotation
from noteloop.core.errors import ConflictError, NotFoundError
from noteloop.core.schema import AnnotationStatus, Split
from noteloop.db import learning, models, repo
from noteloop.db.models import Project


def next_document(session: Session, project: Project, annotator: str) -> int | None:
    """The row id of the note ``annotator`` should work on now, or None when none is left."""
    mine = _in_progress(session, project, annotator)
    if mine is not None:
        return mine
    second = _awaiting_second_annotation(session, project, annotator)
    if second is not None:
        return second
    taken = _taken(session, project)
    for entry in learning.queue(session, project):
        if entry.document_id not in taken:
            return entry.document_id
    pool = repo.document_ids(session, project, split=Split.POOL)
    return next((row for row in pool.values() if row not in taken), None)


def _in_progress(session: Session, project: Project, annotator: str) -> int | None:
    query = (
        select(models.Annotation.document_id)
        .join(models.Document, models.Annotation.document_id == models.Document.id)
        .where(
            models.Document.project_id == project.id,
            models.Annotation.annotator == annotator,
            models.Annotation.status == AnnotationStatus.IN_PROGRESS.value,
        )
        .order_by(models.Annotation.id)
        .limit(1)
    )
    return session.scalar(query)


def _awaiting_second_annotation(session: Session, project: Project, annotator: str) -> int | None:
    """The oldest pool note chosen for double annotation that exactly one other person
    has annotated, and submitted."""
    share = float(project.settings.get("double_annotation", 0.0) or 0.0)
    if share <= 0:
        return None
    query = (
        select(models.Document.id, models.Document.sha256)
        .join(models.Annotation, models.Annotation.document_id == models.Document.id)
        .where(models.Document.project_id == project.id,
               models.Document.split == Split.POOL.value)
        .group_by(models.Document.id)
        .having(
            func.count(models.Annotation.id) == 1,
            func.sum(case((models.Annotation.status == AnnotationStatus.SUBMITTED.value, 1),
                          else_=0)) == 1,
            func.sum(case((models.Annotation.annotator == annotator, 1), else_=0)) == 0,
        )
        .order_by(models.Document.id)
    )
    return next((row for row, sha in session.execute(query)
                 if chosen_for_double_annotation(sha, share)), None)


def _taken(session: Session, project: Project) -> set[int]:
    """Notes someone submitted or has in progress: not offered to anyone else."""
    query = (
        select(models.Annotation.document_id)
        .join(models.Document, models.Annotation.document_id == models.Document.id)
        .where(models.Document.project_id == project.id)
    )
    return set(session.scalars(query))


@dataclass(frozen=True)
class OpenNote:
    document_row: int
    document_id: str
    view: AnnotatorView


def open_note(
    make_session: sessionmaker[Session], project_name: str, row: int, annotator: str
) -> OpenNote:
    """The widget's view of note ``row`` for ``annotator``, claiming the note if it is new."""
    with make_session() as session:
        claimed = repo.load_annotation(session, row, annotator).version > 0
    if not claimed:  # claim it: the queue must not hand it to someone else
        _claim(make_session, row, annotator)
    with make_session() as session:
        project = repo.get_project(session, project_name)
        loaded = repo.load_annotation(session, row, annotator)
        suggestions = repo.suggestions_for(session, row, open_only=True)
        view = AnnotatorView.from_document(
            loaded.document,
            repo.project_schema(project),
            suggestions,
            version=loaded.version,
            document_id=str(row),
            suggestion_ids=repo.suggestion_row_ids(session, row),
        )
        return OpenNote(row, loaded.document.id, view)


def _claim(make_session: sessionmaker[Session], row: int, annotator: str) -> None:
    # A session of its own, so save_annotation takes the write lock before it reads: a
    # transaction that began by reading is refused its write ("database is locked")
    # when the worker wrote in between.
    try:
        with make_session.begin() as session:
            repo.save_annotation(
                session, row, annotator, (), (), expected_version=0,
                status=AnnotationStatus.IN_PROGRESS,
            )  # fmt: skip
    except ConflictError:
        pass  # the same annotator claimed it a moment ago, in another tab


def submit(
    make_session: sessionmaker[Session], note: OpenNote, annotator: str, state: Mapping[str, Any]
) -> int:
    """Save a submitted widget state; returns the new version.

    Raises:
        ConflictError: someone saved this annotation since it was opened; nothing written.
        WidgetStateError / SchemaError: the state does not fit the note or the schema.
    """
    spans, relations, decisions, seconds = result_to_annotation(state, note.view)
    with make_session.begin() as session:
        version = repo.save_annotation(
            session,
            note.document_row,
            annotator,
            spans,
            relations,
            expected_version=note.view.version,
            seconds_spent=seconds,
            status=AnnotationStatus.SUBMITTED,
        )
        _record_decisions(session, decisions)
    return version


def _record_decisions(session: Session, decisions: Mapping[int, str]) -> None:
    """How each suggestion was treated, in one UPDATE per status: "accept all" on a long
    note decides hundreds at once, and a round trip each made submitting slow.

    Raises:
        NotFoundError: a suggestion that does not exist (the transaction rolls back).
    """
    by_status: dict[str, list[int]] = {}
    for suggestion_id, status in decisions.items():
        by_status.setdefault(status, []).append(suggestion_id)
    for status, ids in by_status.items():
        for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            query = update(models.Suggestion).where(models.Suggestion.id.in_(chunk))
            done = session.execute(query.values(status=status)).rowcount  # type: ignore[attr-defined]
            if done != len(chunk):
                raise NotFoundError(f"{len(chunk) - done} of the decided suggestions do not exist")
