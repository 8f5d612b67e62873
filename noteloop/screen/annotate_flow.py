"""The annotate flow: claim the next note, show it with the annotator's draft, save drafts
as they come, and submit deliberately.

The Annotate page calls these functions and renders; the rules live in ``db``:
:mod:`noteloop.db.claims` (who gets which note), :mod:`noteloop.db.drafts` (work kept on
the server before submit), :mod:`noteloop.db.gold` (the one writer of gold, which keeps its
versions) and :mod:`noteloop.db.suggestions` (each annotator's decisions). Each function
here is one transaction (:func:`~noteloop.db.engine.run_transaction`: retried when another
writer collided with it), so a page that stops half-way leaves nothing half-done, and a
database refusal reaches the page as a ``NoteloopError`` it shows.

- Opening the app claims nothing: only :func:`claim_next` (the Annotate page asking for
  a note) does.
- A note opens with the suggestion batch it was first shown with when a draft exists, so
  the draft replays on what it was made against even after a new model suggested.
- A submit refuses open suggestions and an empty note unless the widget says the
  annotator confirmed them; open suggestions are then recorded as rejected.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.schema import AnnotationStatus
from noteloop.db import claims, drafts, gold, jobs, learning, models, projects, suggestions
from noteloop.db.engine import run_transaction
from noteloop.db.models import Annotation, Document
from noteloop.screen.components.annotator import (
    AnnotatorView,
    WidgetStateError,
    check_deliberate,
    open_at_submit,
    result_to_annotation,
)


def held_note(
    make_session: sessionmaker[Session], project_name: str, annotator: str
) -> int | None:
    """The note ``annotator`` holds already, if any (claims nothing)."""
    with make_session() as session:
        return claims.held_note(session, projects.get_project(session, project_name), annotator)


def claim_next(
    make_session: sessionmaker[Session], project_name: str, annotator: str
) -> int | None:
    """Claim the note ``annotator`` should work on now (see :mod:`noteloop.db.claims`);
    its row id, or None when there is none left for them."""
    return run_transaction(
        make_session,
        lambda session: claims.claim_next(
            session, projects.get_project(session, project_name), annotator
        ),
    )


@dataclass(frozen=True)
class OpenNote:
    """A note as the Annotate page shows it to one annotator.

    ``batch`` is the model version whose suggestions the widget shows; ``stale_draft`` a
    draft made on an older gold version (someone saved the note since), which is not
    replayed but offered for download; ``mount`` tells widget mounts apart, so that a
    discarded draft or a reopened note starts a fresh widget.
    """

    document_row: int
    document_id: str
    view: AnnotatorView
    batch: int | None
    purpose: str
    draft_at: datetime | None = None
    stale_draft: Mapping[str, Any] | None = None
    mount: str = ""

    @property
    def key(self) -> str:
        return f"annotator-{self.document_row}-{self.view.version}-{self.mount}"


def open_note(
    make_session: sessionmaker[Session], project_name: str, row: int, annotator: str
) -> OpenNote:
    """The widget's view of note ``row`` for ``annotator``, with their draft replayed."""
    with make_session() as session:
        project = projects.get_project(session, project_name)
        loaded = gold.load_annotation(session, row, annotator)
        draft = drafts.load_draft(session, row, annotator)
        usable = draft is not None and draft.base_version == loaded.version
        batch = _batch(session, row, draft.model_version_id if usable and draft else None)
        claim = claims.holder(session, row, annotator)
        view = AnnotatorView.from_document(
            loaded.document,
            projects.project_schema(project),
            suggestions.suggestions_for(session, row, batch, open_for=annotator) if batch else (),
            version=loaded.version,
            status=loaded.status.value if loaded.status else None,
            document_id=str(row),
            suggestion_ids=suggestions.suggestion_row_ids(session, row, batch) if batch else {},
            draft=dict(draft.state) if usable and draft else None,
        )
        return OpenNote(
            document_row=row,
            document_id=loaded.document.id,
            view=view,
            batch=batch,
            purpose=claim.purpose if claim else "",
            draft_at=draft.updated_at if draft else None,
            stale_draft=dict(draft.state) if draft and not usable else None,
            mount=secrets.token_hex(4),
        )


def _batch(session: Session, row: int, pinned: int | None) -> int | None:
    """The draft's batch while its suggestions exist, else the one the note shows now."""
    if pinned is not None and suggestions.suggestion_row_ids(session, row, pinned):
        return pinned
    return suggestions.shown_batch(session, row)


@dataclass(frozen=True)
class DraftSaved:
    at: datetime
    holds_claim: bool  # False: the claim lapsed and the note went to someone else


def save_draft(
    make_session: sessionmaker[Session], note: OpenNote, annotator: str, state: Mapping[str, Any]
) -> DraftSaved:
    """Keep the widget's latest state as the annotator's draft and renew their claim.

    Raises:
        WidgetStateError: the state belongs to another note or version.
    """
    _check_own(state, note)

    def work(session: Session) -> DraftSaved:
        at = drafts.save_draft(
            session, note.document_row, annotator, state,
            base_version=note.view.version, model_version_id=note.batch,
        )  # fmt: skip
        return DraftSaved(at, claims.touch(session, note.document_row, annotator))

    return run_transaction(make_session, work)


def _check_own(state: Mapping[str, Any], note: OpenNote) -> None:
    if state.get("document_id") != note.view.document_id or state.get("version") != (
        note.view.version
    ):
        raise WidgetStateError(
            f"the widget state is for note {state.get('document_id')!r} version "
            f"{state.get('version')!r}, not the open note {note.document_id}: reload the note"
        )


