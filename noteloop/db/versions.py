"""Kept gold versions: every submit of a note adds one, with what changed against the last.

Separate from :mod:`noteloop.db.gold` so that :func:`noteloop.db.repo.save_annotation`,
the one writer of gold, can keep a version without importing what builds on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.db.models import GoldVersion, utcnow


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


def gold_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> dict[str, Any]:
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
    """"+3 spans, -1 span, 2 spans changed, +1 relation" (or "no change")."""
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
