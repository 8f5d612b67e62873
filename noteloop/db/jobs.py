"""The job queue between the app and the worker: rows, claimed atomically, always terminal.

The app enqueues (a "train now" click, or the trigger after N new gold notes); the worker
claims, heartbeats and finishes. A job whose worker died keeps a stale heartbeat; the
next worker to look puts it back in the queue, or fails it after ``MAX_ATTEMPTS`` so a job
that kills its worker every time cannot loop for ever.

Workers may run on several hosts against one PostgreSQL database, so every rule here is
held by the database, not by a check in Python: one active job per project and kind is a
partial unique index; a job belongs to the worker *and attempt* that claimed it
(:class:`Owner`), and its heartbeat, progress, finish and publication succeed only for
that owner; liveness is judged by the database server's clock (:func:`db_now`), never by
the clocks of the hosts, which drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.core.errors import NoteloopError, NotFoundError
from noteloop.core.schema import AnnotationStatus, Split
from noteloop.db import models
from noteloop.db.engine import begin_write
from noteloop.db.models import Project, TrainingJob

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
KINDS = ("train", "predict")
MAX_ATTEMPTS = 3
DEFAULT_TRAIN_EVERY = 5


def now() -> datetime:
    """This host's clock: for what a person reads (schedules), never for liveness."""
    return datetime.now(UTC)


class JobLostError(NoteloopError):
    """The job (or chunk) is no longer this worker's: another worker reclaimed it after its
    heartbeat went stale, or it ended. The worker stops it and publishes nothing."""


@dataclass(frozen=True)
class Owner:
    """Who holds a running job: the worker that claimed it and which attempt that was. A
    worker that lost its job and claimed it again later is another owner (a new attempt)."""

    worker_id: str
    attempt: int

    @classmethod
    def of(cls, job: TrainingJob) -> Owner:
        return cls(job.worker_id or "", job.attempts)


def db_now(session: Session, ago: timedelta | None = None) -> ColumnElement[Any]:
    """The database server's current UTC time (minus ``ago``) as an SQL expression.

    Stored in the form UtcDateTime binds: naive UTC. On SQLite that is the text
    'YYYY-MM-DD HH:MM:SS.fff', which compares as text with SQLAlchemy's own
    'YYYY-MM-DD HH:MM:SS.ffffff' in the right order (CURRENT_TIMESTAMP has no fraction
    and would sort a heartbeat written in the same second before it). On PostgreSQL
    ``now()`` is a timestamptz: converted to UTC explicitly, since the column has no zone
    and an implicit cast would use the session's time zone.
    """
    seconds = 0.0 if ago is None else ago.total_seconds()
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{-seconds:+.3f} seconds")
    if dialect == "postgresql":
        return func.timezone("UTC", func.now()) - timedelta(seconds=seconds)
    return func.current_timestamp() - timedelta(seconds=seconds)


def enqueue(
    session: Session,
    project: Project,
    *,
    kind: str = "train",
    reason: str = "",
    config: Mapping[str, Any] | None = None,
) -> tuple[TrainingJob, bool]:
    """Queue a job unless the project has one of that ``kind`` queued or running; returns
    (job, created). Kinds: ``train`` (train, evaluate, publish, then predict and rank when
    the new version serves) and ``predict`` (suggest with the serving version, rank).

    One job of a kind at a time per project: a second "train now" while one runs would
    only train on the same gold twice. A predict job (a lead chose a version) may wait
    behind a training round: the worker runs a project's jobs one after the other, so it
    then predicts with whatever serves after the round.
    """
    if kind not in KINDS:
        raise ValueError(f"job kind must be one of {KINDS}, got {kind!r}")
    begin_write(session)
    active = _active_job(session, project.id, kind)
    if active is not None:
        return active, False
    job = TrainingJob(project_id=project.id, kind=kind, reason=reason, config=dict(config or {}))
    try:
        # A savepoint: on PostgreSQL another process may insert between the read above and
        # this insert; the unique index refuses ours, and the caller's transaction goes on.
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        winner = _active_job(session, project.id, kind)
        if winner is None:
            raise  # another constraint than the one-active-job index
        return winner, False
    return job, True


def _active_job(session: Session, project_id: int, kind: str) -> TrainingJob | None:
    return session.scalar(
        select(TrainingJob).where(
            TrainingJob.project_id == project_id,
            TrainingJob.kind == kind,
            TrainingJob.status.in_(ACTIVE),
        )
    )


