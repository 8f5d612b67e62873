"""The job queue between the app and the worker: rows, claimed atomically, always terminal.

The app enqueues (a "train now" click, or the trigger after N new gold notes); the worker
claims, heartbeats and finishes. A job whose worker died keeps a stale heartbeat; the
next worker to start puts it back in the queue, or fails it after ``MAX_ATTEMPTS`` so a job
that kills its worker every time cannot loop for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
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
    return datetime.now(UTC)


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
    active = session.scalar(
        select(TrainingJob).where(
            TrainingJob.project_id == project.id,
            TrainingJob.kind == kind,
            TrainingJob.status.in_(ACTIVE),
        )
    )
    if active is not None:
        return active, False
    job = TrainingJob(project_id=project.id, kind=kind, reason=reason, config=dict(config or {}))
    session.add(job)
    session.flush()
    return job, True


def claim_next(session: Session, worker_id: str) -> TrainingJob | None:
    """Atomically take the oldest queued job of a project that has none running."""
    begin_write(session)
    busy = select(TrainingJob.project_id).where(TrainingJob.status == "running")
    candidate = (
        select(TrainingJob.id)
        .where(TrainingJob.status == "queued", TrainingJob.project_id.not_in(busy))
        .order_by(TrainingJob.id)
        .limit(1)
    )
    job_id = session.scalar(candidate)
    if job_id is None:
        return None
    # The status condition makes the claim safe even if two workers saw the same row.
    claimed = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            started_at=now(),
            heartbeat_at=now(),
            attempts=TrainingJob.attempts + 1,
            phase="starting",
            progress=0.0,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.flush()
    return session.get(TrainingJob, job_id, populate_existing=True)


def heartbeat(session: Session, job_id: int, *, phase: str, progress: float) -> bool:
    """Record liveness and progress; returns True when someone asked to cancel the job."""
    begin_write(session)
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "running")
        .values(heartbeat_at=now(), phase=phase[:200], progress=min(max(progress, 0.0), 1.0))
    )
    return bool(
        session.scalar(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id))
    )


def finish(
    session: Session,
    job_id: int,
    status: str,
    *,
    error: str = "",
    model_version_id: int | None = None,
) -> None:
    """Move a job to a terminal status (done, failed or cancelled)."""
    if status not in TERMINAL:
        raise ValueError(f"status must be one of {TERMINAL}, got {status!r}")
    begin_write(session)
    values: dict[str, Any] = {"status": status, "finished_at": now(), "error": error[:4000]}
    if status == "done":
        values["progress"] = 1.0
    if model_version_id is not None:
        values["model_version_id"] = model_version_id
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(**values))


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
    """Requeue running jobs whose heartbeat is older than ``stale_after`` (their worker died).

    A job that has already been started ``MAX_ATTEMPTS`` times is failed instead.
    """
    begin_write(session)
    cutoff = now() - stale_after
    stale = list(
        session.scalars(
            select(TrainingJob).where(
                TrainingJob.status == "running", TrainingJob.heartbeat_at < cutoff
            )
        )
    )
    for job in stale:
        if job.attempts >= MAX_ATTEMPTS:
            job.status, job.finished_at = "failed", now()
            job.error = f"its worker died {job.attempts} times while running it"
        else:
            job.status, job.worker_id, job.phase = "queued", None, "recovered after worker died"
    session.flush()
    return [job.id for job in stale]


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
