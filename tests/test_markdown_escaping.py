"""User strings (document ids, project and user names) are shown as typed, never as
Markdown: an id like ``[log in again](https://...)`` must not become a link."""

from __future__ import annotations

import pytest
from app_helpers import PAGES, app_as
from markdown_it import MarkdownIt

from noteloop.core.schema import Document, EntityType, LabelSchema, Role
from noteloop.db import accounts, documents, projects
from noteloop.db.engine import init_db, session_factory
from noteloop.screen.forms import md

LINK = "[log in again](https://e.com/x_y)"
PASSWORD = "staple-battery-1"



def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def test_md_escapes_what_means_something_in_the_middle_of_a_line() -> None:
    for text in (LINK, "**bold** _it_ `code`", "<https://e.com>", "<b>x</b> &amp;", "$x$"):
        html = rendered(f"Note {md(text)}")
        assert "<a " not in html and "<strong>" not in html and "<em>" not in html
        assert "<code>" not in html and "<b>" not in html and "&amp;amp;" in rendered(md("&amp;"))
    assert rendered(md(LINK)) == f"<p>{LINK}</p>\n"
    assert md(":red[x] :material/lock: https://e.com") == (
        r"\:red\[x\] \:material/lock: https\://e.com"
    )
    assert md("type: d (s) #3 - x.") == "type: d (s) #3 - x."  # punctuation stays plain


@pytest.fixture
def linked_db(tmp_path, monkeypatch) -> str:
    """A project named like a link, holding one note whose id is a link."""
    url = f"sqlite:///{tmp_path / 'linked.db'}"
    engine = init_db(url)
    with session_factory(engine).begin() as session:
        project = projects.create_project(session, LINK, LabelSchema((EntityType("Problem"),)))
        documents.add_documents(session, project, [Document(LINK, "Chest pain for 2 days.")])
        accounts.create_user(session, "ann", Role.ANNOTATOR, PASSWORD, [LINK], by="test")
        accounts.create_user(session, "lea", Role.LEAD, PASSWORD, [], by="test")
    engine.dispose()
    monkeypatch.setenv("NOTELOOP_DB", url)
    return url


def test_a_document_id_and_a_project_name_do_not_become_links(linked_db) -> None:
    at = app_as("ann")
    next(b for b in at.button if b.label == "Get the next note").click().run()
    assert not at.exception
    [caption] = [c.value for c in at.caption if c.value.startswith("Note **")]
    assert "<a " not in rendered(caption) and LINK in rendered(caption)
    lead = app_as("lea", "lead")
    lead.switch_page(str(PAGES / "overview.py")).run()
    assert not lead.exception
    title = lead.title[0].value
    assert "<a " not in rendered(title) and f"Project {LINK}" in rendered(title)
