"""What the Model page reads and writes: versions with their scores, jobs, settings.

The app never trains: "train now" and "cancel" only write job rows that the worker acts
on (the same rows ``noteloop train --queue`` and ``noteloop cancel`` write), and the
settings are the project's, which the worker reads when it starts a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.core.model.base import Int8Check
from noteloop.core.settings import settings_changes
from noteloop.db import audit, jobs, learning, projects, serving
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
    entity_strict_ci: tuple[float, float] | None = None
    verdict: str = ""
    # "base model", or the version whose adapter and heads the round continued from;
    # "" for what was not trained here (an imported batch of suggestions)
    trained_from: str = ""
    # the int8 check made at publish time, in words; "" where none was made (a GPU, a
    # backend without int8 weights, a version from before the check)
    int8: str = ""

    @property
    def servable(self) -> bool:
        """A lead may serve it: complete on disk and trained (an import cannot predict)."""
        return self.status == "ready" and self.backend != "import"

    def shown(self) -> dict[str, Any]:
        """The row as the Model page's versions table shows it."""
        return {
            "version": self.name,
            "created": f"{self.created_at:%Y-%m-%d %H:%M}",
            "serving": "yes" if self.serving else "",
            "status": self.status,
            "backend": self.backend,
            "train notes": self.n_train_docs,
            "trained from": self.trained_from,
            "test notes": self.n_test_docs,
            "entity F1 (strict)": _f1(self.entity_strict_f1),
            "entity F1 (lenient)": _f1(self.entity_lenient_f1),
            "relation F1": _f1(self.relation_f1),
            "int8 on CPU": self.int8,
            "verdict": self.verdict,
        }


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def version_rows(session: Session, project: Project) -> list[VersionRow]:
    """The project's model versions, newest first; ``serving`` marks the one in use.

    The serving version is the one ``serving_models`` names (:mod:`noteloop.db.serving`):
    a newer one may be a candidate, and imported suggestion batches never serve.
    """
    versions = learning.model_versions(session, project)
    current = serving.serving_version(session, project)
    return [_version_row(v, current is not None and v.id == current.id) for v in versions]


def _version_row(version: ModelVersion, serves: bool) -> VersionRow:
    ev = (version.metrics or {}).get("evaluation") or {}
    entity = ev.get("entity", {})
    ci = ev.get("ci", {}).get("entity_strict")
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
        serving=serves,
        entity_strict_ci=(float(ci[0]), float(ci[1])) if ci else None,
        verdict=version.verdict,
        trained_from=_trained_from(version),
        int8=_int8(version),
    )


def _int8(version: ModelVersion) -> str:
    """What the publish-time int8 check found: the F1 it costs, and so which weights a CPU
    without native bfloat16 predicts with under 'auto' inference."""
    stored = ((version.metrics or {}).get("train") or {}).get("int8_check")
    if not stored:
        return ""
    check = Int8Check.from_dict(stored)
    cost = f"{check.int8_f1:.3f} ({check.int8_f1 - check.float_f1:+.3f})"
    return f"passed: {cost}, int8" if check.passed else f"failed: {cost}, float"


def _trained_from(version: ModelVersion) -> str:
    train = (version.metrics or {}).get("train") or {}
    if not train:
        return ""
    # the folder a round continued from is named after its version
    return PurePath(train["warm_from"]).name if train.get("warm_from") else "base model"


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
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

    def shown(self) -> dict[str, Any]:
        """The row as the Model page's jobs table shows it."""
        return {
            "job": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": self.progress,
            "phase": self.phase,
            "reason": self.reason,
            "created": f"{self.created_at:%Y-%m-%d %H:%M}",
            "version": self.model_version or "",
            "error": self.error,
        }


def job_rows(session: Session, project: Project, limit: int = 20) -> list[JobRow]:
    """The project's newest jobs, newest first, with the version each one produced."""
    rows = jobs.jobs_of(session, project, limit=limit)
    names = _version_names(session, [j.model_version_id for j in rows if j.model_version_id])
    return [
        JobRow(
            id=j.id,
            kind=j.kind,
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
    return projects.get_project(session, project_name)


def train_now(session: Session, project_name: str, user: str) -> tuple[TrainingJob, bool]:
    """Queue a training job as ``noteloop train --queue`` does; (job, created).

    When the project has a job queued or running already, that job is returned instead:
    a second one would train on the same gold again.
    """
    project = _for_writing(session, project_name)
    job, created = jobs.enqueue(session, project, reason="train now", config={})
    if created:
        audit.record_audit(session, user, "train_now", "training_jobs", job.id)
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
    audit.record_audit(session, user, "cancel_job", "training_jobs", job_id, after=status)
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
    return projects.update_project_settings(session, project, changes, user)
