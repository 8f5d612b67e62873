"""Retired documents: out of the queue, training, metrics and export; kept, audited and
restorable, from the writer, the command line and the Documents page."""

from __future__ import annotations

import json

import pytest
from app_helpers import page_as
from sqlalchemy import select
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.core.errors import NoteloopError, NotFoundError
from noteloop.core.schema import Document, EntityType, LabelSchema, Role, Span, Split
from noteloop.db import (
    accounts,
    adjudication,
    dashboard,
    documents,
    gold,
    jobs,
    learning,
    models,
    projects,
)
from noteloop.db.engine import make_engine, session_factory
from noteloop.db.errors import StoreError
from noteloop.usecases import modeling
from noteloop.usecases.import_export import ExportOptions, export_project

pytestmark = pytest.mark.both_databases

TEXT = {
    "d1": "Aspirin for chest pain.",
    "d2": "Metformin for diabetes.",
    "d3": "Lisinopril for hypertension today.",
    "t1": "Warfarin for atrial fibrillation.",
    "t2": "Insulin for high sugar.",
}


def submit_gold(make_session, doc: str, who: str, seconds: float = 60.0) -> None:
    """``who`` submits the note's first word as a Drug."""
    with make_session.begin() as session:
        project = projects.get_project(session, "p")
        row = documents.document_ids(session, project, include_retired=True)[doc]
        end = TEXT[doc].index(" ")
        gold.save_annotation(
            session, row, who, [Span("T1", "Drug", 0, end)], [],
            expected_version=0, seconds_spent=seconds,
        )  # fmt: skip


@pytest.fixture
def project(make_session) -> str:
    """Project "p": pool notes d1 d2 d3, test notes t1 t2; gold on d1 (ann and bob), d2,
    t1 and t2; d3 unannotated."""
    with make_session.begin() as session:
        p = projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
        pool = [Document(i, TEXT[i]) for i in ("d1", "d2", "d3")]
        documents.add_documents(session, p, pool)
        tests = [Document(i, TEXT[i]) for i in ("t1", "t2")]
        documents.add_documents(session, p, tests, Split.TEST)
        accounts.create_user(session, "lea", Role.LEAD, "", [], by="test")
    for doc in ("d1", "d2", "t1", "t2"):
        submit_gold(make_session, doc, "ann")
    submit_gold(make_session, "d1", "bob", seconds=30.0)
    return "p"


def retire(make_session, ids, reason="imported by mistake") -> list[str]:
    with make_session.begin() as session:
        return documents.retire(session, "p", ids, "lea", reason)


def restore(make_session, ids) -> list[str]:
    with make_session.begin() as session:
        return documents.restore(session, "p", ids, "lea", "needed after all")


def ids(docs) -> list[str]:
    return [d.id for d in docs]


def audit_rows(session) -> list[models.AuditLog]:
    query = select(models.AuditLog).where(models.AuditLog.entity == "documents")
    return list(session.scalars(query.order_by(models.AuditLog.id)))


# --------------------------------------------------------------------------- the writer


def test_retire_and_restore_write_one_audit_row_per_document(make_session, project):
    assert retire(make_session, ["d1", "t1", "d1"]) == ["d1", "t1"]  # once each
    with make_session() as session:
        rows = audit_rows(session)
        assert [(r.action, r.user) for r in rows] == [("retire_document", "lea")] * 2
        assert rows[0].before["retired_at"] is None
        assert rows[0].after["reason"] == "imported by mistake"
        assert rows[0].after["retired_by"] == "lea" and rows[0].after["external_id"] == "d1"
        stored = session.scalar(select(models.Document).where(models.Document.external_id == "d1"))
        assert stored.retired_by == "lea" and stored.retired_at is not None
    assert restore(make_session, ["t1"]) == ["t1"]
    with make_session() as session:
        last = audit_rows(session)[-1]
        assert (last.action, last.after["reason"], last.after["retired_at"]) == (
            "restore_document", "needed after all", None,
        )  # fmt: skip
        assert last.before["retired_by"] == "lea"
        live = documents.document_rows(session, "p", retired=False)
        assert [r.id for r in live] == ["d2", "d3", "t1", "t2"]


def test_naming_a_document_in_its_state_already_changes_nothing(make_session, project):
    retire(make_session, ["d1"])
    assert retire(make_session, ["d1"]) == []
    assert restore(make_session, ["d2"]) == []
    with make_session() as session:
        assert [r.action for r in audit_rows(session)] == ["retire_document"]


def test_an_unknown_id_refuses_the_whole_command_by_name(make_session, project):
    with pytest.raises(NotFoundError, match=r"^project p has no documents nope, gone: nothing"):
        retire(make_session, ["d2", "nope", "gone"])
    retire(make_session, ["d2"])
    with pytest.raises(NotFoundError, match=r"^project p has no document nope: nothing was res"):
        restore(make_session, ["d2", "nope"])
    with pytest.raises(StoreError, match=r"^name at least one document to retire$"):
        retire(make_session, [])
    with pytest.raises(NotFoundError, match="no project named 'q'"), make_session() as session:
        documents.retire(session, "q", ["d1"], "lea", "")
    with make_session() as session:
        assert [r.id for r in documents.document_rows(session, "p", retired=True)] == ["d2"]
        assert [r.action for r in audit_rows(session)] == ["retire_document"]


