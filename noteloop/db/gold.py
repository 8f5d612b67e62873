"""What happens to gold after the widget: suggestion decisions, kept versions, restore.

- Every submit keeps a :class:`~noteloop.db.models.GoldVersion` (who, when, the gold, what
  changed against the version before); :func:`history` lists them and :func:`restore`
  makes an earlier one the newest again, as a new version (nothing is overwritten).
- How an annotator treated each suggestion is theirs alone
  (:class:`~noteloop.db.models.SuggestionDecision`): on a note two people annotate, the
  second one's decisions never replace the first one's.

The caller owns the transaction, as everywhere in ``db``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.core.schema import AnnotationStatus
from noteloop.db import convert, documents, models, repo
from noteloop.db.engine import begin_write
from noteloop.db.models import Annotation, GoldVersion, SuggestionDecision, utcnow
from noteloop.db.repo import StoreError
from noteloop.db.versions import describe_changes

DECISIONS = frozenset(models.DECISIONS)


# --------------------------------------------------------------------------- decisions


def record_decisions(session: Session, annotator: str, decisions: Mapping[int, str]) -> None:
    """Make ``decisions`` (suggestion row id -> accepted, edited or rejected) the
    annotator's: earlier decisions of theirs on those suggestions are replaced.

    Written as one delete and one insert per chunk, in suggestion id order, never as an
    update per status: two writers then take their row locks in the same order and cannot
    deadlock. Call it after :func:`noteloop.db.repo.save_annotation` in the same
    transaction: that save's versioned UPDATE locks the annotation row first, so a second
    submit of the same note waits there and then ends in a ConflictError.

    Raises:
        StoreError: a status that is not a decision.
        NotFoundError: a suggestion that does not exist (nothing is written).
    """
    bad = sorted({s for s in decisions.values() if s not in DECISIONS})
    if bad:
        raise StoreError(f"a decision must be accepted, edited or rejected, not {bad[0]!r}")
    ids = sorted(decisions)
    _check_exist(session, ids)
    now = utcnow()
    for chunk in repo.chunks(ids):
        session.execute(
            delete(SuggestionDecision).where(
                SuggestionDecision.annotator == annotator,
                SuggestionDecision.suggestion_id.in_(chunk),
            )
        )
        rows = [
            {"suggestion_id": i, "annotator": annotator, "status": decisions[i], "decided_at": now}
            for i in chunk
        ]
        session.execute(insert(SuggestionDecision), rows)


def _check_exist(session: Session, ids: Sequence[int]) -> None:
    found: set[int] = set()
    for chunk in repo.chunks(ids):
        found.update(session.scalars(select(models.Suggestion.id).where(
            models.Suggestion.id.in_(chunk))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(
            f"{len(missing)} of the decided suggestions do not exist: {missing[:10]}"
        )


def decided(session: Session, annotator: str, suggestion_ids: Sequence[int]) -> dict[int, str]:
    """The annotator's decisions on these suggestions (the undecided ones are absent)."""
    out: dict[int, str] = {}
    for chunk in repo.chunks(list(suggestion_ids)):
        query = select(SuggestionDecision.suggestion_id, SuggestionDecision.status).where(
            SuggestionDecision.annotator == annotator,
            SuggestionDecision.suggestion_id.in_(chunk),
        )
        out.update(dict(session.execute(query).all()))
    return out


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class VersionRow:
    """One kept version of an annotator's gold for a note, as the history lists it."""

    version: int
    saved_by: str
    saved_at: datetime
    n_spans: int
    n_relations: int
    changes: str
    restored_from: int | None
    current: bool
    same_as_current: bool  # the same gold as the current version (restoring it changes nothing)


def history(session: Session, document_id: int, annotator: str) -> list[VersionRow]:
    """The kept versions of ``annotator``'s gold for the note, newest first."""
    ann = _annotation(session, document_id, annotator)
    rows = list(
        session.scalars(
            select(GoldVersion)
            .where(GoldVersion.annotation_id == ann.id)
            .order_by(GoldVersion.version.desc())
        )
    )
    now = next((r.content for r in rows if r.version == ann.version), None)
    return [
        VersionRow(
            version=r.version,
            saved_by=r.saved_by,
            saved_at=r.saved_at,
            n_spans=len(r.content.get("spans", [])),
            n_relations=len(r.content.get("relations", [])),
            changes=describe_changes(r.changes),
            restored_from=r.restored_from,
            current=r.version == ann.version,
            same_as_current=r.content == now,
        )
        for r in rows
    ]


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
    ann = _annotation(session, document_id, annotator)
    kept = session.scalar(
        select(GoldVersion).where(
            GoldVersion.annotation_id == ann.id, GoldVersion.version == version
        )
    )
    if kept is None:
        known = [r.version for r in history(session, document_id, annotator)]
        raise NotFoundError(
            f"{annotator}'s gold for this note has no version {version} "
            f"(kept versions: {', '.join(map(str, known)) or 'none'})"
        )
    spans, relations, equivalences = convert.gold_from_audit(kept.content)
    return repo.save_annotation(
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


def _annotation(session: Session, document_id: int, annotator: str) -> Annotation:
    ann = session.scalar(
        select(Annotation)
        .where(Annotation.document_id == document_id, Annotation.annotator == annotator)
        .execution_options(populate_existing=True)
    )
    if ann is None:
        doc = documents.get_document(session, document_id)
        raise NotFoundError(f"document {doc.external_id}: {annotator} has no gold for it")
    return ann
