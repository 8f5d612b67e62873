"""Shared fixtures.

Every database test gets its own temp-file SQLite: an in-memory database cannot show WAL
mode, and two connections (or two processes) could not share it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project seeded once per test run into a template database file."""
    from noteloop.seed import seed_demo

    path = tmp_path_factory.mktemp("demo-template") / "demo.db"
    engine = init_db(f"sqlite:///{path}")
    seed_demo(session_factory(engine), Path(__file__).resolve().parents[1] / "sample_notes")
    with engine.connect() as connection:  # fold the WAL into the main file before copying
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def demo_db_url(_demo_template: Path, tmp_path: Path) -> str:
    """A fresh copy of the seeded demo database (68 notes, 25 with gold, an admin)."""
    target = tmp_path / "demo.db"
    shutil.copyfile(_demo_template, target)
    return f"sqlite:///{target}"
