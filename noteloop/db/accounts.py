"""Accounts: users, their passwords, roles and project memberships.

One writer per action, each audited under the name of whoever did it: :func:`create_user`
(the Users page, ``noteloop user add`` and the demo seed), :func:`update_user`,
:func:`reset_password` and :func:`change_password`. Passwords are stored only as salted
scrypt hashes, and every new one must pass :func:`check_password`. A generated password is
returned once, to be shown once. The last active admin cannot be demoted or deactivated:
nobody could manage users then.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.core.schema import Role
from noteloop.db import audit, limits
from noteloop.db.engine import begin_write
from noteloop.db.errors import DuplicateError, StoreError
from noteloop.db.models import Membership, Project, User
from noteloop.db.projects import get_project, list_projects

# A password shorter than this is refused at creation, reset and change.
PASSWORD_MIN_LENGTH = 10
# scrypt cost: 16 MiB and ~50 ms per hash, OWASP's minimum for interactive logins.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32


# --------------------------------------------------------------------------- passwords


def check_password(name: str, password: str) -> None:
    """Refuse a password that is too short or contains the user name.

    Raises:
        StoreError: saying which rule the password breaks.
    """
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        got = len(password) if isinstance(password, str) else 0
        raise StoreError(
            f"a password must be at least {PASSWORD_MIN_LENGTH} characters long "
            f"(this one has {got})"
        )
    if name.strip() and name.strip().casefold() in password.casefold():
        raise StoreError(f"a password must not contain the user name {name.strip()!r}")


def generated_password(name: str) -> str:
    """A random password that passes :func:`check_password` for ``name``."""
    while True:  # a short user name may, rarely, occur in a random string: draw again
        secret = secrets.token_urlsafe(12)
        if not name.strip() or name.strip().casefold() not in secret.casefold():
            return secret


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_hex$hash_hex`` with a fresh random salt."""
    if not password:
        raise StoreError("a password must not be empty")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=64 * 2**20
    )


