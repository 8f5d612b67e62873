"""Prediction chunks: a job's pool split into slices that any worker may predict.

The job that predicts (a training round that serves, or a lead's predict job) splits the
pool for its current attempt; every worker, the job's own included, claims queued chunks
with the same atomic claim as jobs and owns a chunk by worker and attempt, as it owns a
job. The job ranks the queue once every chunk of its attempt is done. A chunk whose
worker died is reclaimed by its stale heartbeat, judged by the database server's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.orm import Session

from noteloop.db.engine import begin_write
from noteloop.db.jobs import MAX_ATTEMPTS, JobLostError, Owner, db_now, require_owner
from noteloop.db.models import PredictChunk, TrainingJob


@dataclass(frozen=True)
class ChunkProgress:
    """Where an attempt's chunks stand; ``failed`` is the first failed chunk's error."""

    done: int
    total: int
    notes_done: int
    notes: int
    failed: str = ""


def split(
    session: Session,
    job_id: int,
    owner: Owner,
    model_version_id: int,
    document_ids: Sequence[int],
    size: int,
) -> int:
    """Queue ``document_ids`` (in the order they should be predicted) as chunks of ``size``
    notes for the job's current attempt; chunks of earlier attempts go. Returns how many.

    Raises:
        JobLostError: the job is no longer ``owner``'s.
    """
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    require_owner(session, job_id, owner)
    session.execute(delete(PredictChunk).where(PredictChunk.job_id == job_id))
    rows = [
        {
            "job_id": job_id,
            "job_attempt": owner.attempt,
            "seq": seq,
            "model_version_id": model_version_id,
            "document_ids": list(document_ids[start : start + size]),
            "status": "queued",
            "attempts": 0,
            "stored": 0,
            "error": "",
        }
        for seq, start in enumerate(range(0, len(document_ids), size))
    ]
    if rows:
        session.execute(insert(PredictChunk), rows)
    return len(rows)


def _current() -> ColumnElement[bool]:
    """Chunks of a running job's current attempt: the only ones worth predicting."""
    current = (
        select(TrainingJob.id)
        .where(
            TrainingJob.id == PredictChunk.job_id,
            TrainingJob.status == "running",
            TrainingJob.attempts == PredictChunk.job_attempt,
        )
        .exists()
    )
    return current


