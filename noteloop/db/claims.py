"""Who works on which note: claims are leases, taken only by asking for the next note.

The rules, in the order :func:`claim_next` applies them:

- finish what you hold first: an annotator who holds a claim (a note they asked for, or a
  submission reopened for them) gets that note back, and asking renews the lease;
- then a note chosen for double annotation (the project's ``double_annotation`` share)
  that one other annotator has submitted, so that agreement is measured early;
- then the best-ranked note of the active-learning queue (before any queue exists, the
  oldest pool note) that nobody has annotated, nobody holds, the annotator has not
  skipped, and that is not retired.

A claim lapses after ``claim_minutes`` (a project setting) without activity on the note
(every draft save renews it); a lapsed claim stays until someone else takes the note, so
an annotator who comes back in time finds their note where they left it.

"Two annotators never get the same note" is the ``UNIQUE(document_id, slot)`` constraint:
a first annotation takes slot 0, a second one slot 1. Of two processes that pick the same
note at the same moment, the database lets one insert and refuses the other, which then
tries the next note; on SQLite the ``BEGIN IMMEDIATE`` write lock already serialises them.
On PostgreSQL a claimer first locks the note ``SKIP LOCKED``, so the others pass over it
rather than wait for its insert to commit.
Every change of a claim writes an audit row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.core.agreement import chosen_for_double_annotation
from noteloop.core.errors import NoteloopError, NotFoundError
from noteloop.core.schema import AnnotationStatus, Role, Split
from noteloop.core.settings import ProjectSettings
from noteloop.db import accounts, audit, documents, drafts
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import (
    Annotation,
    Claim,
    Document,
    Draft,
    Project,
    QueuePick,
    QueueScore,
    Skip,
    utcnow,
)

FIRST, SECOND = 0, 1  # the slots of a first and a second (double) annotation


class ClaimLostError(NoteloopError):
    """The annotator's claim on a note ended (it lapsed and someone took the note)."""


def lease(project: Project) -> timedelta:
    """How long a claim lasts without activity: the project's ``claim_minutes``."""
    minutes = ProjectSettings.from_settings(project.settings).claim_minutes
    return timedelta(minutes=minutes)


def claim_next(session: Session, project: Project, annotator: str) -> int | None:
    """The row id of the note ``annotator`` works on now, claimed for them; None when
    every note is annotated, held by someone else or skipped."""
    begin_write(session)
    now = utcnow()
    held = _held(session, project, annotator)
    if held is not None:
        held.active_at = now
        session.flush()
        return held.document_id
    cutoff = now - lease(project)
    for document_id, slot in _candidates(session, project, annotator, cutoff):
        if _take(session, document_id, annotator, slot, cutoff, now):
            audit.record_audit(
                session, annotator, "claim", "documents", document_id, after={"slot": slot}
            )
            if slot == FIRST:
                _record_pick(session, project, document_id, annotator)
            return document_id
    return None


def held_note(session: Session, project: Project, annotator: str) -> int | None:
    """The note ``annotator`` holds in the project (the oldest claim first), without
    claiming anything: what the Annotate page reopens after a reload."""
    claim = _held(session, project, annotator)
    return claim.document_id if claim is not None else None


def require_held(session: Session, document_id: int, annotator: str) -> None:
    """Refuse to go on when the annotator no longer holds the note.

    Raises:
        ClaimLostError: their claim lapsed and someone else took the note, or a lead
            released it; the message names who holds it now.
    """
    if holder(session, document_id, annotator, lock=True) is not None:
        return  # locked: a takeover of a lapsed claim waits for this submit to end
    others = session.scalars(select(Claim.annotator).where(Claim.document_id == document_id))
    now_with = ", ".join(others) or "nobody (a lead released it)"
    doc = documents.get_document(session, document_id)
    raise ClaimLostError(
        f"note {doc.external_id} is no longer yours: your claim lapsed or was released, and "
        f"it is now with {now_with}. Your changes are kept as a draft: download them below"
    )