def test_document_rows_list_split_words_gold_and_status(make_session, project):
    retire(make_session, ["t1"])
    with make_session() as session:
        every = documents.document_rows(session, "p")
        retired = documents.document_rows(session, "p", retired=True)
        tests = documents.document_rows(session, "p", split=Split.TEST)
    assert [(r.id, r.split, r.words, r.gold, r.status) for r in every] == [
        ("d1", "pool", 4, True, "live"),
        ("d2", "pool", 3, True, "live"),
        ("d3", "pool", 4, False, "live"),
        ("t1", "test", 4, True, "retired"),
        ("t2", "test", 4, True, "live"),
    ]
    assert [r.id for r in retired] == ["t1"] and [r.id for r in tests] == ["t1", "t2"]


# --------------------------------------------------------------------------- the readers


def test_a_retired_document_leaves_documents_gold_training_and_stats(make_session, project):
    retire(make_session, ["d1", "t1"])
    with make_session() as session:
        p = projects.get_project(session, "p")
        assert ids(documents.documents(session, p)) == ["d2", "d3", "t2"]
        assert list(documents.document_ids(session, p, Split.POOL)) == ["d2", "d3"]
        assert ids(documents.documents(session, p, include_retired=True)) == [*TEXT]
        assert ids(gold.gold_documents(session, p)) == ["d2", "t2"]
        assert ids(gold.gold_documents(session, p, annotator="bob")) == []
        everything = gold.gold_documents(session, p, include_retired=True)
        assert ids(everything) == ["d1", "d2", "t1", "t2"]  # the gold is kept
        data = modeling.training_data(session, "p")
        assert (ids(data.train), ids(data.test)) == (["d2"], ["t2"])
        stats = projects.project_stats(session, p)
        assert stats["documents"] == {"pool": 2, "test": 1}
        assert (stats["annotated"], stats["submitted"]) == (2, 2)
        assert stats["annotators"] == {"ann": 2} and stats["spans_by_label"] == {"Drug": 2}
        assert stats["hours"] == round(120 / 3600, 2) == data.annotator_hours
        assert jobs.trigger_state(session, p).gold_in_pool == 1
        assert learning.annotation_timings(session, p) == [(3, 60.0), (4, 60.0)]


def test_restore_brings_everything_back(make_session, project):
    retire(make_session, ["d1", "t1"])
    restore(make_session, ["d1", "t1"])
    with make_session() as session:
        p = projects.get_project(session, "p")
        data = modeling.training_data(session, "p")
        assert (ids(data.train), ids(data.test)) == (["d1", "d2"], ["t1", "t2"])
        assert projects.project_stats(session, p)["documents"] == {"pool": 3, "test": 2}
        assert [n.external_id for n in adjudication.shared_notes(session, p)] == ["d1"]
        assert jobs.trigger_state(session, p).gold_in_pool == 2


def test_the_queue_skips_a_retired_note_and_keeps_its_place_for_a_restore(make_session, project):
    with make_session.begin() as session:
        p = projects.get_project(session, "p")
        rows = documents.document_ids(session, p)
        entries = [(rows[i], 1.0 / n, {}) for n, i in enumerate(("d3", "d1", "d2"), start=1)]
        learning.replace_queue(session, p, entries, strategy="s", model_version_id=None)
    retire(make_session, ["d3"])
    names = {row: ext for ext, row in rows.items()}
    with make_session.begin() as session:
        p = projects.get_project(session, "p")
        assert [names[e.document_id] for e in learning.queue(session, p)] == ["d1", "d2"]
        assert modeling.unannotated_pool(session, "p") == []
        # A ranking made before the retire does not bring the note back.
        assert learning.replace_queue(session, p, entries, strategy="s", model_version_id=None)
        assert [names[e.document_id] for e in learning.queue(session, p)] == ["d1", "d2"]
    with make_session.begin() as session:
        learning.replace_queue(
            session,
            projects.get_project(session, "p"),
            entries,
            strategy="s",
            model_version_id=None,
        )
    restore(make_session, ["d3"])
    with make_session() as session:
        p = projects.get_project(session, "p")
        queue = [names[e.document_id] for e in learning.queue(session, p)]
        assert queue == ["d1", "d2"]  # ranked while retired: unranked until the next ranking
        assert [d.id for _, d in modeling.unannotated_pool(session, "p")] == ["d3"]


def test_the_dashboard_counts_and_agreement_leave_a_retired_note_out(make_session, project):
    with make_session() as session:
        p = projects.get_project(session, "p")
        assert [n.external_id for n in adjudication.shared_notes(session, p)] == ["d1"]
        assert len(dashboard.dashboard(session, p).agreement) == 1
    retire(make_session, ["d1", "t1"])
    with make_session() as session:
        p = projects.get_project(session, "p")
        board = dashboard.dashboard(session, p)
        assert board.gold_test == 1 and board.shared == [] and board.agreement == []
        assert [(t.annotator, t.submitted, t.words) for t in board.people] == [("ann", 2, 7)]
        assert board.hours == pytest.approx(120 / 3600)
        row = documents.document_ids(session, p, include_retired=True)["d1"]
        with pytest.raises(StoreError, match=r"^note d1 is retired: restore it to adjudicate it$"):
            adjudication.note_versions(session, p, row, "lea")


