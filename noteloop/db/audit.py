"""The audit trail: every change of state writes one row through :func:`record_audit`.

Each writer (a save, a claim, a schema edit, a role change...) adds its row in the same
transaction as its change, so the two commit or roll back together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.db.models import AuditLog


def record_audit(
    session: Session,
    user: str,
    action: str,
    entity: str,
    entity_id: int | None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Add an audit row (who did what to which row, with its JSON before and after)."""
    session.add(
        AuditLog(
            user=user, action=action, entity=entity, entity_id=entity_id, before=before, after=after
        )
    )


def latest(session: Session, action: str, entity: str, entity_id: int) -> AuditLog | None:
    """The newest audit row of ``action`` on one row (the last import into a project)."""
    query = (
        select(AuditLog)
        .where(AuditLog.action == action, AuditLog.entity == entity,
               AuditLog.entity_id == entity_id)
        .order_by(AuditLog.id.desc())
        .limit(1)
    )
    return session.scalar(query)
