"""Kept gold versions: every submit of a note keeps one (:func:`keep_version`), with who,
when, the gold and what changed against the version before; :func:`history` lists them.

A lead brings an earlier one back with :func:`noteloop.db.gold.restore`, as a new version, so
nothing is overwritten. This module imports nothing of :mod:`noteloop.db.gold`:
:func:`~noteloop.db.gold.save_annotation`, the one writer of gold, keeps its versions here,
and restoring builds on that writer.

The caller owns the transaction, as everywhere in ``db``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.db import documents
from noteloop.db.models import Annotation, GoldVersion, utcnow


def keep_version(
    session: Session,
    annotation_id: int,
    version: int,
    saved_by: str,
    content: Mapping[str, Any],
    *,
    restored_from: int | None = None,
) -> GoldVersion:
    """Keep ``content`` (the audit form of the gold) as version ``version`` of the
    annotation, with what changed against the newest version kept before it."""
    previous = session.scalar(
        select(GoldVersion)
        .where(GoldVersion.annotation_id == annotation_id)
        .order_by(GoldVersion.version.desc())
        .limit(1)
    )
    changes = gold_changes(previous.content if previous else None, content)
    changes["previous"] = previous.version if previous else None
    row = GoldVersion(
        annotation_id=annotation_id,
        version=version,
        saved_by=saved_by,
        saved_at=utcnow(),
        content=dict(content),
        changes=changes,
        restored_from=restored_from,
    )
    session.add(row)
    session.flush()
    return row


def gold_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    """Span and relation keys added, removed and changed between two audit records."""
    out: dict[str, Any] = {}
    for kind in ("spans", "relations"):
        old = {item[0]: item for item in (before or {}).get(kind, [])}
        new = {item[0]: item for item in after.get(kind, [])}
        out[kind] = {
            "added": sorted(k for k in new if k not in old),
            "removed": sorted(k for k in old if k not in new),
            "changed": sorted(k for k in new if k in old and list(new[k]) != list(old[k])),
        }
    return out


_CHANGE_WORDS = (("added", "+{n} {w}"), ("removed", "-{n} {w}"), ("changed", "{n} {w} changed"))


def describe_changes(changes: Mapping[str, Any]) -> str:
    """What changed, in words: "+3 spans, -1 span, 2 spans changed, +1 relation" (or
    "no change")."""
    if changes.get("note"):
        return str(changes["note"])
    parts = []
    for kind in ("spans", "relations"):
        one = kind[:-1]
        c = changes.get(kind, {})
        for key, fmt in _CHANGE_WORDS:
            n = len(c.get(key, []))
            if n:
                parts.append(fmt.format(n=n, w=one if n == 1 else kind))
    return ", ".join(parts) or "no change"


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


def kept_version(session: Session, document_id: int, annotator: str, version: int) -> GoldVersion:
    """Kept version ``version`` of ``annotator``'s gold for the note.

    Raises:
        NotFoundError: no such annotation or kept version (the error lists the kept ones).
    """
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
    return kept


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
