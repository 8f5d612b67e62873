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


@pytest.fixture
def demo_db(demo_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo database as the app's (``NOTELOOP_DB``), with a member of each role:
    ann (annotator), lea (lead) and adm (admin), passwords ``<name>-pw``."""
    from noteloop.core.schema import Role
    from noteloop.db import repo
    from noteloop.db.engine import make_engine

    monkeypatch.setenv("NOTELOOP_DB", demo_db_url)
    engine = make_engine(demo_db_url)
    with session_factory(engine).begin() as session:
        demo = repo.get_project(session, "demo")
        for name, role in (("ann", Role.ANNOTATOR), ("lea", Role.LEAD), ("adm", Role.ADMIN)):
            repo.add_member(session, repo.add_user(session, name, role, f"{name}-pw"), demo)
    engine.dispose()
    return demo_db_url


@pytest.fixture
def served_navigation(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest runs as a running server does once ``st.navigation`` was called: every run
    executes ``app.py``. (AppTest resets Streamlit's guess at every run, and with a
    ``pages/`` folder beside ``app.py`` the guess is the folder-based mode, which runs a
    page script without ``app.py``; a server guesses that only until its first run.)"""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