def claim(session: Session, worker_id: str, job_id: int | None = None) -> PredictChunk | None:
    """Atomically take the first queued chunk (of ``job_id``, or of any running job)."""
    begin_write(session)
    query = select(PredictChunk.id).where(PredictChunk.status == "queued", _current())
    if job_id is not None:
        query = query.where(PredictChunk.job_id == job_id)
    query = query.order_by(PredictChunk.job_id, PredictChunk.seq).limit(1)
    chunk_id = session.scalar(query.with_for_update(skip_locked=True))
    if chunk_id is None:
        return None
    claimed = session.execute(
        update(PredictChunk)
        .where(PredictChunk.id == chunk_id, PredictChunk.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            attempts=PredictChunk.attempts + 1,
            heartbeat_at=db_now(session),
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(PredictChunk, chunk_id, populate_existing=True)


def owner_of(chunk: PredictChunk) -> Owner:
    return Owner(chunk.worker_id or "", chunk.attempts)


def _owned(chunk_id: int, owner: Owner) -> list[ColumnElement[bool]]:
    return [
        PredictChunk.id == chunk_id,
        PredictChunk.status == "running",
        PredictChunk.worker_id == owner.worker_id,
        PredictChunk.attempts == owner.attempt,
        _current(),
    ]


def _lost(chunk_id: int, owner: Owner) -> str:
    return (
        f"prediction chunk {chunk_id} is no longer worker {owner.worker_id}'s attempt "
        f"{owner.attempt}: another worker took it over, or its job ended"
    )


def heartbeat(session: Session, chunk_id: int, owner: Owner) -> None:
    """Record that the chunk's owner is alive.

    Raises:
        JobLostError: the chunk is no longer ``owner``'s, or its job's attempt ended.
    """
    begin_write(session)
    beat = session.execute(
        update(PredictChunk)
        .where(*_owned(chunk_id, owner))
        .values(heartbeat_at=db_now(session))
        .execution_options(synchronize_session=False)
    )
    if beat.rowcount != 1:  # type: ignore[attr-defined]
        raise JobLostError(_lost(chunk_id, owner))


def finish(
    session: Session, chunk_id: int, owner: Owner, result: dict[str, Any], stored: int
) -> None:
    """Mark the chunk done with what the ranking needs of its notes.

    Raises:
        JobLostError: the chunk is no longer ``owner``'s.
    """
    begin_write(session)
    done = session.execute(
        update(PredictChunk)
        .where(*_owned(chunk_id, owner))
        .values(status="done", result=result, stored=stored, heartbeat_at=db_now(session))
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise JobLostError(_lost(chunk_id, owner))


def progress(session: Session, job_id: int, attempt: int) -> ChunkProgress:
    """How many of the attempt's chunks (and their notes) are done."""
    rows = session.execute(
        select(PredictChunk.status, PredictChunk.document_ids, PredictChunk.error)
        .where(PredictChunk.job_id == job_id, PredictChunk.job_attempt == attempt)
        .order_by(PredictChunk.seq)
    ).all()
    done = [len(ids) for status, ids, _ in rows if status == "done"]
    failed = next((error for status, _, error in rows if status == "failed"), "")
    notes = sum(len(ids) for _, ids, _ in rows)
    return ChunkProgress(len(done), len(rows), sum(done), notes, failed)


def fail(session: Session, chunk_id: int, owner: Owner, error: str) -> None:
    """Mark the chunk failed with a readable error: the job waiting for it fails with it.
    Nothing happens when the chunk is no longer ``owner``'s."""
    begin_write(session)
    session.execute(
        update(PredictChunk)
        .where(*_owned(chunk_id, owner))
        .values(status="failed", error=error[:4000])
        .execution_options(synchronize_session=False)
    )


def clear(session: Session, job_id: int) -> None:
    """Drop a job's chunks once it ended: their results served its ranking."""
    begin_write(session)
    session.execute(delete(PredictChunk).where(PredictChunk.job_id == job_id))


def results(session: Session, job_id: int, attempt: int) -> list[dict[str, Any]]:
    """The done chunks' results, in chunk order, and the number of suggestions stored."""
    query = (
        select(PredictChunk.result)
        .where(
            PredictChunk.job_id == job_id,
            PredictChunk.job_attempt == attempt,
            PredictChunk.status == "done",
        )
        .order_by(PredictChunk.seq)
    )
    return [r for r in session.scalars(query) if r is not None]


def stored(session: Session, job_id: int, attempt: int) -> int:
    query = select(func.coalesce(func.sum(PredictChunk.stored), 0)).where(
        PredictChunk.job_id == job_id, PredictChunk.job_attempt == attempt
    )
    return int(session.scalar(query) or 0)


def recover_stale(session: Session, stale_after: timedelta) -> list[int]:
    """Requeue running chunks whose heartbeat is older than ``stale_after`` by the database
    server's clock; their old owner finds out at its next heartbeat and stops. A chunk
    whose workers died ``MAX_ATTEMPTS`` times fails, and its job with it."""
    begin_write(session)
    query = (
        select(PredictChunk)
        .where(
            PredictChunk.status == "running",
            PredictChunk.heartbeat_at < db_now(session, stale_after),
        )
        .with_for_update()
    )
    stale = list(session.scalars(query))
    for chunk in stale:
        if chunk.attempts >= MAX_ATTEMPTS:
            chunk.status = "failed"
            chunk.error = f"the worker predicting chunk {chunk.seq} died {chunk.attempts} times"
        else:
            chunk.status, chunk.worker_id = "queued", None
    session.flush()
    return [chunk.id for chunk in stale]