def test_the_export_leaves_a_retired_document_out(make_session, project, tmp_path):
    retire(make_session, ["d1"])
    with make_session() as session:
        summary = export_project(session, "p", tmp_path / "out", ExportOptions("jsonl"))
    lines = (tmp_path / "out" / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["d2", "t1", "t2"], summary
    retire(make_session, ["d2", "t1", "t2"])
    with make_session() as session, pytest.raises(NoteloopError, match="no submitted gold"):
        export_project(session, "p", tmp_path / "none", ExportOptions("jsonl"))


# --------------------------------------------------------------------------- the command line

runner = CliRunner()


def cli(db_url: str, *args: str):
    return runner.invoke(app, [*args, "--db", db_url], catch_exceptions=False)


def test_cli_lists_retires_and_restores(db_url, make_session, project):
    listed = cli(db_url, "documents", "list", "--project", "p")
    assert listed.exit_code == 0, listed.output
    assert "5 document(s) of p" in listed.output and "retired" not in listed.output
    done = cli(db_url, "documents", "retire", "d1", "t1", "-p", "p", "--reason", "wrong file")
    assert done.exit_code == 0, done.output
    assert "retired 2 document(s) of p: d1, t1" in done.output
    with make_session() as session:
        assert audit_rows(session)[0].user == "cli"
        assert audit_rows(session)[0].after["reason"] == "wrong file"
    again = cli(db_url, "documents", "retire", "d1", "-p", "p")
    assert "retired 0 document(s)" in again.output and "retired already" in again.output
    only = cli(db_url, "documents", "list", "-p", "p", "--retired")
    assert "2 retired document(s) of p" in only.output and "d2" not in only.output
    assert "by cli" in only.output
    back = cli(db_url, "documents", "restore", "t1", "-p", "p")
    assert back.exit_code == 0 and "restored 1 document(s) of p: t1" in back.output
    with make_session() as session:
        assert [r.id for r in documents.document_rows(session, "p", retired=True)] == ["d1"]


def test_cli_refuses_an_unknown_id_in_one_line_and_changes_nothing(db_url, make_session, project):
    refused = cli(db_url, "documents", "retire", "d2", "nope", "-p", "p")
    assert refused.exit_code == 1
    assert refused.output.strip() == "error: project p has no document nope: nothing was retired"
    missing = cli(db_url, "documents", "restore", "d2", "-p", "q")
    assert missing.exit_code == 1 and "no project named 'q'" in missing.output
    assert "Traceback" not in refused.output + missing.output
    with make_session() as session:
        assert documents.document_rows(session, "p", retired=True) == []


# --------------------------------------------------------------------------- the page


@pytest.fixture
def demo_sessions(demo_db):
    engine = make_engine(demo_db)
    yield session_factory(engine)
    engine.dispose()


def test_documents_page_retires_filters_and_restores(demo_db, demo_sessions):
    with demo_sessions() as session:
        pool = documents.document_rows(session, "demo", split=Split.POOL)
        first, second = pool[0].id, pool[1].id
    at = page_as("lead", "documents.py")
    assert not at.exception and len(at.text[0].value) > 100
    retire_box = next(m for m in at.multiselect if m.label == "Documents to retire")
    retire_box.set_value([first, second])
    next(t for t in at.text_input if t.label.startswith("Reason")).input("wrong file")
    at = next(b for b in at.button if b.label == "Retire").click().run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Retired 2 documents: {first}, {second}.")
    assert first not in at.selectbox(key="document").options
    with demo_sessions() as session:
        retired = documents.document_rows(session, "demo", retired=True)
        assert [(r.id, r.retired_by) for r in retired] == [(first, "lea"), (second, "lea")]
        assert audit_rows(session)[-1].after["reason"] == "wrong file"

    at = next(s for s in at.segmented_control if s.label == "Show").set_value("retired").run()
    shown = at.selectbox(key="document")
    assert shown.value == first and len(shown.options) == 2
    assert all(option.endswith(", retired)") for option in shown.options)
    assert at.warning[0].value.startswith("Retired ") and "by lea" in at.warning[0].value
    restore_box = next(m for m in at.multiselect if m.label == "Documents to restore")
    restore_box.set_value([first])
    at = next(b for b in at.button if b.label == "Restore").click().run()
    assert not at.exception and at.success[0].value == f"Restored 1 document: {first}."
    with demo_sessions() as session:
        assert [r.id for r in documents.document_rows(session, "demo", retired=True)] == [second]


def test_documents_page_says_why_nothing_was_retired(demo_db):
    at = page_as("lead", "documents.py")
    at = next(b for b in at.button if b.label == "Retire").click().run()
    assert not at.exception
    assert at.error[0].value == "Nothing retired: name at least one document to retire"
