"""Rows of the learning loop: curve points per model version (session-first functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from noteloop.db import limits, models
from noteloop.db.models import CurvePoint, ModelVersion, Project

# Evaluation.to_dict() keys -> (task, metric) of a curve point.
_MICRO = {
    ("entity", "strict"): ("entity", "strict_f1"),
    ("entity", "lenient"): ("entity", "lenient_f1"),
}
_CI = {
    "entity_strict": ("entity", "strict_f1"),
    "entity_lenient": ("entity", "lenient_f1"),
    "relation": ("relation", "f1"),
}


def add_curve_points(
    session: Session,
    project: Project,
    version: ModelVersion,
    evaluation: Mapping[str, Any],
    *,
    n_gold_docs: int,
    annotator_hours: float,
    strategy: str = "",
) -> int:
    """Store one evaluation (``Evaluation.to_dict()``) as curve points: micro and per label.

    Replaces the version's earlier points, so re-evaluating a version never doubles them.
    """
    session.execute(delete(CurvePoint).where(CurvePoint.model_version_id == version.id))
    rows = [
        CurvePoint(
            project_id=project.id,
            model_version_id=version.id,
            strategy=strategy,
            n_gold_docs=n_gold_docs,
            annotator_hours=annotator_hours,
            task=task,
            label=label,
            metric=metric,
            value=value,
            ci_low=low,
            ci_high=high,
        )
        for task, label, metric, value, low, high in _points(evaluation)
    ]
    session.add_all(rows)
    session.flush()
    return len(rows)


def _points(ev: Mapping[str, Any]) -> list[tuple[str, str, str, float, float | None, float | None]]:
    ci = {_CI[k]: v for k, v in ev.get("ci", {}).items() if k in _CI}
    out = []
    for (section, kind), (task, metric) in _MICRO.items():
        value = ev[section][kind]["f1"]
        out.append((task, "", metric, value, *ci.get((task, metric), (None, None))))
        for label, prf in ev[section]["per_label"][kind].items():
            out.append((task, label, metric, prf["f1"], None, None))
    rel = ev["relation"]
    out.append(
        ("relation", "", "f1", rel["micro"]["f1"], *ci.get(("relation", "f1"), (None, None)))
    )
    for label, prf in rel["per_label"].items():
        out.append(("relation", label, "f1", prf["f1"], None, None))
    return out


def curve(session: Session, project: Project, *, label: str = "") -> list[dict[str, Any]]:
    """The project's curve points (micro by default), oldest version first, as plain dicts."""
    query = (
        select(CurvePoint, ModelVersion.name)
        .join(ModelVersion, CurvePoint.model_version_id == ModelVersion.id)
        .where(CurvePoint.project_id == project.id, CurvePoint.label == label)
        .order_by(CurvePoint.model_version_id, CurvePoint.task, CurvePoint.metric)
    )
    return [curve_row(p, name) for p, name in session.execute(query)]


def curve_row(point: CurvePoint, version: str) -> dict[str, Any]:
    """A curve point as the plain dict the pages chart; ``version`` is its model's name."""
    return {
        "version": version,
        "n_gold_docs": point.n_gold_docs,
        "annotator_hours": point.annotator_hours,
        "task": point.task,
        "metric": point.metric,
        "value": point.value,
        "ci_low": point.ci_low,
        "ci_high": point.ci_high,
        "strategy": point.strategy,
    }


def model_versions(session: Session, project: Project) -> list[models.ModelVersion]:
    """Every version of the project, newest first."""
    query = (
        select(ModelVersion)
        .where(ModelVersion.project_id == project.id)
        .order_by(ModelVersion.id.desc())
    )
    return list(session.scalars(query))


def replace_queue(
    session: Session,
    project: Project,
    entries: list[tuple[int, float, dict[str, Any]]],
    *,
    strategy: str,
    model_version_id: int | None,
) -> int:
    """Make ``entries`` — (document row id, score, details), best first — the project's queue.

    Entries of retired documents are left out (one retired while the worker ranked).
    """
    session.execute(delete(models.QueueScore).where(models.QueueScore.project_id == project.id))
    entries = _live_entries(session, entries)
    session.add_all(
        models.QueueScore(
            project_id=project.id,
            document_id=doc_id,
            model_version_id=model_version_id,
            strategy=strategy,
            score=score,
            rank=rank,
            details=details,
        )
        for rank, (doc_id, score, details) in enumerate(entries, start=1)
    )
    session.flush()
    return len(entries)


def _live_entries(
    session: Session, entries: list[tuple[int, float, dict[str, Any]]]
) -> list[tuple[int, float, dict[str, Any]]]:
    ids = [doc_id for doc_id, _, _ in entries]
    retired: set[int] = set()
    for chunk in limits.chunks(ids):
        query = select(models.Document.id).where(
            models.Document.id.in_(chunk), models.Document.retired_at.is_not(None)
        )
        retired.update(session.scalars(query))
    return [entry for entry in entries if entry[0] not in retired]


def queue(session: Session, project: Project) -> list[models.QueueScore]:
    """The project's ranked queue, best first, without retired documents.

    A retired document's score stays stored, skipped here: restored, it is back in its
    place until the next ranking.
    """
    query = (
        select(models.QueueScore)
        .join(models.Document, models.Document.id == models.QueueScore.document_id)
        .where(models.QueueScore.project_id == project.id, models.Document.retired_at.is_(None))
        .order_by(models.QueueScore.rank)
    )
    return list(session.scalars(query))


def annotation_timings(session: Session, project: Project) -> list[tuple[int, float]]:
    """(words, seconds) of every submitted annotation that logged time: the cost model's data."""
    query = (
        select(models.Document.text, models.Annotation.seconds_spent)
        .join(models.Annotation, models.Annotation.document_id == models.Document.id)
        .where(
            models.Document.project_id == project.id,
            models.Document.retired_at.is_(None),
            models.Annotation.status == "submitted",
            models.Annotation.seconds_spent > 0,
        )
    )
    return [(len(text.split()), float(seconds)) for text, seconds in session.execute(query)]
