"""Engines, sessions and migrations: the one place that knows how to open the database.

The Streamlit app and the worker are separate processes that share one SQLite file, so
every SQLite connection gets the same settings (WAL, foreign keys, a busy timeout), and
write transactions can start with ``BEGIN IMMEDIATE``: a transaction that only later
upgrades its read lock to a write lock fails at once with "database is locked" when the
other process committed in between, whereas one that takes the write lock up front
simply waits its turn (up to ``busy_timeout``).

Any other SQLAlchemy URL (PostgreSQL, say) works too; the SQLite settings are then skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SAWarning, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from noteloop.db.errors import database_refusal, is_retryable

DEFAULT_URL = "sqlite:///./noteloop.db"
ENV_VAR = "NOTELOOP_DB"
BUSY_TIMEOUT_MS = 30_000
RETRY_ATTEMPTS = 3  # tries of a unit of work refused by a deadlock or a serialization failure
RETRY_PAUSE_S = 0.05
T = TypeVar("T")

_HERE = Path(__file__).resolve().parent
ALEMBIC_INI = _HERE / "alembic.ini"
MIGRATIONS = _HERE / "migrations"

# The execution option that chooses the BEGIN statement of a transaction (see _on_begin).
BEGIN_OPTION = "noteloop_begin"
_BEGIN_MODES = {"": "BEGIN", "DEFERRED": "BEGIN DEFERRED", "IMMEDIATE": "BEGIN IMMEDIATE"}


def normalize_url(value: str | None) -> str:
    """A SQLAlchemy URL from a URL or a bare file path (``None`` gives :data:`DEFAULT_URL`).

    A bare path becomes an absolute ``sqlite:///`` URL, so the app and the worker open the
    same file whatever their working folders.
    """
    if value is None or not value.strip():
        return DEFAULT_URL
    value = value.strip()
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def db_url_from_env(default: str | None = None) -> str:
    """The database URL named by ``NOTELOOP_DB`` (a path or a URL); read at entry points only."""
    return normalize_url(os.environ.get(ENV_VAR) or default)


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default ``sqlite:///./noteloop.db``); SQLite gets its pragmas."""
    url = normalize_url(url)
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:
        create_private_sqlite_file(url)
    # pool_pre_ping: a pooled connection is tested before use, so the first request after
    # a PostgreSQL restart (or a server closing idle connections) opens a fresh one
    # instead of failing. A SQLite file cannot drop a connection; it skips the test.
    engine = create_engine(url, json_serializer=_compact_json, pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_begin)
    return engine


def create_private_sqlite_file(url: str) -> None:
    """Create the SQLite file of ``url`` readable and writable by its owner only (0600),
    unless it exists already (or the URL names no file).

    The file holds clinical notes and password hashes, and SQLite would create it with the
    umask's mode (often world-readable). SQLite gives its -wal and -shm files the database
    file's permissions, so they are private too.
    """
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    if not Path(path).parent.is_dir():
        return  # SQLite's own "unable to open database file" says it better
    # An empty file is an empty SQLite database; an existing one keeps its mode.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def shown_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: the form to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url  # not a URL, so no password in it to hide


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # isolation_level None stops the sqlite3 module from emitting its own BEGIN (it skips
    # it before SELECT and DDL): SQLAlchemy's "begin" event emits ours instead (the
    # recipe of SQLAlchemy's SQLite dialect documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # NORMAL is durable in WAL mode except for the last commits before a power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_begin(connection: Any) -> None:
    mode = str(connection.get_execution_options().get(BEGIN_OPTION, "")).upper()
    if mode not in _BEGIN_MODES:
        raise ValueError(f"{BEGIN_OPTION} must be one of DEFERRED, IMMEDIATE, got {mode!r}")
    connection.exec_driver_sql(_BEGIN_MODES[mode])


def session_factory(engine: Engine, *, immediate: bool = False) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; with ``immediate`` every transaction takes the write lock.

    Objects stay readable after commit (``expire_on_commit=False``): pages render them
    after the session closed.
    """
    bind = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}) if immediate else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def begin_write(session: Session) -> None:
    """Start the session's transaction with ``BEGIN IMMEDIATE`` unless one is already open.

    Call it first in a unit of work that writes. When the session already read something
    its transaction has begun (deferred) and this does nothing: open a fresh session, or
    commit first, for a write that must not fail on a busy database. Harmless on other
    databases (the option is read only by the SQLite "begin" hook).
    """
    # The options apply only when this call opens the connection; when one is open already
    # SQLAlchemy says it ignored them, which is the documented behaviour here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Connection is already established", SAWarning)
        session.connection(execution_options={BEGIN_OPTION: "IMMEDIATE"})


def run_transaction(
    make_session: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = RETRY_ATTEMPTS,
) -> T:
    """Run ``work`` in one write transaction (:func:`begin_write`) and commit; returns its
    result. The unit of work of a page or CLI action that writes.

    A deadlock, a serialization failure or SQLite's "database is locked" rolls the
    transaction back and runs ``work`` again in a fresh one, up to ``attempts`` times in
    all: each was refused only because another writer touched the same rows at the same
    moment. ``work`` must therefore do nothing outside the database that it cannot repeat.
    What the database still refuses is raised as
    :class:`~noteloop.db.errors.DatabaseRefusedError`, whose message says what to do;
    noteloop's own refusals (:class:`NoteloopError`) pass through unchanged.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            with make_session.begin() as session:
                begin_write(session)
                return work(session)
        except SQLAlchemyError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise database_refusal(exc) from exc
            # A short, growing, jittered pause: the writers that collided start again
            # apart from each other rather than in step.
            time.sleep(RETRY_PAUSE_S * attempt * (1 + random.random()))
    raise AssertionError("unreachable: the last attempt returns or raises")


def alembic_config(engine: Engine | None = None) -> Config:
    """The packaged Alembic configuration, pointing at the packaged migrations."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        # ConfigParser interpolates %: a password may hold one.
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest schema).

    Runs in one ``BEGIN IMMEDIATE`` transaction, so an app and a worker starting together
    migrate one after the other instead of both trying to create the tables.
    """
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision``, in one ``BEGIN IMMEDIATE`` transaction."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    # The migrations run on this engine's own connection: left to open one, the Alembic
    # environment would follow NOTELOOP_DB, which may name another database.
    config = alembic_config(engine)
    with engine.connect() as connection:
        connection = connection.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            config.attributes["connection"] = connection
            step(config, revision)


def init_db(url: str | None = None) -> Engine:
    """An engine for ``url`` with its database migrated to the newest schema."""
    engine = make_engine(url)
    upgrade(engine)
    return engine
