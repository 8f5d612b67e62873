"""The app renders every page over a seeded demo database, without exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "noteloop" / "app.py")


@pytest.fixture
def demo_db(demo_db_url, monkeypatch) -> str:
    monkeypatch.setenv("NOTELOOP_DB", demo_db_url)
    return demo_db_url


def test_overview_shows_the_demo_project(demo_db):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Project demo"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["submitted"] == "25"


def test_documents_page_shows_note_text_and_gold(demo_db):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(str(ROOT / "noteloop" / "pages" / "documents.py")).run()
    assert not at.exception
    assert at.selectbox(key="document").value  # the first document is selected
    at.selectbox(key="document").select("dc_005").run()
    assert not at.exception
    assert len(at.text[0].value.split()) > 2000  # the whole long note, as plain text
    assert "unannotated" not in at.selectbox(key="document").format_func("cons_001")


def test_empty_database_says_how_to_start(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTELOOP_DB", f"sqlite:///{tmp_path / 'empty.db'}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "noteloop project create" in at.info[0].value
