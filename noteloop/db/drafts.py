"""Drafts: an annotator's unsubmitted work on a note, saved on the server as they go.

The widget sends its state about a second after each change; :func:`save_draft` stores
it as the one draft of that note for that annotator, relative to the gold version and
the suggestion batch it was made on. Opening the
note again replays the draft (:func:`load_draft`). A draft ends at submit or when its
annotator discards it; training, metrics and export never read drafts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.db import audit, documents
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import Claim, Document, Draft, utcnow

# A draft is a widget state; a note with thousands of spans stays far below this.
MAX_DRAFT_BYTES = 20 * 2**20


def save_draft(
    session: Session,
    document_id: int,
    annotator: str,
    state: Mapping[str, Any],
    *,
    base_version: int,
    model_version_id: int | None,
) -> datetime:
    """Store ``state`` as the annotator's draft of the note (replacing the previous one);
    returns when. A draft is kept whether or not its annotator still holds the note:
    nothing typed is ever thrown away by the server.

    Raises:
        StoreError: a state that is not a JSON object of a sane size.
        NotFoundError: no such document.
    """
    _check_state(state)
    begin_write(session)
    documents.get_document(session, document_id)
    now = utcnow()
    values = {"state": dict(state), "base_version": base_version,
              "model_version_id": model_version_id, "updated_at": now}  # fmt: skip
    if not _update(session, document_id, annotator, values):
        try:
            with session.begin_nested():
                session.add(Draft(document_id=document_id, annotator=annotator,
                                  created_at=now, **values))  # fmt: skip
                session.flush()
        except IntegrityError:  # the same annotator's other tab inserted it a moment ago
            _update(session, document_id, annotator, values)
    return now


def _update(session: Session, document_id: int, annotator: str, values: dict[str, Any]) -> bool:
    done = session.execute(
        update(Draft)
        .where(Draft.document_id == document_id, Draft.annotator == annotator)
        .values(**values)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def _check_state(state: Mapping[str, Any]) -> None:
    if not isinstance(state, Mapping):
        raise StoreError(f"a draft must be a JSON object, got {type(state).__name__}")
    size = len(json.dumps(state, separators=(",", ":")))
    if size > MAX_DRAFT_BYTES:
        raise StoreError(
            f"a draft of {size / 2**20:.1f} MiB is over the {MAX_DRAFT_BYTES // 2**20} MiB limit"
        )


def load_draft(session: Session, document_id: int, annotator: str) -> Draft | None:
    """The annotator's draft of the note, or None."""
    return session.scalar(
        select(Draft)
        .where(Draft.document_id == document_id, Draft.annotator == annotator)
        .execution_options(populate_existing=True)
    )


def discard_draft(session: Session, document_id: int, annotator: str, by: str) -> bool:
    """Throw the annotator's draft of the note away (audited); False when there was none."""
    begin_write(session)
    done = session.execute(
        delete(Draft).where(Draft.document_id == document_id, Draft.annotator == annotator)
    )
    if done.rowcount:  # type: ignore[attr-defined]
        audit.record_audit(session, by, "discard_draft", "documents", document_id,
                          before={"annotator": annotator})  # fmt: skip
    return bool(done.rowcount)  # type: ignore[attr-defined]


def end_draft(session: Session, document_id: int, annotator: str) -> None:
    """Remove the draft without an audit row of its own: the submit that saved it as gold,
    or the release or skip that gave the note back, writes that action's row."""
    session.execute(
        delete(Draft).where(Draft.document_id == document_id, Draft.annotator == annotator)
    )


@dataclass(frozen=True)
class LooseDraft:
    """A draft whose annotator no longer holds the note (their claim lapsed and the note
    went to someone else, or a lead released it)."""

    document_id: int
    external_id: str
    updated_at: datetime
    state: dict[str, Any]


def loose_drafts(session: Session, project_id: int, annotator: str) -> list[LooseDraft]:
    """The annotator's drafts in the project that no claim of theirs covers, newest first."""
    held = select(Claim.document_id).where(Claim.annotator == annotator)
    query = (
        select(Draft, Document.external_id)
        .join(Document, Document.id == Draft.document_id)
        .where(
            Document.project_id == project_id,
            Draft.annotator == annotator,
            Draft.document_id.not_in(held),
        )
        .order_by(Draft.updated_at.desc())
    )
    return [
        LooseDraft(d.document_id, ext, d.updated_at, dict(d.state))
        for d, ext in session.execute(query)
    ]
