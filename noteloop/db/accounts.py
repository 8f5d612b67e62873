"""Users for the Users page: list, create, change role and projects, reset passwords.

Passwords are stored only as salted scrypt hashes (:func:`repo.hash_password`); a
generated password is returned once, to be shown once. Every change is audited. The
last active admin cannot be demoted or deactivated: nobody could manage users then.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from noteloop.core.schema import Role
from noteloop.db import repo
from noteloop.db.engine import begin_write
from noteloop.db.models import Membership, Project, User
from noteloop.db.projects import get_project
from noteloop.db.repo import StoreError


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    active: bool
    projects: tuple[str, ...]  # memberships; leads and admins see every project anyway
    created_at: datetime


def user_rows(session: Session) -> list[UserRow]:
    """Every user with their role and project memberships, by name."""
    query = (
        select(Membership.user_id, Project.name)
        .join(Project, Project.id == Membership.project_id)
        .order_by(Project.name)
    )
    member_of: dict[int, list[str]] = {}
    for user_id, project in session.execute(query):
        member_of.setdefault(user_id, []).append(project)
    users = session.scalars(select(User).order_by(User.name))
    return [
        UserRow(u.name, u.role, u.active, tuple(member_of.get(u.id, ())), u.created_at)
        for u in users
    ]


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise StoreError(f"role {role!r} is not one of {known}") from None


def create_user(
    session: Session, name: str, role: str, password: str, projects: Iterable[str], by: str
) -> str:
    """Create a user with these project memberships; returns the password.

    An empty ``password`` gets a random one, returned so it can be shown once.

    Raises:
        DuplicateError: the name is taken. StoreError: a bad name or role.
        NotFoundError: an unknown project.
    """
    begin_write(session)
    secret = password or secrets.token_urlsafe(9)
    user = repo.add_user(session, name.strip(), _role(role), secret)
    set_memberships(session, user, projects)
    repo.record_audit(session, by, "add_user", "users", user.id, after={"role": user.role})
    return secret


def set_memberships(session: Session, user: User, projects: Iterable[str]) -> None:
    """Make ``projects`` exactly the projects ``user`` is a member of."""
    wanted = [get_project(session, name) for name in projects]
    session.execute(delete(Membership).where(Membership.user_id == user.id))
    for project in wanted:
        repo.add_member(session, user, project)
    session.flush()


def update_user(
    session: Session, name: str, *, role: str, active: bool, projects: Iterable[str], by: str
) -> None:
    """Change a user's role, whether they may log in, and their projects (audited).

    Raises:
        StoreError: the change would leave no active admin.
    """
    begin_write(session)
    user = repo.get_user(session, name)
    new_role = _role(role)
    before = {"role": user.role, "active": user.active}
    if user.role == Role.ADMIN.value and (new_role is not Role.ADMIN or not active):
        _keep_an_admin(session, user)
    user.role, user.active = new_role.value, active
    set_memberships(session, user, projects)
    after = {"role": user.role, "active": user.active}
    repo.record_audit(session, by, "update_user", "users", user.id, before, after)


def _keep_an_admin(session: Session, leaving: User) -> None:
    others = session.scalar(
        select(func.count()).where(
            User.role == Role.ADMIN.value, User.active.is_(True), User.id != leaving.id
        )
    )
    if not others:
        raise StoreError(
            f"{leaving.name} is the last active admin: make another user admin first, "
            "or nobody could manage users"
        )


def reset_password(session: Session, name: str, password: str, by: str) -> str:
    """Set a new password (a random one when empty); returns it, to be shown once."""
    begin_write(session)
    user = repo.get_user(session, name)
    secret = password or secrets.token_urlsafe(9)
    repo.set_password(session, user, secret)
    repo.record_audit(session, by, "reset_password", "users", user.id)
    return secret
