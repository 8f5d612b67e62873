"""What the database refuses, in words a person can act on.

:class:`StoreError` and :class:`DuplicateError` are the refusals ``db`` raises itself,
before it writes. :func:`database_refusal` turns what the database server raised instead
(a value too long for its column, a constraint, a lost connection) into a
:class:`DatabaseRefusedError`: the CLI, the pages and the worker show its message, never a
traceback. :func:`is_retryable` names the failures that a fresh attempt of the same unit
of work cures (a deadlock, a serialization failure, SQLite's "database is locked").
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from noteloop.core.errors import NoteloopError

# PostgreSQL's SQLSTATEs for serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
_SHORT = 300  # characters of the server's own message kept in ours


class StoreError(NoteloopError, ValueError):
    """A request the database refuses: a name taken, a model version of another project."""


class DuplicateError(StoreError):
    """A project, user, model version or suggestion batch that exists already."""


class DatabaseRefusedError(NoteloopError):
    """The database server refused a unit of work; nothing of it was saved."""


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE the driver reported for ``exc`` ("" when it gave none)."""
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")


def is_retryable(exc: BaseException) -> bool:
    """Whether running the same unit of work again may well succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    if sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    # SQLite says so only in words; busy_timeout has waited already when it does.
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def short_reason(exc: BaseException) -> str:
    """The first line of the server's message, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return first[:_SHORT]


def database_refusal(exc: SQLAlchemyError) -> DatabaseRefusedError:
    """The error to show for ``exc``: what happened, that nothing was saved, what to do."""
    reason = short_reason(exc)
    if is_retryable(exc):
        return DatabaseRefusedError(
            f"the database refused the change: {reason}; nothing was saved. Others were "
            "changing the same rows at the same moment: try again."
        )
    if isinstance(exc, OperationalError):  # the connection, not the change
        return DatabaseRefusedError(
            f"the database could not be reached: {reason}; nothing was saved. Check that "
            "the database server is running and reachable (NOTELOOP_DB), then try again."
        )
    return DatabaseRefusedError(
        f"the database refused the change: {reason}; nothing was saved. Try again; if it "
        "persists, tell the person who runs noteloop what you did."
    )
