"""Projects: their creation, their label schema, their settings and their counts.

The caller owns the transaction, as everywhere in ``db``. The schema and the settings are
read-modify-write values of one row: :func:`locked_project` reads that row under a row
lock (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the whole
file already), so two leads changing them at once both keep their change, and the audit
row's "before" is what the change replaced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from noteloop.core.active import DEFAULT_STRATEGY
from noteloop.core.errors import NotFoundError, SchemaError
from noteloop.core.schema import AnnotationStatus, LabelSchema, Split
from noteloop.db import audit, limits, models
from noteloop.db.errors import DuplicateError, StoreError
from noteloop.db.models import Annotation, Project

DEFAULT_SETTINGS: Mapping[str, Any] = {
    "train_every": 5,  # submitted notes between two training runs
    "backend": "encoder",
    "strategy": DEFAULT_STRATEGY,
}


def create_project(
    session: Session, name: str, schema: LabelSchema, settings: Mapping[str, Any] | None = None
) -> Project:
    """Create a project; ``settings`` are merged over :data:`DEFAULT_SETTINGS`.

    Raises:
        DuplicateError: a project of that name exists.
        StoreError: the name is empty or a setting has a wrong value.
        SchemaError: a type name longer than a label column holds.
    """
    limits.check_name("project", name)
    too_long = limits.schema_problems(schema)
    if too_long:
        raise SchemaError("; ".join(too_long))
    merged = _checked_settings({**DEFAULT_SETTINGS, **(settings or {})})
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise DuplicateError(f"a project named {name!r} exists already")
    project = Project(name=name, label_schema=schema.to_dict(), settings=merged)
    session.add(project)
    session.flush()
    return project


def _checked_settings(settings: dict[str, Any]) -> dict[str, Any]:
    every = settings.get("train_every")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise StoreError(f"setting train_every must be a whole number >= 1, got {every!r}")
    return settings


def get_project(session: Session, name: str) -> Project:
    """The project called ``name``; the NotFoundError lists the projects there are."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        names = [p.name for p in list_projects(session)]
        known = f"existing projects: {', '.join(names)}" if names else "there are no projects yet"
        raise NotFoundError(f"no project named {name!r} ({known})")
    return project


def locked_project(session: Session, name: str) -> Project:
    """The project called ``name``, read afresh with its row locked until the transaction
    ends: what a read-modify-write of its schema or settings reads.

    Raises:
        NotFoundError: no such project (the message lists the projects there are).
    """
    query = (
        select(Project)
        .where(Project.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    project = session.scalar(query)
    return project if project is not None else get_project(session, name)


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))


def project_schema(project: Project) -> LabelSchema:
    return LabelSchema.from_dict(project.label_schema)


def set_project_schema(session: Session, project: Project, schema: LabelSchema, user: str) -> None:
    """Replace the project's label schema (audited). Stored gold is not re-checked.

    Read ``project`` with :func:`locked_project` when ``schema`` was made from its
    schema: read without the lock, another lead's change in between would be lost.
    """
    before, after = project.label_schema, schema.to_dict()
    project.label_schema = after
    audit.record_audit(session, user, "set_schema", "projects", project.id, before, after)
    session.flush()


def update_project_settings(
    session: Session, project: Project, changes: Mapping[str, Any], user: str
) -> dict[str, Any]:
    """Merge ``changes`` into the project's settings (audited); returns the new settings.

    The settings are read again under the row lock first: two people changing different
    settings at once both keep their change.
    """
    session.refresh(project, with_for_update=True)
    before = dict(project.settings)
    after = _checked_settings({**before, **changes})
    project.settings = after  # a new dict: JSON columns do not track in-place changes
    audit.record_audit(session, user, "update_settings", "projects", project.id, before, after)
    session.flush()
    return after


# --------------------------------------------------------------------------- statistics


def project_stats(session: Session, project: Project) -> dict[str, Any]:
    """Counts for a project page, over its live documents (retired ones are left out);
    span and relation counts are over submitted gold.

    Keys: documents (by split), annotated and submitted (documents with an annotation, a
    submitted one), spans_by_label, relations_by_label, annotators (name -> submitted
    annotations), hours (annotator time over all annotations).
    """
    return {
        "documents": _documents_by_split(session, project),
        "annotated": _annotated_documents(session, project, submitted=False),
        "submitted": _annotated_documents(session, project, submitted=True),
        "spans_by_label": _labels(session, project, models.Span),
        "relations_by_label": _labels(session, project, models.Relation),
        "annotators": _annotators(session, project),
        "hours": round(_seconds(session, project) / 3600, 2),
    }


def _project_annotations(project: Project) -> Any:
    """The annotations of the project's live documents: retired ones count nowhere."""
    return (
        select(Annotation.id)
        .join(models.Document, models.Document.id == Annotation.document_id)
        .where(models.Document.project_id == project.id, models.Document.retired_at.is_(None))
    )


def _documents_by_split(session: Session, project: Project) -> dict[str, int]:
    query = (
        select(models.Document.split, func.count())
        .where(models.Document.project_id == project.id, models.Document.retired_at.is_(None))
        .group_by(models.Document.split)
    )
    counts = dict(session.execute(query).all())
    return {s.value: counts.get(s.value, 0) for s in Split}


def _annotated_documents(session: Session, project: Project, *, submitted: bool) -> int:
    query = _project_annotations(project).with_only_columns(
        func.count(func.distinct(Annotation.document_id))
    )
    if submitted:
        query = query.where(Annotation.status == AnnotationStatus.SUBMITTED.value)
    return int(session.scalar(query) or 0)


def _labels(session: Session, project: Project, model: Any) -> dict[str, int]:
    submitted = _project_annotations(project).where(
        Annotation.status == AnnotationStatus.SUBMITTED.value
    )
    query = (
        select(model.label, func.count())
        .where(model.annotation_id.in_(submitted))
        .group_by(model.label)
        .order_by(func.count().desc(), model.label)
    )
    return dict(session.execute(query).all())


def _annotators(session: Session, project: Project) -> dict[str, int]:
    query = _project_annotations(project).with_only_columns(Annotation.annotator, Annotation.status)
    counts: Counter[str] = Counter()
    for name, status in session.execute(query).all():
        counts[name] += status == AnnotationStatus.SUBMITTED.value
    return dict(sorted(counts.items()))


def _seconds(session: Session, project: Project) -> float:
    query = _project_annotations(project).with_only_columns(func.sum(Annotation.seconds_spent))
    return float(session.scalar(query) or 0.0)
