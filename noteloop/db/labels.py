"""Saving a project's label schema without orphaning its gold.

:func:`label_usage` counts, in a few grouped queries, how the project's annotations (every
annotator's, submitted or in progress) use entity types, relation types and attributes;
:func:`edit_schema` refuses a schema that drops or narrows anything they use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from noteloop.core.errors import ConflictError, SchemaError
from noteloop.core.schema import LabelSchema
from noteloop.core.schema_edit import LabelUsage, usage_conflicts
from noteloop.db import limits, models, projects
from noteloop.db.engine import begin_write
from noteloop.db.models import Annotation, Project


def _in_project(query: Select, project: Project) -> Select:
    return query.join(models.Document, models.Document.id == Annotation.document_id).where(
        models.Document.project_id == project.id
    )


def label_usage(session: Session, project: Project) -> LabelUsage:
    """How the project's gold uses its labels (see :class:`LabelUsage`)."""
    spans = _in_project(
        select(
            models.Span.label, func.count(), func.count(func.distinct(Annotation.document_id))
        ).join(Annotation, Annotation.id == models.Span.annotation_id),
        project,
    ).group_by(models.Span.label)
    head, tail = aliased(models.Span), aliased(models.Span)
    relations = _in_project(
        select(models.Relation.label, head.label, tail.label, func.count())
        .join(Annotation, Annotation.id == models.Relation.annotation_id)
        .join(head, head.id == models.Relation.head_id)
        .join(tail, tail.id == models.Relation.tail_id),
        project,
    ).group_by(models.Relation.label, head.label, tail.label)
    return LabelUsage(
        spans={label: (n, notes) for label, n, notes in session.execute(spans)},
        relations={(r, h, t): n for r, h, t, n in session.execute(relations)},
        attributes=_attribute_usage(session, project),
    )


def _attribute_usage(session: Session, project: Project) -> dict[tuple[str, str], int]:
    # Attributes are a JSON list per span (NULL for most): counted here, not in SQL,
    # so the query stays portable across databases.
    query = _in_project(
        select(models.Span.attributes)
        .join(Annotation, Annotation.id == models.Span.annotation_id)
        .where(models.Span.attributes.is_not(None)),
        project,
    )
    counts: Counter[tuple[str, str]] = Counter()
    for (attributes,) in session.execute(query):
        counts.update((name, value) for name, value in attributes or ())
    return dict(counts)


def edit_schema(
    session: Session,
    project_name: str,
    edit: Callable[[LabelSchema], LabelSchema],
    user: str,
    *,
    expected: LabelSchema | None = None,
) -> list[str]:
    """Apply ``edit`` to the project's schema as stored now, and save the result unless
    the project's gold uses what the new schema lacks.

    The schema is read under the project's row lock (:func:`projects.locked_project`), so
    two leads editing different types at once both keep their change. An edit that
    replaces the whole schema passes the schema it was made from as ``expected``: when
    someone saved another one meanwhile, nothing is saved (it would undo their change).
    Returns notes for the person saving: open suggestions that carry a label the schema
    no longer has (they stay until the next model; accepting one would be refused).

    Raises:
        SchemaError: the edit's own refusal, or every use of the gold it would orphan,
            counted; nothing is saved.
        SchemaChangedError: the stored schema is no longer ``expected``.
    """
    begin_write(session)
    project = projects.locked_project(session, project_name)
    stored = projects.project_schema(project)
    if expected is not None and stored != expected:
        raise _changed_meanwhile(session, project)
    schema = edit(stored)
    too_long = limits.schema_problems(schema)
    if too_long:
        raise SchemaError("; ".join(too_long) + "; nothing was saved")
    conflicts = usage_conflicts(schema, label_usage(session, project))
    if conflicts:
        raise SchemaError(
            "the project's gold annotations use what this change removes or narrows:\n"
            + "\n".join(f"- {c}" for c in conflicts)
            + "\nRelabel or delete those annotations first (renaming a type the gold uses "
            "removes its old name), then change the schema."
        )
    projects.set_project_schema(session, project, schema, user=user)
    return _orphaned_suggestions(session, project, schema)


class SchemaChangedError(ConflictError):
    """The schema was saved by someone else since the page showed it."""


def _changed_meanwhile(session: Session, project: Project) -> SchemaChangedError:
    last = session.scalar(
        select(models.AuditLog)
        .where(
            models.AuditLog.entity == "projects",
            models.AuditLog.entity_id == project.id,
            models.AuditLog.action == "set_schema",
        )
        .order_by(models.AuditLog.id.desc())
        .limit(1)
    )
    who = last.user if last else "someone"
    at = last.at.isoformat(timespec="seconds") if last else ""
    return SchemaChangedError(
        f"the schema of project {project.name} was changed meanwhile by {who}"
        f"{f' at {at}' if at else ''}; nothing was saved: reload the page to see their "
        "change, then make yours again",
        saved_by=who,
        saved_at=at,
        current_version=0,
    )


def _orphaned_suggestions(session: Session, project: Project, schema: LabelSchema) -> list[str]:
    query = (
        select(models.Suggestion.label, func.count())
        .join(models.Document, models.Document.id == models.Suggestion.document_id)
        .where(
            models.Document.project_id == project.id,
            ~select(models.SuggestionDecision.id)
            .where(models.SuggestionDecision.suggestion_id == models.Suggestion.id)
            .exists(),
            models.Suggestion.label.not_in([*schema.entity_names, *schema.relation_names]),
        )
        .group_by(models.Suggestion.label)
    )
    return [
        f"{n} open suggestion(s) still carry {label}; the next model will not suggest it"
        for label, n in session.execute(query)
    ]
