"""Check-then-write rules that hold on PostgreSQL as on SQLite: schema edits, imports and
submits raced by real processes, values the columns cannot hold, the retry of a unit of
work, and database errors that reach a person as what to do, never as a traceback.

The races run as spawned processes that share nothing but the database, released
together by a barrier, as separate app processes and CLI runs would be.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from noteloop import cli
from noteloop.core.errors import ConflictError, InvalidDocumentError, NoteloopError, SchemaError
from noteloop.core.schema import Document, EntityType, LabelSchema, Span, Suggestion
from noteloop.core.schema_edit import put_entity
from noteloop.db import documents, gold, labels, model_versions, models, projects, suggestions
from noteloop.db.engine import init_db, make_engine, run_transaction, session_factory
from noteloop.db.errors import DatabaseRefusedError, is_retryable
from noteloop.usecases.import_export import ImportOptions, import_path

pytestmark = pytest.mark.both_databases

ROUNDS = 8
TEXT = "aspirin for headache"


def _spawn(target: Any, args_of: list[tuple[Any, ...]], timeout: float = 180) -> list[Any]:
    """Run ``target(*args, barrier, results)`` in one spawned process per ``args``; their
    results, in process order."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(args_of)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args_of]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return [out[i] for i in range(len(procs))]


# --------------------------------------------------------------------------- schema edits


def _slowly_add(name: str, schema: LabelSchema) -> LabelSchema:
    time.sleep(0.05)  # between the read and the write: where a lost update would happen
    return put_entity(schema, EntityType(name), None)


def _edit_schema_rounds(url: str, who: str, index: int, barrier: Any, results: Any) -> None:
    engine = make_engine(url)
    factory = session_factory(engine)
    errors = []
    try:
        for i in range(ROUNDS):
            barrier.wait(timeout=60)
            try:
                run_transaction(
                    factory,
                    lambda s, i=i: labels.edit_schema(
                        s, "p", lambda schema: _slowly_add(f"{who}{i}", schema), who
                    ),
                )
            except NoteloopError as exc:
                errors.append(str(exc))
    finally:
        engine.dispose()
    results.put((index, errors))


def test_two_leads_editing_the_schema_at_once_keep_both_changes_and_a_true_audit(db_url):
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        projects.create_project(session, "p", LabelSchema())
    outcomes = _spawn(_edit_schema_rounds, [(db_url, "A", 0), (db_url, "B", 1)])
    assert outcomes == [[], []]
    with session_factory(engine)() as session:
        stored = projects.project_schema(projects.get_project(session, "p"))
        audits = session.scalars(
            select(models.AuditLog)
            .where(models.AuditLog.action == "set_schema")
            .order_by(models.AuditLog.id)
        ).all()
    engine.dispose()
    wanted = {f"{who}{i}" for who in "AB" for i in range(ROUNDS)}
    assert set(stored.entity_names) == wanted
    assert len(audits) == 2 * ROUNDS
    # Each change saw the one before it, and the last one is what is stored.
    assert all(now.before == then.after for then, now in itertools.pairwise(audits))
    assert audits[-1].after == stored.to_dict()


def _settings_rounds(url: str, who: str, index: int, barrier: Any, results: Any) -> None:
    engine = make_engine(url)
    factory = session_factory(engine)
    try:
        for i in range(ROUNDS):
            barrier.wait(timeout=60)
            run_transaction(
                factory,
                lambda s, i=i: projects.update_project_settings(
                    s, projects.get_project(s, "p"), {f"{who}{i}": i}, who
                ),
            )
    finally:
        engine.dispose()
    results.put((index, "done"))


def test_two_people_changing_settings_at_once_keep_both_changes(db_url):
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        projects.create_project(session, "p", LabelSchema())
    assert _spawn(_settings_rounds, [(db_url, "A", 0), (db_url, "B", 1)]) == ["done", "done"]
    with session_factory(engine)() as session:
        settings = projects.get_project(session, "p").settings
        audits = session.scalars(
            select(models.AuditLog)
            .where(models.AuditLog.action == "update_settings")
            .order_by(models.AuditLog.id)
        ).all()
    engine.dispose()
    assert {f"{who}{i}" for who in "AB" for i in range(ROUNDS)} <= set(settings)
    assert all(now.before == then.after for then, now in itertools.pairwise(audits))


def test_a_whole_schema_saved_over_a_newer_one_is_refused_naming_who(make_session):
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    shown = LabelSchema()
    with make_session.begin() as session:
        labels.edit_schema(session, "p", lambda s: put_entity(s, EntityType("X"), None), "bo")
    with (
        make_session.begin() as session,
        pytest.raises(
            ConflictError, match=r"changed meanwhile by bo at .*nothing was saved: reload"
        ),
    ):
        labels.edit_schema(
            session, "p", lambda _: LabelSchema((EntityType("Y"),)), "al", expected=shown
        )
    with make_session() as session:
        assert projects.project_schema(projects.get_project(session, "p")).entity_names == ["X"]