def _held(session: Session, project: Project, annotator: str) -> Claim | None:
    query = (
        select(Claim)
        .join(Document, Document.id == Claim.document_id)
        .where(
            Document.project_id == project.id,
            Document.retired_at.is_(None),
            Claim.annotator == annotator,
        )
        .order_by(Claim.claimed_at, Claim.id)
        .limit(1)
    )
    return session.scalar(query)


def _candidates(
    session: Session, project: Project, annotator: str, cutoff: datetime
) -> Iterator[tuple[int, int]]:
    """(document row id, slot) in the order the rules above try them."""
    second = _awaiting_second(session, project, annotator)
    if second:  # the first-annotation query filters skips and live claims itself
        skipped = _skipped(session, annotator)
        busy = _live(session, project, cutoff)
        for document_id in second:
            if document_id not in skipped and (document_id, SECOND) not in busy:
                yield document_id, SECOND
    for document_id in _first_order(session, project, annotator, cutoff):
        yield document_id, FIRST


def _first_order(
    session: Session, project: Project, annotator: str, cutoff: datetime, batch: int = 16
) -> Iterator[int]:
    """Pool notes nobody annotated, holds or (for this annotator) skipped: in queue order,
    then the unranked ones oldest first. One query per ``batch`` notes, the filtering
    done by the database: a project may hold tens of thousands of notes."""
    rank = (
        select(QueueScore.rank)
        .where(QueueScore.project_id == project.id, QueueScore.document_id == Document.id)
        .scalar_subquery()
    )
    query = (
        select(Document.id)
        .where(
            Document.project_id == project.id,
            Document.split == Split.POOL.value,
            Document.retired_at.is_(None),
            ~select(Annotation.id).where(Annotation.document_id == Document.id).exists(),
            ~select(Claim.id)
            .where(Claim.document_id == Document.id, Claim.slot == FIRST, Claim.active_at >= cutoff)
            .exists(),
            ~select(Skip.id)
            .where(Skip.document_id == Document.id, Skip.annotator == annotator)
            .exists(),
        )
        .order_by(rank.is_(None), rank, Document.id)
        .limit(batch)
    )
    offset = 0
    while True:
        rows = list(session.scalars(query.offset(offset)))
        yield from rows
        if len(rows) < batch:
            return
        offset += batch


def _awaiting_second(session: Session, project: Project, annotator: str) -> list[int]:
    """Pool notes chosen for double annotation that exactly one other person annotated,
    and submitted; oldest first."""
    share = ProjectSettings.from_settings(project.settings).double_annotation
    if share <= 0:
        return []
    submitted = case((Annotation.status == AnnotationStatus.SUBMITTED.value, 1), else_=0)
    mine = case((Annotation.annotator == annotator, 1), else_=0)
    query = (
        select(Document.id, Document.sha256)
        .join(Annotation, Annotation.document_id == Document.id)
        .where(
            Document.project_id == project.id,
            Document.split == Split.POOL.value,
            Document.retired_at.is_(None),
        )
        .group_by(Document.id, Document.sha256)
        .having(func.count(Annotation.id) == 1, func.sum(submitted) == 1, func.sum(mine) == 0)
        .order_by(Document.id)
    )
    return [row for row, sha in session.execute(query) if chosen_for_double_annotation(sha, share)]


def _skipped(session: Session, annotator: str) -> set[int]:
    return set(session.scalars(select(Skip.document_id).where(Skip.annotator == annotator)))


def _live(session: Session, project: Project, cutoff: datetime) -> set[tuple[int, int]]:
    """(document, slot) of the project's claims that have not lapsed."""
    query = (
        select(Claim.document_id, Claim.slot)
        .join(Document, Document.id == Claim.document_id)
        .where(Document.project_id == project.id, Claim.slot.is_not(None),
               Claim.active_at >= cutoff)
    )  # fmt: skip
    return {(d, s) for d, s in session.execute(query) if s is not None}


