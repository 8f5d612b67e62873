"""The pages of the gold lifecycle, through Streamlit's AppTest over the seeded demo:
annotate (ask, skip, release, discard, reopen), the queue's statuses and the lead's
claims, a note's history (reopen for someone, restore), and the admin's open logins."""

from __future__ import annotations

from typing import Any

import pytest
from app_helpers import PAGES, app_as, log_in, page_as
from sqlalchemy import select

from noteloop.core.schema import Span
from noteloop.db import claims, documents, drafts, gold, gold_versions, logins, models, projects
from noteloop.db.engine import make_engine, session_factory
from noteloop.screen.annotate_flow import claim_next, open_note, submit


@pytest.fixture
def sessions(demo_db):
    engine = make_engine(demo_db)
    yield session_factory(engine)
    engine.dispose()


def button(at: Any, label: str) -> Any:
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def held(sessions) -> list[tuple[str, int, str]]:
    with sessions() as session:
        rows = claims.claim_rows(session, projects.get_project(session, "demo"))
    return [(c.annotator, c.document_id, c.purpose) for c in rows]


def ask(role: str = "annotator") -> Any:
    at = page_as(role, "annotate.py")
    button(at, "Get the next note").click()
    return at.run()


def test_skip_gives_the_note_back_and_opens_the_next(demo_db, sessions):
    at = ask()
    first = at.session_state["open_note"].document_row
    at.text_input(key=f"skip-reason-{at.session_state['open_note'].key}").input("not English")
    button(at, "Skip: give it to someone else").click()
    at = at.run()
    assert not at.exception
    second = at.session_state["open_note"].document_row
    assert second != first and held(sessions) == [("ann", second, "annotate")]
    with sessions() as session:
        skip = session.scalar(select(models.Skip))
    assert (skip.document_id, skip.annotator, skip.reason) == (first, "ann", "not English")


def test_release_gives_the_note_back_and_waits_to_be_asked(demo_db, sessions):
    at = ask()
    assert held(sessions)
    button(at, "Release this note").click()
    at = at.run()
    assert not at.exception and held(sessions) == []
    assert at.session_state["open_note"] is None
    assert "Get the next note" in {b.label for b in at.button}


def test_discard_starts_the_note_over(demo_db, sessions):
    at = ask()
    note = at.session_state["open_note"]
    with sessions.begin() as session:
        drafts.save_draft(session, note.document_row, "ann", {"spans": []}, base_version=0,
                          model_version_id=None)  # fmt: skip
    button(at, "Discard my changes").click()
    at = at.run()
    assert not at.exception
    assert at.session_state["open_note"].key != note.key  # a fresh widget
    with sessions() as session:
        assert drafts.load_draft(session, note.document_row, "ann") is None


def test_an_annotator_reopens_their_own_submission(demo_db, sessions):
    row = claim_next(sessions, "demo", "ann")
    note = open_note(sessions, "demo", row, "ann")
    confirm = {"empty": True, "reject_open": True}
    state = {"document_id": str(row), "version": 0, "spans": [], "relations": [],
             "decisions": {}, "seconds": 1.0, "confirm": confirm}  # fmt: skip
    submit(sessions, note, "ann", state)
    at = page_as("annotator", "annotate.py")
    button(at, "Reopen").click()
    at = at.run()
    assert not at.exception
    reopened = at.session_state["open_note"]
    assert (reopened.document_row, reopened.purpose, reopened.view.version) == (row, "reopen", 1)
    assert "reopened for changes" in at.main.caption[0].value


def test_the_queue_shows_where_each_note_stands_and_a_lead_reassigns(demo_db, sessions):
    with sessions.begin() as session:
        project = projects.get_project(session, "demo")
        pool = list(documents.document_ids(session, project, split="pool").values())
        from noteloop.db import learning

        learning.replace_queue(session, project, [(r, 1.0, {}) for r in pool], strategy="t",
                               model_version_id=None)  # fmt: skip
    row = claim_next(sessions, "demo", "ann")
    at = page_as("lead", "queue.py")
    assert not at.exception
    table = at.dataframe[0].value.to_dict("records")
    mine = next(r for r in table if r["status"].startswith("held by ann"))
    assert {r["status"] for r in table} >= {"waiting"} and mine
    claims_table = at.dataframe[1].value.to_dict("records")
    assert [(c["annotator"], c["purpose"]) for c in claims_table] == [("ann", "annotate")]
    at.selectbox[1].set_value("lea")
    button(at, "Reassign it").click()
    at = at.run()
    assert not at.exception and held(sessions) == [("lea", row, "annotate")]
    button(at, "Release it").click()
    at = at.run()
    assert held(sessions) == []
    ann_view = page_as("annotator", "queue.py")
    assert len(ann_view.dataframe) == 1  # annotators do not see the claims


def test_a_lead_restores_an_earlier_version_and_reopens_it_for_its_annotator(demo_db, sessions):
    with sessions.begin() as session:
        project = projects.get_project(session, "demo")
        row = documents.document_ids(session, project)["rad_010"]
        for version, spans in enumerate(([Span("T1", "Problem", 0, 4)], [])):
            gold.save_annotation(session, row, "ann", spans, [], expected_version=version)
    at = page_as("lead", "documents.py")
    at.selectbox(key="document").select("rad_010").run()
    assert not at.exception
    history = at.dataframe[-1].value.to_dict("records")
    assert [(h["version"], h["spans"], h["current"]) for h in history] == [
        (2, 0, True), (1, 1, False),
    ]  # fmt: skip
    button(at, "Restore version 1").click()
    at = at.run()
    assert not at.exception
    with sessions() as session:
        assert [v.version for v in gold_versions.history(session, row, "ann")] == [3, 2, 1]
        assert len(gold.load_annotation(session, row, "ann").document.spans) == 1
    assert at.selectbox(key=f"restore-pick-{row}-ann").options == ["2"]  # 1 is current again
    button(at, "Reopen for ann").click()
    at = at.run()
    assert ("ann", row, "reopen") in held(sessions)
    assert "Reopen for ann" not in {b.label for b in at.button}  # open with ann already


def test_an_admin_ends_someone_elses_login(demo_db, sessions):
    other = log_in("ann")
    at = page_as("admin", "users.py")
    assert not at.exception
    table = at.dataframe[-1].value.to_dict("records")
    assert {"ann", "adm"} <= {r["user"] for r in table}
    at = at.multiselect[-1].set_value([other]).run()
    button(at, "End these logins").click()
    at = at.run()
    assert not at.exception
    with sessions.begin() as session:
        assert logins.still_open(session, other, logins.LoginPolicy()) is None
    gone = app_as("ann")  # that browser's next click
    gone.session_state["login_id"] = other
    gone = gone.run()
    assert "Log in" in {b.label for b in gone.button}


def test_a_lead_does_not_land_on_annotate(demo_db):
    at = app_as("lea", "lead")
    assert "Get the next note" not in {b.label for b in at.button}
    with pytest.raises(ValueError):
        at.switch_page(str(PAGES / "no-such-page.py"))