def submit(
    make_session: sessionmaker[Session], note: OpenNote, annotator: str, state: Mapping[str, Any]
) -> int:
    """Save a submitted widget state as gold; returns the new version.

    One transaction: the gold (and its kept version), every suggestion decision (the
    ones still open recorded as rejected), the end of the draft and of the claim.

    Raises:
        UndecidedSuggestionsError / EmptySubmitError: the annotator did not confirm
            rejecting the open suggestions, or that the note has nothing to annotate.
        ClaimLostError: the annotator no longer holds the note (their draft is kept).
        ConflictError: someone saved this annotation since it was opened; nothing written.
        WidgetStateError / SchemaError: the state does not fit the note or the schema.
    """
    check_deliberate(state, note.view)
    spans, relations, decisions, seconds = result_to_annotation(state, note.view)
    rejected = {sid: "rejected" for sid in open_at_submit(state, note.view)}

    def work(session: Session) -> int:
        claims.require_held(session, note.document_row, annotator)
        # The gold first: its versioned UPDATE locks the annotation row, so a second
        # submit of the note waits there (and then finds the version moved) before it
        # touches any decision row.
        version = gold.save_annotation(
            session,
            note.document_row,
            annotator,
            spans,
            relations,
            expected_version=note.view.version,
            seconds_spent=seconds,
            status=AnnotationStatus.SUBMITTED,
        )
        suggestions.record_decisions(session, annotator, {**rejected, **decisions})
        drafts.end_draft(session, note.document_row, annotator)
        claims.finish(session, note.document_row, annotator)
        return version

    return run_transaction(make_session, work)


def discard_draft(
    make_session: sessionmaker[Session], project_name: str, note: OpenNote, annotator: str
) -> OpenNote:
    """Throw the annotator's draft of the note away; returns the note as saved."""
    run_transaction(
        make_session,
        lambda session: drafts.discard_draft(session, note.document_row, annotator, by=annotator),
    )
    return open_note(make_session, project_name, note.document_row, annotator)


def skip(make_session: sessionmaker[Session], note: OpenNote, annotator: str, reason: str) -> None:
    """Pass on the note (see :func:`noteloop.db.claims.skip`)."""
    run_transaction(
        make_session, lambda session: claims.skip(session, note.document_row, annotator, reason)
    )


def release(make_session: sessionmaker[Session], note: OpenNote, annotator: str) -> None:
    """Give the note back to the queue (see :func:`noteloop.db.claims.release`)."""
    run_transaction(
        make_session,
        lambda session: claims.release(session, note.document_row, annotator, by=annotator),
    )


def reopen(make_session: sessionmaker[Session], row: int, annotator: str, by: str) -> None:
    """Give ``annotator`` their submission of note ``row`` back to change."""
    run_transaction(make_session, lambda session: claims.reopen_for(session, row, annotator, by))


@dataclass(frozen=True)
class Submission:
    """One of an annotator's submitted notes, for their list of recent work."""

    document_row: int
    document_id: str
    version: int
    submitted_at: datetime | None
    reopened: bool


def submissions(
    session: Session, project_name: str, annotator: str, limit: int = 20
) -> list[Submission]:
    """The annotator's most recently submitted notes in the project, newest first."""
    project = projects.get_project(session, project_name)
    held = set(
        session.scalars(select(models.Claim.document_id).where(models.Claim.annotator == annotator))
    )
    query = (
        select(Annotation.document_id, Document.external_id, Annotation.version,
               Annotation.submitted_at)
        .join(Document, Document.id == Annotation.document_id)
        .where(
            Document.project_id == project.id,
            Document.retired_at.is_(None),
            Annotation.annotator == annotator,
            Annotation.status == AnnotationStatus.SUBMITTED.value,
            Annotation.adjudicated.is_(False),
        )
        .order_by(Annotation.submitted_at.desc(), Annotation.id.desc())
        .limit(limit)
    )  # fmt: skip
    return [Submission(row, ext, v, at, row in held) for row, ext, v, at in session.execute(query)]


@dataclass(frozen=True)
class SuggestionStatus:
    """Whether a project's notes have suggestions, for the annotator's page to say so.

    ``state``: ``"ready"`` (a trained model's suggestions are stored), ``"preparing"`` (a
    training or prediction job is queued or running) or ``"none"`` (no model, none coming).
    """

    state: str
    message: str
    backend: str
    phase: str = ""
    progress: float = 0.0


def suggestion_status(session: Session, project_name: str) -> SuggestionStatus:
    """What the app should tell annotators about the project's suggestions right now."""
    project = projects.get_project(session, project_name)
    backend = str(project.settings.get("backend", "encoder"))
    active = [j for j in jobs.jobs_of(session, project) if j.status in ("queued", "running")]
    trained = any(v.status == "ready" and v.backend != "import"
                  for v in learning.model_versions(session, project))
    if active:
        job = active[-1]  # the oldest active job is the one the worker runs first
        slow = " (the generative model takes minutes per note batch on a CPU)" if (
            backend == "generative") else ""
        what = "updated" if trained else "prepared"
        return SuggestionStatus("preparing", f"Suggestions are being {what}{slow}.",
                                backend, job.phase, float(job.progress))
    if trained:
        return SuggestionStatus("ready", "Suggestions are ready.", backend)
    return SuggestionStatus(
        "none", "No model yet: suggestions appear after the first training round.", backend
    )
