"""Logins that survive a reload: server-side sessions carried by a cookie.

:func:`log_in` is the one way in: it checks the password and throttles guessing (see
:class:`ThrottlePolicy`). A login creates a row holding only the SHA-256 of a random
token; the browser keeps the token in a cookie (``SameSite=Strict``, never in a URL, where
it would land in logs and history). A reload or a second tab presents the cookie and
:func:`resume` finds the login again. A login ends at log out, when an admin revokes it,
after ``idle_minutes`` without a request, or ``lifetime_hours`` after it began, whatever
the activity.

The token is 32 random bytes, so a plain SHA-256 is enough to make a stolen table useless
(a password needs a slow hash because people choose guessable ones; a token is not guessable).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.db import accounts, audit
from noteloop.db.engine import begin_write
from noteloop.db.models import Login, LoginThrottle, User, utcnow

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


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failed logins slow down guessing, per user name and per client address.

    After ``user_failures`` failures of one name (or ``address_failures`` from one
    address) without a quiet ``window_minutes`` between them, logins of that name (from
    that address) are refused, even with the right password, for ``first_delay_seconds``;
    each further failure doubles the delay, up to ``max_delay_minutes``.
    """

    user_failures: int = field(
        default=5, metadata={"help": "failures of one user name before its logins wait"}
    )
    # Higher than per name: behind a reverse proxy a whole team may share one address.
    address_failures: int = field(
        default=20, metadata={"help": "failures from one client address before its logins wait"}
    )
    window_minutes: float = field(
        default=15.0, metadata={"help": "a quiet spell this long starts the count again"}
    )
    first_delay_seconds: float = field(
        default=30.0, metadata={"help": "the first wait; each further failure doubles it"}
    )
    max_delay_minutes: float = field(default=60.0, metadata={"help": "the longest wait"})

    def __post_init__(self) -> None:
        for name in ("user_failures", "address_failures"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"`{name}` must be a whole number >= 1, got {getattr(self, name)!r}"
                )
        for name in ("window_minutes", "first_delay_seconds", "max_delay_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")

    def limit(self, kind: str) -> int:
        return self.user_failures if kind == "user" else self.address_failures

    def delay(self, failures_over_limit: int) -> timedelta:
        """The wait after the limit was passed by ``failures_over_limit`` (0: just reached)."""
        seconds = self.first_delay_seconds * 2 ** min(failures_over_limit, 30)
        return min(timedelta(seconds=seconds), timedelta(minutes=self.max_delay_minutes))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(text: str) -> tuple[Network, ...]:
    """The reverse proxies whose ``X-Forwarded-For`` is believed, from a comma-separated
    list of addresses or networks (``127.0.0.1, 10.0.0.0/8``).

    Raises:
        ValueError: an entry that is neither, named.
    """
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"NOTELOOP_TRUSTED_PROXIES: {entry!r} is not an IP address or network "
                "(e.g. 127.0.0.1 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The address a login is counted against: the connecting ``peer``, unless it is a
    trusted proxy; then the right-most address in ``X-Forwarded-For`` that is not one.

    Behind a reverse proxy every browser connects from the proxy's address, so one team
    would share one throttle row (20 failures by anyone would lock everyone out). Only a
    trusted proxy's header is believed, and only read from the right: a browser can put
    anything at the left of it, while each proxy appends the address it was reached from.
    """
    if not _within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop[:100]
    return hops[0][:100] if hops else peer


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


@dataclass(frozen=True)
class LoginAttempt:
    """What :func:`log_in` made of an attempt: a login, or the message to show."""

    started: Started | None
    user: User | None
    message: str = ""


WRONG = "Wrong user name or password."


def log_in(
    session: Session,
    name: str,
    password: str,
    policy: LoginPolicy,
    *,
    address: str = "",
    client: str = "",
    throttle: ThrottlePolicy | None = None,
) -> LoginAttempt:
    """Log ``name`` in unless the password is wrong or the name or the ``address`` has
    failed too often lately. Every failure and every refusal is audited; a success clears
    the name's count (not the address's: one valid account must not reset it).

    The caller commits whatever the outcome: the failures are the point of the count.
    """
    throttle = throttle or ThrottlePolicy()
    begin_write(session)  # on SQLite every attempt runs whole under the write lock, in turn
    now = utcnow()
    keys = (("address", (address or "this machine")[:300]), ("user", name[:300]))
    waits = _waits(_throttles(session, keys), now)
    if waits:
        rows = _throttles(session, keys)
        _audit_attempt(session, "log_in_refused", name, address, rows, max(waits.values()))
        return LoginAttempt(None, None, _wait_message(waits, now))
    # The password is checked before any throttle row is locked: scrypt takes ~50 ms, and a
    # team behind one reverse proxy shares one address, so one row.
    user = accounts.authenticate(session, name, password)
    if user is None:
        rows = [_locked_throttle(session, kind, key) for kind, key in keys]  # address first
        for row in rows:
            _count_failure(row, now, throttle)
        waits = _waits(rows, now)
        _audit_attempt(
            session, "log_in_failed", name, address, rows, max(waits.values(), default=None)
        )
        message = f"{WRONG} {_wait_message(waits, now)}" if waits else WRONG
        return LoginAttempt(None, None, message)
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.kind == "user", LoginThrottle.key == keys[1][1])
        .values(failures=0, last_failure_at=None, locked_until=None)
    )
    return LoginAttempt(start(session, user, policy, client), user)


def _throttles(session: Session, keys: tuple[tuple[str, str], ...]) -> list[LoginThrottle]:
    """The throttle rows of these (kind, key) pairs that exist, as stored now."""
    query = (
        select(LoginThrottle)
        .where(tuple_(LoginThrottle.kind, LoginThrottle.key).in_(keys))
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def _waits(rows: list[LoginThrottle], now: datetime) -> dict[str, datetime]:
    """Kind -> until when, for the rows that refuse logins now."""
    return {r.kind: r.locked_until for r in rows if r.locked_until and r.locked_until > now}


def _locked_throttle(session: Session, kind: str, key: str) -> LoginThrottle:
    key = key[:300]
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.kind == kind, LoginThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():  # another process may insert the same key meanwhile
            session.add(LoginThrottle(kind=kind, key=key, failures=0))
    except IntegrityError:
        pass
    return session.scalars(query).one()


def _count_failure(row: LoginThrottle, now: datetime, throttle: ThrottlePolicy) -> None:
    last = max(filter(None, (row.last_failure_at, row.locked_until)), default=None)
    if last is None or now - last > timedelta(minutes=throttle.window_minutes):
        row.failures = 0  # a quiet spell: the count starts again
    row.failures += 1
    row.last_failure_at = now
    over = row.failures - throttle.limit(row.kind)
    if over >= 0:
        row.locked_until = now + throttle.delay(over)


def _wait_message(waits: dict[str, datetime], now: datetime) -> str:
    until = max(waits.values())
    seconds = max(1, round((until - now).total_seconds()))
    whose = "for this user name" if "user" in waits else "from this address"
    return (
        f"Too many failed logins {whose}: try again after {until:%H:%M:%S} UTC "
        f"(in {seconds} seconds)."
    )


def _audit_attempt(
    session: Session,
    action: str,
    name: str,
    address: str,
    rows: list[LoginThrottle],
    until: datetime | None,
) -> None:
    after = {
        "address": address,
        "failures": {r.kind: r.failures for r in rows},
        "refused_until": until.isoformat() if until else None,
    }
    user_id = session.scalar(select(User.id).where(User.name == name))
    audit.record_audit(session, name[:200], action, "users", user_id, after=after)
    session.flush()


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
    audit.record_audit(session, user.name, "log_in", "logins", row.id)
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
    audit.record_audit(session, by, action, "logins", login_id)
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
