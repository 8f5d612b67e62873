"""The app over a seeded demo database: login, roles, and every page renders."""

from __future__ import annotations

import pytest
from app_helpers import PAGES, USERS, app_as

from noteloop.core.schema import Role
from noteloop.db import accounts, claims, projects
from noteloop.db.engine import make_engine, session_factory


def test_login_refuses_a_wrong_password_and_accepts_the_right_one(demo_db):
    at = app_as(None)
    at.text_input[0].input("ann")
    at.text_input[1].input("wrong")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong user name or password."
    assert "user" not in at.session_state
    at.text_input[1].input(USERS["annotator"][1])
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["user"] == {"name": "ann", "role": "annotator"}


def test_opening_the_app_claims_nothing_and_asking_claims_one_note(demo_db):
    at = app_as("ann")
    assert not at.exception and "open_note" not in at.session_state
    next(b for b in at.button if b.label == "Get the next note").click().run()
    note = at.session_state["open_note"]
    assert note.view.version == 0 and note.purpose == "annotate"
    again = app_as("ann")  # a new browser session: the held note comes back, nothing new
    assert again.session_state["open_note"].document_row == note.document_row
    with session_factory(make_engine(demo_db)).begin() as session:
        held = claims.claim_rows(session, projects.get_project(session, "demo"))
    assert [(c.annotator, c.document_id) for c in held] == [("ann", note.document_row)]


def test_a_leads_login_lands_on_the_dashboard_and_claims_nothing(demo_db):
    at = app_as("lea", "lead")
    assert not at.exception and "open_note" not in at.session_state
    with session_factory(make_engine(demo_db)).begin() as session:
        assert claims.claim_rows(session, projects.get_project(session, "demo")) == []


def test_annotator_cannot_reach_lead_pages(demo_db):
    at = app_as("ann")
    # Pages outside the role are never registered with st.navigation: no URL reaches them.
    with pytest.raises(ValueError, match=r"Known pages: \[.*annotate.py', .*queue.py'\]"):
        at.switch_page(str(PAGES / "overview.py"))


def test_no_page_runs_without_app_py(demo_db):
    """A rerun keeps to the pages app.py registered for the role: no page script is run
    on its own (the pages live in views/, so Streamlit has no pages/ folder to guess a
    folder-based app from), and a lead page stays out of an annotator's reach."""
    at = app_as("ann").run()
    with pytest.raises(ValueError, match=r"Known pages: \[.*annotate.py', .*queue.py'\]"):
        at.switch_page(str(PAGES / "model.py"))
    at = app_as("lea", "lead").run()
    with pytest.raises(ValueError, match="Known pages"):
        at.switch_page(str(PAGES / "users.py"))


@pytest.mark.parametrize("page", ["queue.py", "overview.py", "documents.py"])
def test_lead_pages_render(demo_db, page):
    at = app_as("lea", "lead")
    at.switch_page(str(PAGES / page)).run()
    assert not at.exception


def test_overview_and_documents_show_the_demo(demo_db):
    at = app_as("lea", "lead")
    at.switch_page(str(PAGES / "overview.py")).run()
    assert at.title[0].value == "Project demo"
    assert {m.label: m.value for m in at.metric}["submitted"] == "25"
    at.switch_page(str(PAGES / "documents.py")).run()
    at.selectbox(key="document").select("dc_005").run()
    assert not at.exception
    assert len(at.text[0].value.split()) > 2000  # the whole long note, as plain text


def test_a_user_without_projects_is_told_how_to_start(tmp_path, monkeypatch):
    from noteloop.db.engine import init_db

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with session_factory(init_db(url)).begin() as session:
        accounts.create_user(session, "root", Role.ADMIN, "", [], by="test")
    monkeypatch.setenv("NOTELOOP_DB", url)
    at = app_as("root", "admin")
    assert not at.exception
    assert "noteloop project create" in at.info[0].value
