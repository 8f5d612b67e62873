"""Logins that survive a reload: server-side sessions carried by a cookie.

A login creates a row holding only the SHA-256 of a random token; the browser keeps the
token in a cookie (``SameSite=Strict``, never in a URL, where it would land in logs and
history). A reload or a second tab presents the cookie and :func:`resume` finds the
login again. A login ends at log out, when an admin revokes it, after ``idle_minutes``
without a request, or ``lifetime_hours`` after it began, whatever the activity.

The token is 32 random bytes, so a plain SHA-256 is enough to make a stolen table useless
(a password needs a slow hash because people choose guessable ones; a token is not guessable).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from noteloop.db import repo
from noteloop.db.engine import begin_write
from noteloop.db.models import Login, User, utcnow

COOKIE = "noteloop_login"
# A request renews a login's idle clock at most this often: every Streamlit rerun is a
# request, and a write on each would contend with the annotators' saves for nothing.
SEEN_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class LoginPolicy:
    """How long logins last; read from the environment once, by the app's entry point."""

    idle_minutes: float = field(
        default=480.0, metadata={"help": "a login ends after this many minutes without a request"}
    )
    lifetime_hours: float = field(
        default=168.0, metadata={"help": "a login ends this many hours after it began, always"}
    )

    def __post_init__(self) -> None:
        if not self.idle_minutes > 0:
            raise ValueError(f"`idle_minutes` must be > 0, got {self.idle_minutes!r}")
        if not self.lifetime_hours > 0:
            raise ValueError(f"`lifetime_hours` must be > 0, got {self.lifetime_hours!r}")

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.idle_minutes)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.lifetime_hours)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class Started:
    """A new login: the token for the cookie (never stored) and the row's id."""

    token: str
    login_id: int
    expires_at: datetime


def start(session: Session, user: User, policy: LoginPolicy, client: str = "") -> Started:
    """Begin a login for ``user`` (audited); the returned token goes into the cookie."""
    begin_write(session)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = Login(
        token_hash=token_hash(token),
        user_id=user.id,
        created_at=now,
        seen_at=now,
        expires_at=now + policy.lifetime,
        client=client[:300],
    )
    session.add(row)
    session.flush()
    repo.record_audit(session, user.name, "log_in", "logins", row.id)
    return Started(token, row.id, row.expires_at)


def resume(session: Session, token: str, policy: LoginPolicy) -> tuple[int, User] | None:
    """The login a cookie's token belongs to and its user, when the login is still open
    and the user may log in; else None. Renews the idle clock."""
    if not token or not isinstance(token, str):
        return None
    row = session.scalar(select(Login).where(Login.token_hash == token_hash(token)))
    return _open(session, row, policy)


def still_open(session: Session, login_id: int, policy: LoginPolicy) -> User | None:
    """The user of login ``login_id`` while it is open (checked at every rerun, so a
    revoked login ends at the next click); renews the idle clock."""
    found = _open(session, session.get(Login, login_id), policy)
    return found[1] if found else None


def _open(session: Session, row: Login | None, policy: LoginPolicy) -> tuple[int, User] | None:
    now = utcnow()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if row.seen_at + policy.idle <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.seen_at >= SEEN_RESOLUTION:
        session.execute(update(Login).where(Login.id == row.id).values(seen_at=now))
    return row.id, user


def end(session: Session, login_id: int, by: str) -> bool:
    """End a login (log out, or an admin's revocation; audited); False if it had ended."""
    begin_write(session)
    done = session.execute(
        update(Login)
        .where(Login.id == login_id, Login.ended_at.is_(None))
        .values(ended_at=utcnow(), ended_by=by)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    row = session.get(Login, login_id)
    owner = session.get(User, row.user_id) if row else None
    action = "log_out" if owner is not None and owner.name == by else "revoke_login"
    repo.record_audit(session, by, action, "logins", login_id)
    return True


@dataclass(frozen=True)
class LoginRow:
    """An open login, as the admin's list shows it."""

    id: int
    user: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime
    client: str


def open_logins(session: Session, policy: LoginPolicy) -> list[LoginRow]:
    """Every login that is still open, the most recently seen first."""
    now = utcnow()
    query = (
        select(Login, User.name)
        .join(User, User.id == Login.user_id)
        .where(Login.ended_at.is_(None), Login.expires_at > now, Login.seen_at > now - policy.idle)
        .order_by(Login.seen_at.desc())
    )
    return [
        LoginRow(row.id, name, row.created_at, row.seen_at, row.expires_at, row.client)
        for row, name in session.execute(query)
    ]
