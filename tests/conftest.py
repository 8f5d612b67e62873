"""Shared fixtures.

Every database test gets its own temp-file SQLite: an in-memory database cannot show WAL
mode, and two connections (or two processes) could not share it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from noteloop.db.engine import init_db, session_factory


@pytest.fixture
def db_url(tmp_path) -> str:
    """The URL of a fresh database file (not yet created)."""
    return f"sqlite:///{tmp_path / 'noteloop.db'}"


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with the schema migrated to head."""
    engine = init_db(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_session(db_engine: Engine) -> sessionmaker[Session]:
    """A session factory on the migrated database (``make_session.begin()`` commits)."""
    return session_factory(db_engine)


@pytest.fixture
def session(make_session: sessionmaker[Session]) -> Iterator[Session]:
    """A session on the migrated database; the test commits what it wants kept."""
    with make_session() as session:
        yield session