def _take(
    session: Session, document_id: int, annotator: str, slot: int, cutoff: datetime, now: datetime
) -> bool:
    """Claim the slot of the note, taking it over from a lapsed claim; False when another
    claimer was faster (the unique constraint refused this one), or when the note was
    submitted since the candidates were read.

    The second check runs after the insert on purpose: a submit ends its claim and adds
    the gold in one transaction, so once the slot is free to insert into, that gold is
    committed and a fresh read sees it (PostgreSQL's READ COMMITTED; SQLite's write lock
    serialises both anyway)."""
    if not _lock_note(session, document_id):
        return False
    try:
        with session.begin_nested():
            lapsed = session.scalar(
                select(Claim).where(
                    Claim.document_id == document_id, Claim.slot == slot, Claim.active_at < cutoff
                )
            )
            if lapsed is not None:
                _end(session, lapsed, "take_over_lapsed_claim", annotator)
            session.add(
                Claim(
                    document_id=document_id,
                    annotator=annotator,
                    slot=slot,
                    purpose="annotate" if slot == FIRST else "second",
                    claimed_by=annotator,
                    claimed_at=now,
                    active_at=now,
                )
            )
            session.flush()
            if not _still_wanted(session, document_id, annotator, slot):
                raise _Submitted
    except (IntegrityError, _Submitted):
        return False
    return True


def _record_pick(session: Session, project: Project, document_id: int, annotator: str) -> None:
    """Keep how the queue offered the note (the strategy's pick or a random one): the
    queue is replaced at the next ranking, the Dashboard's comparison needs it later."""
    row = session.scalar(
        select(QueueScore).where(
            QueueScore.project_id == project.id, QueueScore.document_id == document_id
        )
    )
    if row is None:  # the queue was never ranked: nothing picked it
        return
    session.add(
        QueuePick(
            document_id=document_id,
            annotator=annotator,
            pick="random" if (row.details or {}).get("pick") == "random" else "strategy",
            strategy=row.strategy,
            rank=row.rank,
            model_version_id=row.model_version_id,
        )
    )
    session.flush()


def _lock_note(session: Session, document_id: int) -> bool:
    """Lock the note's row for this claimer; False when another claimer holds it now.

    ``FOR NO KEY UPDATE SKIP LOCKED`` on PostgreSQL: of several people asking at once,
    each passes over the notes the others are taking instead of queueing behind their
    inserts. (NO KEY: the key-share locks of rows that merely refer to the note, a draft
    being saved, say, do not make it look taken.) SQLite has no row locks and ignores it;
    its write lock serialises the claimers already.
    """
    query = (
        select(Document.id)
        .where(Document.id == document_id)
        .with_for_update(skip_locked=True, key_share=True)
    )
    return session.scalar(query) is not None


class _Submitted(Exception):
    """Raised inside a savepoint to undo a claim on a note submitted meanwhile."""


def _still_wanted(session: Session, document_id: int, annotator: str, slot: int) -> bool:
    """Whether the note still wants the annotation of ``slot``: none for a first one;
    exactly one, someone else's and submitted, for a second one."""
    rows = session.execute(
        select(Annotation.annotator, Annotation.status).where(
            Annotation.document_id == document_id
        )
    ).all()
    if slot == FIRST:
        return not rows
    return (
        len(rows) == 1
        and rows[0][0] != annotator
        and rows[0][1] == AnnotationStatus.SUBMITTED.value
    )


def _end(session: Session, claim: Claim, action: str, by: str, reason: str = "") -> None:
    before = {"annotator": claim.annotator, "slot": claim.slot, "purpose": claim.purpose}
    session.execute(delete(Claim).where(Claim.id == claim.id))
    after = {"reason": reason} if reason else None
    audit.record_audit(session, by, action, "documents", claim.document_id, before, after)


# --------------------------------------------------------------------------- one claim


def holder(
    session: Session, document_id: int, annotator: str, *, lock: bool = False
) -> Claim | None:
    """The annotator's claim on the note, lapsed or not; ``lock`` holds its row until the
    transaction ends, so that nobody takes the claim over meanwhile."""
    query = select(Claim).where(Claim.document_id == document_id, Claim.annotator == annotator)
    return session.scalar(query.with_for_update() if lock else query)


