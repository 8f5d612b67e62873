"""The engine's SQLite settings, the migration and the constraints the database enforces."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from noteloop.core.errors import InvalidDocumentError
from noteloop.core.schema import Document, EntityType, LabelSchema
from noteloop.db import documents, model_versions, models, projects
from noteloop.db.engine import (
    alembic_config,
    begin_write,
    db_url_from_env,
    init_db,
    make_engine,
    normalize_url,
    session_factory,
    upgrade,
)

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema((EntityType("Drug"),))


def _differences(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, models.Base.metadata)


def test_migrated_schema_equals_the_models(db_engine: Engine) -> None:
    assert _differences(db_engine) == []
    with db_engine.connect() as connection:
        head = connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert head == ScriptDirectory.from_config(alembic_config()).get_current_head()


def _checks(engine: Engine) -> dict[str, list[tuple[str, str]]]:
    inspector = inspect(engine)
    return {
        table: sorted(
            (c["name"], " ".join(c["sqltext"].split()))
            for c in inspector.get_check_constraints(table)
        )
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


@pytest.fixture
def fresh_url(db_backend: str, tmp_path, request: pytest.FixtureRequest):
    """A second empty database on the test's backend."""
    if db_backend == "sqlite":
        yield str(tmp_path / "fresh.db")
        return
    server = request.getfixturevalue("postgres")
    url = server.create()
    yield url
    server.drop(url)


def test_migrated_check_constraints_equal_the_models(db_engine: Engine, fresh_url: str) -> None:
    # compare_metadata does not look at CHECK constraints: compare them by hand.
    fresh = make_engine(fresh_url)
    models.Base.metadata.create_all(fresh)
    assert _checks(db_engine) == _checks(fresh)
    assert any("start" in sql and '"end"' in sql for _, sql in _checks(db_engine)["spans"])
    fresh.dispose()


def test_the_comparison_would_see_a_difference(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_relations_head_id")
    assert [d[0] for d in _differences(db_engine)] == ["add_index"]


def test_upgrade_twice_is_harmless_and_keeps_data(db_url: str) -> None:
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        projects.create_project(session, "p", SCHEMA)
    upgrade(engine)
    with session_factory(engine)() as session:
        assert [p.name for p in projects.list_projects(session)] == ["p"]
    engine.dispose()


@pytest.mark.sqlite_only
def test_every_connection_gets_the_pragmas(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30000
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL


@pytest.mark.sqlite_only
def test_begin_write_holds_the_write_lock_from_the_start(db_engine: Engine, db_url: str) -> None:
    path = db_url.removeprefix("sqlite:///")
    with session_factory(db_engine)() as session:
        begin_write(session)  # no statement run yet: only BEGIN IMMEDIATE can hold the lock
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        session.rollback()
        other.execute("BEGIN IMMEDIATE")  # free again once the session ended its transaction
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.sqlite_only
def test_an_immediate_factory_takes_the_lock_on_its_first_read(
    db_engine: Engine, db_url: str
) -> None:
    with session_factory(db_engine, immediate=True)() as session:
        projects.list_projects(session)
        other = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


@pytest.mark.sqlite_only
def test_plain_sessions_begin_deferred_and_do_not_block_writers(
    db_engine: Engine, db_url: str
) -> None:
    with session_factory(db_engine)() as session:
        projects.list_projects(session)  # a read transaction is open
        other = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()


def test_urls_from_paths_and_the_environment(tmp_path, monkeypatch) -> None:
    assert normalize_url(None) == "sqlite:///./noteloop.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert normalize_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.setenv("NOTELOOP_DB", str(tmp_path / "b.db"))
    assert db_url_from_env() == f"sqlite:///{tmp_path / 'b.db'}"
    monkeypatch.delenv("NOTELOOP_DB")
    assert db_url_from_env() == "sqlite:///./noteloop.db"


def test_make_engine_on_a_bare_path(tmp_path) -> None:
    engine = make_engine(str(tmp_path / "c.db"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    assert (tmp_path / "c.db").exists()


# --------------------------------------------------------------------------- constraints


def _document(session: Session) -> int:
    project = projects.create_project(session, "p", SCHEMA)
    result = documents.add_documents(session, project, [Document("d1", "aspirin 100 mg")])
    annotation = models.Annotation(document_id=result.added[0], annotator="ann", updated_by="ann")
    session.add(annotation)
    session.flush()
    return annotation.id


def _raw_span(annotation_id: int, start: int, end: int) -> dict:
    return {
        "annotation_id": annotation_id,
        "key": "T1",
        "label": "Drug",
        "start": start,
        "end": end,
        "fragments": [[start, end]],
    }


@pytest.mark.parametrize(
    ("start", "end", "name"),
    [
        (5, 5, "ck_spans_start_before_end"),
        (7, 3, "ck_spans_start_before_end"),
        (-1, 3, "ck_spans_start_nonnegative"),
    ],
)
def test_the_database_refuses_bad_offsets(session: Session, start, end, name) -> None:
    annotation_id = _document(session)
    with pytest.raises(IntegrityError, match=name):
        session.add(models.Span(**_raw_span(annotation_id, start, end)))
        session.flush()


def test_the_database_refuses_a_duplicate_text(session: Session) -> None:
    _document(session)
    project = projects.get_project(session, "p")
    row = models.Document(
        project_id=project.id,
        external_id="other",
        text="aspirin 100 mg",
        sha256=documents.text_sha256("aspirin 100 mg"),
        n_chars=14,
    )
    with pytest.raises(IntegrityError, match=r"project_id, (documents\.)?sha256"):
        session.add(row)
        session.flush()


def test_foreign_keys_are_enforced(session: Session) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        session.add(models.Span(**_raw_span(12345, 0, 3)))
        session.flush()


def test_deleting_a_document_cascades_to_its_gold(session: Session) -> None:
    annotation_id = _document(session)
    session.add(models.Span(**_raw_span(annotation_id, 0, 7)))
    session.flush()
    session.execute(text("DELETE FROM documents"))
    assert session.scalar(text("SELECT count(*) FROM spans")) == 0
    assert session.scalar(text("SELECT count(*) FROM annotations")) == 0


def test_a_suggestion_score_outside_0_1_is_refused(session: Session) -> None:
    _document(session)
    project = projects.get_project(session, "p")
    version = model_versions.register_model_version(
        session, project, name="m1", backend="b", path="/x"
    )
    row = models.Suggestion(
        document_id=1,
        model_version_id=version.id,
        kind="span",
        key="T1",
        label="Drug",
        start=0,
        end=7,
        score=1.5,
    )
    with pytest.raises(IntegrityError, match="ck_suggestions_score_range"):
        session.add(row)
        session.flush()


def test_document_text_cannot_change_through_the_orm(session: Session) -> None:
    _document(session)
    row = session.get(models.Document, 1)
    assert row is not None
    row.meta = {"source": "ok"}  # metadata may change
    session.flush()
    row.text = "ibuprofen 200 mg"
    with pytest.raises(InvalidDocumentError, match="cannot change"):
        session.flush()


def test_reprs_name_the_row(session: Session) -> None:
    _document(session)
    assert repr(session.get(models.Document, 1)).startswith("Document(id=1, project_id=1,")
    assert "annotator='ann'" in repr(session.get(models.Annotation, 1))
    names = set(inspect(session.get_bind()).get_table_names())
    assert {"projects", "spans", "suggestions", "training_jobs", "audit_log"} <= names