def test_a_type_name_longer_than_its_column_is_refused(make_session):
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    long = "L" * 250
    with (
        make_session.begin() as session,
        pytest.raises(
            SchemaError, match=r"entity type 'L+' is 250 characters long, more than the 200"
        ),
    ):
        labels.edit_schema(session, "p", lambda s: put_entity(s, EntityType(long), None), "x")


# --------------------------------------------------------------------------- imports


def _folder(tmp_path: Path, notes: int = 60) -> Path:
    """A BRAT folder of ``notes`` notes, each with its drug marked (``.ann`` line 1)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(notes):
        prefix = f"Note {i}: "
        (folder / f"n{i}.txt").write_text(prefix + TEXT, encoding="utf-8")
        span = f"T1\tDrug {len(prefix)} {len(prefix) + len('aspirin')}\taspirin\n"
        (folder / f"n{i}.ann").write_text(span, encoding="utf-8")
    return folder


def _mark_long_label(ann: Path) -> None:
    """A second span on line 2 of ``ann`` whose label is longer than its column holds."""
    span = ann.read_text(encoding="utf-8").replace("T1\tDrug", "T2\t" + "X" * 250)
    ann.write_text(ann.read_text(encoding="utf-8") + span, encoding="utf-8")


def _import(url: str, folder: str, index: int, barrier: Any, results: Any) -> None:
    engine = make_engine(url)
    try:
        barrier.wait(timeout=60)
        report = import_path(session_factory(engine), "p", Path(folder), ImportOptions("brat"))
        results.put((index, (report.refused, report.documents_added, len(report.duplicates))))
    except Exception as exc:  # reported to the test, which fails with it
        results.put((index, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def test_two_imports_of_one_folder_at_once_both_finish_and_each_note_exists_once(db_url, tmp_path):
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
    folder = _folder(tmp_path)
    one, two = _spawn(_import, [(db_url, str(folder), 0), (db_url, str(folder), 1)])
    assert not isinstance(one, str) and not isinstance(two, str), (one, two)
    assert one[0] == [] and two[0] == []  # nothing refused
    assert one[1] + two[1] == 60 and one[2] + two[2] == 60  # added once, skipped once
    with session_factory(engine)() as session:
        n_docs = session.scalar(select(func.count()).select_from(models.Document))
        n_gold = session.scalar(select(func.count()).select_from(models.Annotation))
    engine.dispose()
    assert (n_docs, n_gold) == (60, 60)


def test_a_label_too_long_is_reported_with_file_and_line_and_the_other_files_import(
    make_session, tmp_path
):
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
    folder = _folder(tmp_path, notes=3)
    bad = folder / "n1.ann"
    _mark_long_label(bad)
    report = import_path(make_session, "p", folder, ImportOptions("brat", extend_schema=True))
    assert [(e.path, e.line) for e in report.refused] == [(str(bad), 2)]
    assert "label is 250 characters long, more than the 200 the database holds" in str(
        report.refused[0]
    )
    assert sorted(Path(f).name for f in report.files_imported) == ["n0.txt", "n2.txt"]
    with make_session() as session:
        assert session.scalar(select(func.count()).select_from(models.Document)) == 2
        # The refused file's labels did not reach the schema either.
        schema = projects.project_schema(projects.get_project(session, "p"))
        assert schema.entity_names == ["Drug"]


def test_the_import_command_names_the_bad_line_and_imports_the_rest(db_url, tmp_path):
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
    engine.dispose()
    folder = _folder(tmp_path, notes=2)
    _mark_long_label(folder / "n0.ann")
    result = CliRunner().invoke(
        cli.app,
        ["import", str(folder), "-p", "p", "-f", "brat", "--extend-schema", "--db", db_url],
    )
    said = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 1
    assert "n0.ann:2" in said and "more than the 200" in said
    assert "Traceback" not in said
    assert "imported 1 file(s): 1 new documents" in said


def test_a_document_id_too_long_is_refused_before_any_write(make_session):
    with make_session.begin() as session:
        project = projects.create_project(session, "p", LabelSchema())
        docs = [Document("ok", "a"), Document("i" * 501, "b")]
        with pytest.raises(InvalidDocumentError, match=r"document id .* more than the 500"):
            documents.add_documents(session, project, docs)


# --------------------------------------------------------------------------- submits


def _note_with_suggestions(url: str) -> tuple[int, list[int]]:
    engine = init_db(url)
    with session_factory(engine).begin() as session:
        project = projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
        docs = [Document(f"n{i}", f"{i}: {TEXT}") for i in range(ROUNDS)]
        rows = documents.add_documents(session, project, docs).added
        version = model_versions.register_model_version(
            session, project, name="m", backend="b", path="/"
        )
        for row in rows:
            spans = [Span(f"S{k}", "Drug", 3 + k, 4 + k) for k in range(6)]
            suggestions.add_suggestions(
                session, row, version.id, [Suggestion(s, 0.5) for s in spans]
            )
    with session_factory(engine)() as session:
        ids = {row: sorted(suggestions.suggestion_row_ids(session, row).values()) for row in rows}
    engine.dispose()
    return rows, ids


def _submit_rounds(
    url: str, who: str, status: str, plan: dict, index: int, barrier: Any, results: Any
) -> None:
    """Submit every note of ``plan`` as ``who``, deciding all its suggestions ``status``
    (in the order given: one racer ascending, the other descending)."""
    engine = make_engine(url)
    factory = session_factory(engine)
    outcomes = []
    try:
        for row, suggestion_ids in plan.items():
            barrier.wait(timeout=60)

            def work(session, row=row, ids=suggestion_ids):
                gold.save_annotation(session, row, who, [], [], expected_version=0)
                suggestions.record_decisions(session, who, {i: status for i in ids})

            try:
                run_transaction(factory, work)
                outcomes.append("saved")
            except ConflictError:
                outcomes.append("conflict")
            except NoteloopError as exc:  # a database refusal: the test fails with it
                outcomes.append(f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()
    results.put((index, outcomes))


@pytest.mark.parametrize("same_annotator", [True, False], ids=["two-tabs", "two-annotators"])
def test_two_submits_of_one_note_with_opposite_decisions_never_end_in_a_database_error(
    db_url, same_annotator
):
    rows, ids = _note_with_suggestions(db_url)
    every = [i for row in rows for i in ids[row]]
    up = {row: ids[row] for row in rows}
    down = {row: ids[row][::-1] for row in rows}
    who = ("ann", "ann") if same_annotator else ("ann", "bob")
    one, two = _spawn(
        _submit_rounds,
        [(db_url, who[0], "accepted", up, 0), (db_url, who[1], "rejected", down, 1)],
    )
    if same_annotator:  # of each pair one saved; the other was told someone else had
        assert all({a, b} == {"saved", "conflict"} for a, b in zip(one, two, strict=True))
    else:
        assert one == two == ["saved"] * ROUNDS
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        decided = {name: suggestions.decided(session, name, every) for name in who}
    engine.dispose()
    for name, decisions in decided.items():
        assert set(decisions) == set(every)  # every suggestion decided
        if not same_annotator:  # each annotator's decisions are theirs alone
            assert set(decisions.values()) == {"accepted" if name == "ann" else "rejected"}
    for row in rows:  # and a note's decisions are one saver's, never a mix
        assert len({decided[who[0]][i] for i in ids[row]}) == 1


# --------------------------------------------------------------------------- retry, errors


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def test_a_unit_of_work_refused_by_a_deadlock_runs_again(make_session):
    calls = []

    def work(session):
        calls.append(session.scalar(text("SELECT 1")))
        if len(calls) == 1:
            raise OperationalError("UPDATE ...", {}, _Driver("deadlock detected", "40P01"))
        return "done"

    assert run_transaction(make_session, work) == "done" and len(calls) == 2


def test_a_refusal_that_persists_says_nothing_was_saved_and_what_to_do(make_session):
    def locked(session):
        raise OperationalError("INSERT ...", {}, _Driver("database is locked"))

    with pytest.raises(DatabaseRefusedError, match="database is locked; nothing was saved"):
        run_transaction(make_session, locked, attempts=2)

    def bad_value(session):
        session.add(models.Project(name="n" * 300, label_schema={}, settings={}))
        session.flush()

    if make_session.kw["bind"].dialect.name == "postgresql":
        with pytest.raises(DatabaseRefusedError, match=r"nothing was saved\. Try again; if it"):
            run_transaction(make_session, bad_value)
    assert not is_retryable(ValueError("x"))


def test_a_command_reports_an_unreachable_database_as_one_line():
    url = "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none"
    result = CliRunner().invoke(cli.app, ["stats", "-p", "p", "--db", url])
    said = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 1
    assert said.startswith("error: the database could not be reached:")
    assert "nothing was saved. Check that the database server is running" in said
    assert "Traceback" not in said


def test_a_pooled_engine_works_after_the_server_dropped_its_connections(db_backend, db_url):
    if db_backend != "postgresql":
        pytest.skip("a SQLite file has no server to drop connections")
    engine = init_db(db_url)
    factory = session_factory(engine)
    with factory() as session:
        assert session.scalar(text("SELECT 1")) == 1  # a connection now waits in the pool
    other = make_engine(db_url)
    with other.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    other.dispose()
    with factory() as session:
        assert session.scalar(text("SELECT 1")) == 1
    engine.dispose()


def test_the_app_shows_an_unreachable_database_as_what_to_do(monkeypatch):
    from app_helpers import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NOTELOOP_DB", "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "could not be reached" in shown and "nothing was saved" in shown
