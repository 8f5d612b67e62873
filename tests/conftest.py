"""Shared fixtures.

Every database test gets its own database: a temp-file SQLite (an in-memory database cannot
show WAL mode, and two connections or two processes could not share it), and, for the
modules marked ``both_databases``, also a fresh PostgreSQL database on the server that
``NOTELOOP_TEST_POSTGRES`` names (``make test`` starts one; without it those variants skip).
Each run's databases carry the run's own prefix and are dropped at its end.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from noteloop.db.engine import init_db, session_factory

POSTGRES_ENV = "NOTELOOP_TEST_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run the module's database tests on SQLite and PostgreSQL"
    )
    config.addinivalue_line(
        "markers", "sqlite_only: a test of SQLite's own behaviour, in a both_databases module"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A marked test that uses a database runs once per backend; the others on SQLite only.
    marked = metafunc.definition.get_closest_marker
    if "db_backend" in metafunc.fixturenames and marked("both_databases"):
        metafunc.parametrize("db_backend", ("sqlite",) if marked("sqlite_only") else BACKENDS)


@pytest.fixture
def db_backend() -> str:
    """The database a test runs on: SQLite unless its module is marked ``both_databases``."""
    return "sqlite"


class PostgresServer:
    """The test server of ``NOTELOOP_TEST_POSTGRES``: creates and drops this run's databases."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        # CREATE/DROP DATABASE cannot run inside a transaction.
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.prefix = f"nltest_{os.getpid()}_"
        self._numbers = itertools.count(1)
        self.created: list[str] = []

    def create(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its URL."""
        name = f"{self.prefix}{next(self._numbers)}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}{clause}"))
        self.created.append(name)
        return self.url_of(name)

    def copy_if_empty(self, url: str, template: str) -> None:
        """Makes the database of ``url`` a copy of ``template`` where it has no tables yet."""
        probe = create_engine(url)
        with probe.connect() as connection:
            tables = connection.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )).scalar_one()
        probe.dispose()
        if tables:
            return
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop(self.url_of(name))
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """This run's PostgreSQL server; the tests that need it skip when none is configured."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to a PostgreSQL URL of a role that may create databases")
    server = PostgresServer(url)
    yield server
    server.drop_all()


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a fresh database (not yet migrated) on the test's backend."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'noteloop.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create()
    yield url
    server.drop(url)


@pytest.fixture
def db_engine(db_url: str, db_backend: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on ``db_url`` with the schema migrated to head.

    Where the database is still empty it becomes a copy of one migrated once per run (a
    file copy, or CREATE DATABASE ... TEMPLATE): migrating every test's database took
    0.07 s on SQLite and 0.2 s on PostgreSQL, hundreds of times. ``init_db`` then finds
    it at head, as it would any migrated database.
    """
    if db_backend == "sqlite":
        path = Path(make_url(db_url).database or "")
        if not path.exists():
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        server.copy_if_empty(db_url, request.getfixturevalue("_migrated_postgres"))
    engine = init_db(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run, for ``db_engine`` to copy."""
    return _sqlite_template(tmp_path_factory.mktemp("migrated") / "noteloop.db")


def _sqlite_template(path: Path, fill: Callable[[sessionmaker[Session]], object] | None = None
                     ) -> Path:
    """A SQLite file at ``path`` migrated to head (and filled by ``fill``), ready to copy."""
    engine = init_db(f"sqlite:///{path}")
    if fill is not None:
        fill(session_factory(engine))
    with engine.connect() as connection:  # fold the WAL into the main file before copying
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _migrated_postgres(postgres: PostgresServer) -> str:
    """A PostgreSQL database migrated to head once per run: the template of the others."""
    url = postgres.create()
    init_db(url).dispose()  # a template must have no open connections
    return make_url(url).database or ""


@pytest.fixture
def make_session(db_engine: Engine) -> sessionmaker[Session]:
    """A session factory on the migrated database (``make_session.begin()`` commits)."""
    return session_factory(db_engine)


@pytest.fixture
def session(make_session: sessionmaker[Session]) -> Iterator[Session]:
    """A session on the migrated database; the test commits what it wants kept."""
    with make_session() as session:
        yield session


SAMPLE_NOTES = Path(__file__).resolve().parents[1] / "sample_notes"


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project seeded once per test run into a template database file."""
    from noteloop.usecases.demo import seed_demo

    return _sqlite_template(tmp_path_factory.mktemp("demo-template") / "demo.db",
                            lambda make: seed_demo(make, SAMPLE_NOTES))


@pytest.fixture(scope="session")
def _demo_postgres_template(postgres: PostgresServer) -> str:
    """The demo project seeded once per run into a PostgreSQL database used as a template."""
    from noteloop.usecases.demo import seed_demo

    url = postgres.create()
    engine = init_db(url)
    seed_demo(session_factory(engine), SAMPLE_NOTES)
    engine.dispose()  # CREATE DATABASE ... TEMPLATE refuses a template with open connections
    return make_url(url).database or ""


@pytest.fixture
def demo_db_url(
    db_backend: str, _demo_template: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh copy of the seeded demo database (68 notes, 25 with gold, an admin)."""
    if db_backend == "sqlite":
        target = tmp_path / "demo.db"
        shutil.copyfile(_demo_template, target)
        yield f"sqlite:///{target}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create(template=request.getfixturevalue("_demo_postgres_template"))
    yield url
    server.drop(url)


@pytest.fixture
def demo_db(demo_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo database as the app's (``NOTELOOP_DB``), with a member of each role:
    ann (annotator), lea (lead) and adm (admin), passwords ``app_helpers.USERS``."""
    from app_helpers import USERS

    from noteloop.db import accounts
    from noteloop.db.engine import make_engine

    monkeypatch.setenv("NOTELOOP_DB", demo_db_url)
    engine = make_engine(demo_db_url)
    with session_factory(engine).begin() as session:
        for role, (name, password) in USERS.items():
            accounts.create_user(session, name, role, password, ["demo"], by="test")
    engine.dispose()
    return demo_db_url