def claim_next(session: Session, worker_id: str) -> TrainingJob | None:
    """Atomically take the oldest queued job of a project that has none running; the job
    then belongs to ``worker_id`` and this attempt (:meth:`Owner.of`)."""
    begin_write(session)
    busy = select(TrainingJob.project_id).where(TrainingJob.status == "running")
    candidate = (
        select(TrainingJob.id, TrainingJob.project_id)
        .where(TrainingJob.status == "queued", TrainingJob.project_id.not_in(busy))
        .order_by(TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL: a job another worker takes is skipped
    )
    row = session.execute(candidate).first()
    if row is None:
        return None
    # One job of a project at a time, across hosts: the project's row lock serialises two
    # workers claiming two kinds of one project, and the recheck sees the other's claim.
    # NO KEY UPDATE leaves inserts that reference the project (annotations...) unblocked.
    session.execute(
        select(Project.id).where(Project.id == row.project_id).with_for_update(key_share=True)
    )
    # The status conditions make the claim safe even if two workers saw the same row.
    claimed = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == row.id,
            TrainingJob.status == "queued",
            TrainingJob.project_id.not_in(busy),
        )
        .values(
            status="running",
            worker_id=worker_id,
            started_at=db_now(session),
            heartbeat_at=db_now(session),
            attempts=TrainingJob.attempts + 1,
            phase="starting",
            progress=0.0,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(TrainingJob, row.id, populate_existing=True)


def _owned(owner: Owner) -> list[ColumnElement[bool]]:
    return [
        TrainingJob.status == "running",
        TrainingJob.worker_id == owner.worker_id,
        TrainingJob.attempts == owner.attempt,
    ]


def heartbeat(
    session: Session, job_id: int, *, phase: str, progress: float, owner: Owner | None = None
) -> bool:
    """Record liveness and progress; returns True when someone asked to cancel the job.

    With ``owner`` (the worker's own beats), only that owner's beat counts.

    Raises:
        JobLostError: the job is no longer ``owner``'s.
    """
    begin_write(session)
    where = _owned(owner) if owner else [TrainingJob.status == "running"]
    beat = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, *where)
        .values(
            heartbeat_at=db_now(session),
            phase=phase[:200],
            progress=min(max(progress, 0.0), 1.0),
        )
        .execution_options(synchronize_session=False)
    )
    if owner is not None and beat.rowcount != 1:  # type: ignore[attr-defined]
        raise JobLostError(_lost(job_id, owner))
    return bool(
        session.scalar(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id))
    )


def _lost(job_id: int, owner: Owner) -> str:
    return (
        f"job {job_id} is no longer worker {owner.worker_id}'s attempt {owner.attempt}: another "
        "worker took it over after its heartbeat went stale, or it ended"
    )


def require_owner(session: Session, job_id: int, owner: Owner) -> TrainingJob:
    """Lock the job's row until the transaction ends, if ``owner`` still holds it: a
    publication made under this lock cannot race a takeover.

    Raises:
        JobLostError: the job is no longer ``owner``'s.
    """
    begin_write(session)
    job = session.scalar(
        select(TrainingJob).where(TrainingJob.id == job_id, *_owned(owner)).with_for_update()
    )
    if job is None:
        raise JobLostError(_lost(job_id, owner))
    return job


def finish(
    session: Session,
    job_id: int,
    status: str,
    *,
    error: str = "",
    model_version_id: int | None = None,
    owner: Owner | None = None,
) -> bool:
    """Move a job to a terminal status (done, failed or cancelled); with ``owner``, only
    while that owner holds it. Returns whether the job changed."""
    if status not in TERMINAL:
        raise ValueError(f"status must be one of {TERMINAL}, got {status!r}")
    begin_write(session)
    values: dict[str, Any] = {
        "status": status,
        "finished_at": db_now(session),
        "error": error[:4000],
    }
    if status == "done":
        values["progress"] = 1.0
    if model_version_id is not None:
        values["model_version_id"] = model_version_id
    where = _owned(owner) if owner else []
    changed = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: int) -> str:
    """Ask for a job to stop: a queued job is cancelled at once, a running one at its next step.

    Returns the job's status after the request.
    """
    begin_write(session)
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"no training job {job_id}")
    if job.status == "queued":
        finish(session, job_id, "cancelled", error="cancelled before it started")
        return "cancelled"
    if job.status == "running":
        job.cancel_requested = True
        session.flush()
    return job.status


