"""The app over a seeded demo database: login, roles, and every page renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from noteloop.core.schema import Role
from noteloop.db import repo
from noteloop.db.engine import make_engine, session_factory

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "noteloop" / "app.py")
PAGES = ROOT / "noteloop" / "pages"


@pytest.fixture
def demo_db(demo_db_url, monkeypatch) -> str:
    monkeypatch.setenv("NOTELOOP_DB", demo_db_url)
    with session_factory(make_engine(demo_db_url)).begin() as session:
        demo = repo.get_project(session, "demo")
        for name, role in (("ann", Role.ANNOTATOR), ("lea", Role.LEAD)):
            repo.add_member(session, repo.add_user(session, name, role, f"{name}-pw"), demo)
    return demo_db_url


def app_as(name: str | None, role: str = "annotator") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if name:
        at.session_state["user"] = {"name": name, "role": role}
    return at.run()


def test_login_refuses_a_wrong_password_and_accepts_the_right_one(demo_db):
    at = app_as(None)
    at.text_input[0].input("ann")
    at.text_input[1].input("wrong")
    at.button[0].click().run()
    assert at.error[0].value == "Wrong user name or password."
    assert "user" not in at.session_state
    at.text_input[1].input("ann-pw")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["user"] == {"name": "ann", "role": "annotator"}


def test_annotator_gets_the_next_note_and_claims_it(demo_db):
    at = app_as("ann")
    assert not at.exception
    note = at.session_state["open_note"]
    assert note.view.version == 1  # claimed: an in-progress annotation now exists
    again = app_as("ann")  # a new browser session: the same note comes back
    assert again.session_state["open_note"].document_row == note.document_row


def test_annotator_cannot_reach_lead_pages(demo_db):
    at = app_as("ann")
    # Pages outside the role are never registered with st.navigation: no URL reaches them.
    with pytest.raises(ValueError, match=r"Known pages: \[.*annotate.py', .*queue.py'\]"):
        at.switch_page(str(PAGES / "overview.py"))


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
        repo.add_user(session, "root", Role.ADMIN, "pw")
    monkeypatch.setenv("NOTELOOP_DB", url)
    at = app_as("root", "admin")
    assert not at.exception
    assert "noteloop project create" in at.info[0].value