def touch(session: Session, document_id: int, annotator: str) -> bool:
    """Renew the annotator's lease on the note; False when they no longer hold it."""
    done = session.execute(
        update(Claim)
        .where(Claim.document_id == document_id, Claim.annotator == annotator)
        .values(active_at=utcnow())
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def release(session: Session, document_id: int, annotator: str, by: str) -> None:
    """Give the note back to the queue at once. The annotator's own release drops their
    draft (the page asked them first); a lead's leaves it to them, downloadable.

    Raises:
        NotFoundError: the annotator holds no claim on the note.
    """
    begin_write(session)
    _end(session, _claim(session, document_id, annotator), "release", by)
    if by == annotator:
        drafts.end_draft(session, document_id, annotator)


def skip(session: Session, document_id: int, annotator: str, reason: str = "") -> None:
    """Pass on the note: back to the queue for others, never offered to this annotator
    again; their draft of it is dropped.

    Raises:
        NotFoundError: the annotator holds no claim on the note.
    """
    begin_write(session)
    claim = _claim(session, document_id, annotator)
    session.add(Skip(document_id=document_id, annotator=annotator, reason=reason.strip()))
    _end(session, claim, "skip", annotator, reason.strip())
    drafts.end_draft(session, document_id, annotator)


def reassign(session: Session, document_id: int, annotator: str, to: str, by: str) -> None:
    """Hand ``annotator``'s claim on the note, and their draft of it, to ``to`` (a lead's
    action: the work goes on where it stopped).

    Raises:
        NotFoundError: no such claim, or ``to`` is not a user.
        StoreError: ``to`` may not open the project (not a member, or deactivated), or
            has a claim or a draft of that note already.
    """
    begin_write(session)
    claim = _claim(session, document_id, annotator)
    if to == annotator:
        return
    target = accounts.get_user(session, to)
    project = session.get(Project, documents.get_document(session, document_id).project_id)
    if not target.active or project not in accounts.projects_for(session, target):
        raise StoreError(f"{to} may not open project {project.name if project else '?'}")
    if holder(session, document_id, to) is not None or drafts.load_draft(session, document_id, to):
        raise StoreError(f"{to} has this note already (a claim or a draft of it)")
    before = {"annotator": annotator, "slot": claim.slot}
    try:  # the check above races with ``to`` claiming the note: the constraints decide
        with session.begin_nested():
            claim.annotator, claim.active_at, claim.claimed_by = to, utcnow(), by
            session.execute(
                update(Draft)
                .where(Draft.document_id == document_id, Draft.annotator == annotator)
                .values(annotator=to)
            )
            session.flush()
    except IntegrityError:
        raise StoreError(f"{to} has this note already (a claim or a draft of it)") from None
    audit.record_audit(session, by, "reassign", "documents", document_id, before, {"annotator": to})


def reopen_for(session: Session, document_id: int, annotator: str, by: str) -> None:
    """Give ``annotator`` their submitted note back to change (they get it next on the
    Annotate page); the submitted gold keeps counting until they submit again.

    Only the annotator themself or a lead (or an admin) may reopen a submission.

    Raises:
        NotFoundError: the annotator has no submitted gold for the note.
        StoreError: they hold the note already, or ``by`` may not reopen it.
    """
    begin_write(session)
    if by != annotator and accounts.get_user(session, by).role == Role.ANNOTATOR.value:
        raise StoreError(f"only {annotator} or a lead may reopen {annotator}'s submission")
    submitted = session.scalar(
        select(Annotation.id).where(
            Annotation.document_id == document_id,
            Annotation.annotator == annotator,
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
    )
    if submitted is None:
        doc = documents.get_document(session, document_id)
        raise NotFoundError(f"document {doc.external_id}: {annotator} has not submitted it")
    if holder(session, document_id, annotator) is not None:
        raise StoreError(f"{annotator} has this note open already")
    now = utcnow()
    try:  # two reopens at once: UNIQUE(document_id, annotator) keeps one
        with session.begin_nested():
            session.add(
                Claim(
                    document_id=document_id,
                    annotator=annotator,
                    slot=None,
                    purpose="reopen",
                    claimed_by=by,
                    claimed_at=now,
                    active_at=now,
                )
            )
            session.flush()
    except IntegrityError:
        raise StoreError(f"{annotator} has this note open already") from None
    audit.record_audit(session, by, "reopen", "annotations", submitted, after={"for": annotator})


def _claim(session: Session, document_id: int, annotator: str) -> Claim:
    """The claim an action is about to end or hand on, locked: of two such actions at
    once, the second waits and then finds it gone."""
    claim = holder(session, document_id, annotator, lock=True)
    if claim is None:
        doc = documents.get_document(session, document_id)
        raise NotFoundError(f"document {doc.external_id}: {annotator} holds no claim on it")
    return claim


def finish(session: Session, document_id: int, annotator: str) -> None:
    """End the annotator's claim after they submitted the note (no audit row of its own:
    the submit's is the record)."""
    session.execute(
        delete(Claim).where(Claim.document_id == document_id, Claim.annotator == annotator)
    )


# --------------------------------------------------------------------------- the lead's view


@dataclass(frozen=True)
class ClaimRow:
    """A claim as the lead's list shows it."""

    document_id: int
    external_id: str
    annotator: str
    purpose: str
    claimed_by: str
    claimed_at: datetime
    active_at: datetime
    lapses_at: datetime
    lapsed: bool
    has_draft: bool


def claim_rows(session: Session, project: Project) -> list[ClaimRow]:
    """Every claim of the project, the longest idle first."""
    span = lease(project)
    now = utcnow()
    drafts = {
        (doc, who)
        for doc, who in session.execute(
            select(Draft.document_id, Draft.annotator)
            .join(Document, Document.id == Draft.document_id)
            .where(Document.project_id == project.id)
        )
    }
    query = (
        select(Claim, Document.external_id)
        .join(Document, Document.id == Claim.document_id)
        .where(Document.project_id == project.id)
        .order_by(Claim.active_at, Claim.id)
    )
    return [
        ClaimRow(
            document_id=claim.document_id,
            external_id=external_id,
            annotator=claim.annotator,
            purpose=claim.purpose,
            claimed_by=claim.claimed_by,
            claimed_at=claim.claimed_at,
            active_at=claim.active_at,
            lapses_at=claim.active_at + span,
            lapsed=claim.active_at + span < now,
            has_draft=(claim.document_id, claim.annotator) in drafts,
        )
        for claim, external_id in session.execute(query)
    ]


def note_states(session: Session, project: Project, viewer: str) -> dict[int, str]:
    """Document row id -> where the note stands, for the queue's status column: who holds
    it (and whether the claim lapsed), who submitted it, and whether ``viewer`` skipped it.
    Notes absent from the result are waiting in the queue."""
    span, now = lease(project), utcnow()
    out: dict[int, str] = {}
    submitted = (
        select(Annotation.document_id, Annotation.annotator)
        .join(Document, Document.id == Annotation.document_id)
        .where(
            Document.project_id == project.id,
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
        .order_by(Annotation.document_id, Annotation.annotator)
    )
    done: dict[int, list[str]] = {}
    for doc, who in session.execute(submitted):
        done.setdefault(doc, []).append(who)
    for doc, names in done.items():
        out[doc] = f"submitted by {', '.join(names)}"
    held = (
        select(Claim.document_id, Claim.annotator, Claim.active_at)
        .join(Document, Document.id == Claim.document_id)
        .where(Document.project_id == project.id)
    )
    for doc, who, active in session.execute(held):
        lapsed = " (lapsed)" if active + span < now else ""
        out[doc] = "; ".join(filter(None, [out.get(doc, ""), f"held by {who}{lapsed}"]))
    for doc in _skipped(session, viewer):
        out.setdefault(doc, "skipped by you")
    return out