def recover_stale(session: Session, stale_after: timedelta) -> list[int]:
    """Requeue running jobs whose heartbeat is older than ``stale_after`` by the database
    server's clock (their worker died, or lost touch with the database).

    A job that has already been started ``MAX_ATTEMPTS`` times is failed instead. Its old
    owner, should it still be alive, finds out at its next heartbeat and stops.
    """
    begin_write(session)
    cutoff = db_now(session, stale_after)
    query = (
        select(TrainingJob)
        .where(TrainingJob.status == "running", TrainingJob.heartbeat_at < cutoff)
        .with_for_update()  # two workers recovering at once: the second sees the first's change
    )
    stale = list(session.scalars(query))
    for job in stale:
        if job.attempts >= MAX_ATTEMPTS:
            job.status, job.finished_at = "failed", db_now(session)
            job.error = f"its worker died {job.attempts} times while running it"
        else:
            job.status, job.worker_id, job.phase = "queued", None, "recovered after worker died"
    session.flush()
    return [job.id for job in stale]


def running_attempts(session: Session) -> set[tuple[int, int]]:
    """(job id, attempt) of every running job: the attempts a live worker may be on."""
    query = select(TrainingJob.id, TrainingJob.attempts).where(TrainingJob.status == "running")
    return {(job_id, attempt) for job_id, attempt in session.execute(query)}


def jobs_of(session: Session, project: Project, limit: int = 50) -> list[TrainingJob]:
    """The project's jobs, newest first."""
    query = (
        select(TrainingJob)
        .where(TrainingJob.project_id == project.id)
        .order_by(TrainingJob.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class TriggerState:
    """Why a project should (or should not) train now."""

    gold_in_pool: int
    trained_on: int
    train_every: int
    due: bool
    reason: str


def trigger_state(session: Session, project: Project) -> TriggerState:
    """Due when ``train_every`` new pool gold notes were submitted since the newest model,
    and, when the newest job failed or was cancelled, ``train_every`` since it ended.

    A failed round is not retried on the same gold: a failure that repeats (a broken
    configuration, a model that scores far below the one serving) would loop for ever,
    and a round the lead cancelled would start again at once. "Train now" still does.
    """
    gold = _submitted_pool_notes(session, project)
    latest = session.scalar(
        select(models.ModelVersion.n_train_docs)
        .where(
            models.ModelVersion.project_id == project.id,
            models.ModelVersion.status == "ready",
            models.ModelVersion.backend != "import",
        )
        .order_by(models.ModelVersion.id.desc())
        .limit(1)
    )
    trained_on = int(latest or 0)
    every = int(project.settings.get("train_every", DEFAULT_TRAIN_EVERY))
    new = gold - trained_on
    due = every > 0 and new >= every
    reason = f"{new} new gold note(s) since the last model (trains every {every})"
    ended = _newest_ended_job(session, project)
    if ended is not None and ended.status != "done" and ended.finished_at is not None:
        since = _submitted_pool_notes(session, project, after=ended.finished_at)
        due = due and since >= every
        reason = (f"{since} gold note(s) submitted since job {ended.id} {ended.status} "
                  f"(trains every {every})")
    return TriggerState(gold, trained_on, every, due, reason)


def _newest_ended_job(session: Session, project: Project) -> TrainingJob | None:
    return session.scalar(
        select(TrainingJob)
        .where(TrainingJob.project_id == project.id, TrainingJob.status.in_(TERMINAL))
        .order_by(TrainingJob.id.desc())
        .limit(1)
    )


def _submitted_pool_notes(
    session: Session, project: Project, *, after: datetime | None = None
) -> int:
    query = (
        select(func.count(func.distinct(models.Annotation.document_id)))
        .join(models.Document, models.Annotation.document_id == models.Document.id)
        .where(
            models.Document.project_id == project.id,
            models.Document.split == Split.POOL.value,
            models.Document.retired_at.is_(None),  # training reads only live documents
            models.Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
    )
    if after is not None:
        query = query.where(models.Annotation.updated_at > after)
    return int(session.scalar(query) or 0)


def schedule_due(session: Session, project: Project, minutes: float) -> bool:
    """An optional schedule: due when the newest job finished over ``minutes`` ago."""
    if minutes <= 0:
        return False
    last = session.scalar(
        select(func.max(TrainingJob.finished_at)).where(TrainingJob.project_id == project.id)
    )
    if last is None:
        return True
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return now() - last >= timedelta(minutes=minutes)