@cache
def _dummy_hash() -> str:
    # Checked when the user does not exist, so that a wrong name costs the same time.
    return hash_password("noteloop-no-such-user")


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, else ``None`` (never says which failed).

    Only checks: :func:`noteloop.db.logins.log_in` is the login, with its throttle and audit.
    """
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash) or not user.active:
        return None
    return user


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    active: bool
    projects: tuple[str, ...]  # memberships; leads and admins see every project anyway
    created_at: datetime


def user_rows(session: Session) -> list[UserRow]:
    """Every user with their role and project memberships, by name."""
    users = session.scalars(select(User).order_by(User.name))
    member_of = _memberships(session)
    return [
        UserRow(u.name, u.role, u.active, tuple(member_of.get(u.id, ())), u.created_at)
        for u in users
    ]


def _memberships(session: Session, user_id: int | None = None) -> dict[int, list[str]]:
    """User id -> the names of their projects, sorted (one user's when ``user_id`` is set)."""
    query = (
        select(Membership.user_id, Project.name)
        .join(Project, Project.id == Membership.project_id)
        .order_by(Project.name)
    )
    if user_id is not None:
        query = query.where(Membership.user_id == user_id)
    member_of: dict[int, list[str]] = {}
    for uid, project in session.execute(query):
        member_of.setdefault(uid, []).append(project)
    return member_of


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise StoreError(f"role {role!r} is not one of {known}") from None


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    return user


def create_user(
    session: Session, name: str, role: Role | str, password: str, projects: Iterable[str], by: str
) -> str:
    """Create an active user with these project memberships (audited); returns the
    password. The only way a user is made.

    An empty ``password`` gets a random one, returned so it can be shown once.

    Raises:
        DuplicateError: the name is taken. StoreError: a bad name, role or password.
        NotFoundError: an unknown project.
    """
    begin_write(session)
    name = limits.check_name("user", name.strip() if isinstance(name, str) else name)
    new_role = _role(role)
    secret = password or generated_password(name)
    check_password(name, secret)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise DuplicateError(f"a user named {name!r} exists already")
    user = User(name=name, role=new_role.value, password_hash=hash_password(secret), active=True)
    session.add(user)
    session.flush()
    set_memberships(session, user, projects)
    after = {"role": user.role, "active": True, "projects": _project_names(session, user)}
    audit.record_audit(session, by, "add_user", "users", user.id, after=after)
    return secret


def set_memberships(session: Session, user: User, project_names: Iterable[str]) -> None:
    """Make ``project_names`` exactly the projects ``user`` is a member of."""
    wanted = [get_project(session, name) for name in project_names]
    session.execute(delete(Membership).where(Membership.user_id == user.id))
    for project in wanted:
        add_member(session, user, project)
    session.flush()


def _project_names(session: Session, user: User) -> list[str]:
    return _memberships(session, user.id).get(user.id, [])


def update_user(
    session: Session, name: str, *, role: str, active: bool, projects: Iterable[str], by: str
) -> None:
    """Change a user's role, whether they may log in, and their projects (audited, with
    the projects before and after).

    Raises:
        StoreError: the change would leave no active admin.
    """
    begin_write(session)
    admins = _locked_admins(session)  # before reading the user: their role may just change
    user = get_user(session, name)
    new_role = _role(role)
    before = {"role": user.role, "active": user.active, "projects": _project_names(session, user)}
    leaving = user.id in admins and (new_role is not Role.ADMIN or not active)
    if leaving and not set(admins) - {user.id}:
        raise StoreError(
            f"{user.name} is the last active admin: make another user admin first, "
            "or nobody could manage users"
        )
    user.role, user.active = new_role.value, active
    set_memberships(session, user, projects)
    after = {"role": user.role, "active": user.active, "projects": _project_names(session, user)}
    audit.record_audit(session, by, "update_user", "users", user.id, before, after)


def _locked_admins(session: Session) -> list[int]:
    """The ids of the active admins, their rows locked until the transaction ends.

    Two admins demoting each other at once must not both see the other still an admin:
    on PostgreSQL ``FOR UPDATE`` (in id order, so two such transactions cannot deadlock)
    makes the second wait for the first and then see its change; on SQLite the
    ``BEGIN IMMEDIATE`` of :func:`begin_write` has serialised the writers already.
    """
    query = (
        select(User.id)
        .where(User.role == Role.ADMIN.value, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return list(session.scalars(query))


def reset_password(session: Session, name: str, password: str, by: str) -> str:
    """Set a user's new password (a random one when empty), audited as done by ``by``;
    returns it, to be shown once.

    Raises:
        NotFoundError: no such user. StoreError: the password breaks a rule.
    """
    begin_write(session)
    user = get_user(session, name)
    secret = password or generated_password(user.name)
    _set_password(user, secret)
    session.flush()
    audit.record_audit(session, by, "reset_password", "users", user.id)
    return secret


def change_password(session: Session, name: str, current: str, new: str) -> None:
    """A user's change of their own password, which needs the current one (audited).

    Raises:
        StoreError: the current password is wrong, or the new one breaks a rule.
    """
    begin_write(session)
    user = authenticate(session, name, current)
    if user is None:
        raise StoreError("the current password is wrong")
    _set_password(user, new)
    session.flush()
    audit.record_audit(session, user.name, "change_password", "users", user.id)


def _set_password(user: User, password: str) -> None:
    check_password(user.name, password)
    user.password_hash = hash_password(password)


def add_member(session: Session, user: User, project: Project) -> None:
    """Give ``user`` access to ``project`` (does nothing when they have it already)."""
    if session.get(Membership, (user.id, project.id)) is None:
        session.add(Membership(user_id=user.id, project_id=project.id))
        session.flush()


def projects_for(session: Session, user: User) -> list[Project]:
    """The projects ``user`` may open: annotators their own, leads and admins every one."""
    if user.role != Role.ANNOTATOR.value:
        return list_projects(session)
    query = (
        select(Project)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.name)
    )
    return list(session.scalars(query))
