"""What the Model page reads and writes: versions with their scores, jobs, settings.

The app never trains: "train now" and "cancel" only write job rows that the worker acts
on (the same rows ``noteloop train --queue`` and ``noteloop cancel`` write), and the
settings are the project's, which the worker reads when it starts a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.core.settings import settings_changes
from noteloop.db import jobs, learning, repo
from noteloop.db.engine import begin_write
from noteloop.db.models import ModelVersion, Project, TrainingJob


@dataclass(frozen=True)
class VersionRow:
    """One model version as the Model page lists it; F1s are None when not evaluated."""

    name: str
    created_at: datetime
    backend: str
    status: str
    n_train_docs: int
    n_test_docs: int | None
    entity_strict_f1: float | None
    entity_lenient_f1: float | None
    relation_f1: float | None
    serving: bool


def version_rows(session: Session, project: Project) -> list[VersionRow]:
    """The project's model versions, newest first; ``serving`` marks the one in use.

    The worker suggests with the newest ready version a backend trained (imported
    suggestion batches are versions too, but nothing predicts with them).
    """
    versions = learning.model_versions(session, project)
    serving = next((v.id for v in versions if _trained(v) and v.status == "ready"), None)
    return [_version_row(v, v.id == serving) for v in versions]


def _trained(version: ModelVersion) -> bool:
    return version.backend != "import"


def _version_row(version: ModelVersion, serving: bool) -> VersionRow:
    ev = (version.metrics or {}).get("evaluation") or {}
    entity = ev.get("entity", {})
    return VersionRow(
        name=version.name,
        created_at=version.created_at,
        backend=version.backend,
        status=version.status,
        n_train_docs=version.n_train_docs,
        n_test_docs=ev.get("n_docs"),
        entity_strict_f1=entity.get("strict", {}).get("f1"),
        entity_lenient_f1=entity.get("lenient", {}).get("f1"),
        relation_f1=ev.get("relation", {}).get("micro", {}).get("f1"),
        serving=serving,
    )


@dataclass(frozen=True)
class JobRow:
    id: int
    status: str
    phase: str
    progress: float
    reason: str
    created_at: datetime
    finished_at: datetime | None
    error: str
    cancel_requested: bool
    model_version: str | None

    @property
    def active(self) -> bool:
        return self.status in jobs.ACTIVE


def job_rows(session: Session, project: Project, limit: int = 20) -> list[JobRow]:
    """The project's newest jobs, newest first, with the version each one produced."""
    rows = jobs.jobs_of(session, project, limit=limit)
    names = _version_names(session, [j.model_version_id for j in rows if j.model_version_id])
    return [
        JobRow(
            id=j.id,
            status=j.status,
            phase=j.phase,
            progress=j.progress,
            reason=j.reason,
            created_at=j.created_at,
            finished_at=j.finished_at,
            error=j.error,
            cancel_requested=j.cancel_requested,
            model_version=names.get(j.model_version_id) if j.model_version_id else None,
        )
        for j in rows
    ]


def _version_names(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    query = select(ModelVersion.id, ModelVersion.name).where(ModelVersion.id.in_(ids))
    return dict(session.execute(query).all())


def _for_writing(session: Session, project_name: str) -> Project:
    # The write lock first, then the read: a transaction that began by reading could be
    # refused its write when the worker wrote in between.
    begin_write(session)
    return repo.get_project(session, project_name)


def train_now(session: Session, project_name: str, user: str) -> tuple[TrainingJob, bool]:
    """Queue a training job as ``noteloop train --queue`` does; (job, created).

    When the project has a job queued or running already, that job is returned instead:
    a second one would train on the same gold again.
    """
    project = _for_writing(session, project_name)
    job, created = jobs.enqueue(session, project, reason="train now", config={})
    if created:
        repo.record_audit(session, user, "train_now", "training_jobs", job.id)
    return job, created


def cancel_job(session: Session, project_name: str, job_id: int, user: str) -> str:
    """Cancel a queued job, or ask a running one to stop; returns the job's status after.

    Raises:
        NotFoundError: no such job in this project.
    """
    project = _for_writing(session, project_name)
    job = session.get(TrainingJob, job_id)
    if job is None or job.project_id != project.id:
        raise NotFoundError(f"project {project.name} has no training job {job_id}")
    status = jobs.request_cancel(session, job_id)
    repo.record_audit(session, user, "cancel_job", "training_jobs", job_id, after=status)
    return status


def save_training_settings(
    session: Session,
    project_name: str,
    project_values: Mapping[str, Any],
    model_values: Mapping[str, Any],
    user: str,
) -> dict[str, Any]:
    """Check the Model page's form whole, then save it into the project's settings.

    Raises:
        SettingsError: a value refused, named; nothing is saved then.
    """
    project = _for_writing(session, project_name)
    changes = settings_changes(project_values, model_values, project.settings)
    return repo.update_project_settings(session, project, changes, user)
