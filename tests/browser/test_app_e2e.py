"""The whole app in a real headless Chromium, served by ``streamlit run noteloop/app.py``
on a seeded demo database: log in, annotate a note with keyboard and mouse, submit, and
find exactly that in the database. Also: a wrong password, a lead's page by URL, a note
made of HTML, and screenshots for people (under artifacts/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import INJECT_ID, SeededApp, serve_seeded
from sqlalchemy import select
from widget_driver import box, click_phrase, drag_over, expect_selected

from noteloop.annotation import next_document
from noteloop.core.schema import AnnotationStatus, LabelSchema, Span
from noteloop.db import models, repo
from noteloop.db.engine import make_engine, session_factory

pytestmark = pytest.mark.browser
WIDGET = "#nl-ann[data-ready='1']"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededApp]:
    with serve_seeded(tmp_path_factory.mktemp("app")) as served:
        yield served


@pytest.fixture
def sessions(app: SeededApp) -> Iterator[Any]:
    engine = make_engine(app.db_url)
    yield session_factory(engine)
    engine.dispose()


def log_in(page: Any, url: str, name: str, password: str, path: str = "") -> None:
    page.goto(f"{url}/{path}")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_lead_url_on_a_fresh_server_asks_for_a_login(page, app):
    # The first request a server gets may run a pages/ script without app.py; the page
    # itself refuses. Later requests run app.py, which shows the login form there.
    page.goto(f"{app.url}/model")
    page.get_by_label("User name").wait_for()
    assert page.get_by_role("button", name="Train now").count() == 0


def test_a_lead_logs_in_at_a_lead_url_and_gets_that_page(page, app):
    log_in(page, app.url, "lea", "lea-pw", path="model")
    page.get_by_role("button", name="Train now").wait_for()
    page.get_by_text("Suggestions come from").wait_for()  # the fake model the seed trained


def test_a_wrong_password_is_refused(page, app):
    log_in(page, app.url, "ann", "not-the-password")
    page.get_by_text("Wrong user name or password.").wait_for()
    assert page.locator(WIDGET).count() == 0
    assert page.get_by_role("button", name="Log in").is_visible()


def test_an_annotator_cannot_reach_a_lead_page_by_url(page, app):
    log_in(page, app.url, "ann", "ann-pw", path="model")  # the URL typed in
    page.locator(WIDGET).wait_for()  # Annotate, the default page, instead
    assert not page.url.endswith("/model")
    assert page.get_by_role("button", name="Train now").count() == 0
    assert page.get_by_text("Training jobs").count() == 0
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Annotate" in nav and "Model" not in nav and "Users" not in nav


def plan(sessions: Any) -> dict[str, Any]:
    """What the test will do on ann's next note, worked out from the database: the first
    open suggestion in text order (→ then Enter accepts it), a free word near the top for a
    new span, and a label for it that a relation type links with the suggestion's."""
    with sessions() as session:
        project = repo.get_project(session, "demo")
        row = next_document(session, project, "ann")
        text = repo.get_document(session, row).text
        suggested = sorted(
            (s.item for s in repo.suggestions_for(session, row, open_only=True)),
            key=lambda s: (s.start, s.end),
        )
        schema = repo.project_schema(project)
    first = next(s for s in suggested if isinstance(s, Span))
    taken = [(s.start, s.end) for s in suggested if isinstance(s, Span)]
    word = next(
        m for m in re.finditer(r"[A-Za-z]{5,}", text[:600])
        if all(m.end() <= a or m.start() >= b for a, b in taken) and m.start() != first.start
    )  # fmt: skip
    label, relation, manual_is_head = link(schema, first.label)
    return {
        "row": row,
        "text": text,
        "first": first,
        "word": word.group(),
        "word_at": (word.start(), word.end()),
        "word_nth": text[: word.start()].count(word.group()),
        "hotkey": schema.entity(label).hotkey,
        "label": label,
        "relation": relation,
        "manual_is_head": manual_is_head,
    }


def link(schema: LabelSchema, other: str) -> tuple[str, str, bool]:
    """An entity type with a hotkey and the first relation type (the widget's picker order)
    between it and ``other``: (label, relation type, whether the new span is the head)."""
    for head_first in (True, False):
        for entity in schema.entity_types:
            pair = (entity.name, other) if head_first else (other, entity.name)
            types = [r.name for r in schema.relation_types if r.allows(*pair)]
            if types and entity.hotkey:
                return entity.name, types[0], head_first
    raise AssertionError(f"no relation type links {other} with any entity type")


def test_annotate_a_note_and_find_it_in_the_database(page, app, sessions, artifacts: Path):
    todo = plan(sessions)
    first: Span = todo["first"]
    log_in(page, app.url, "ann", "ann-pw")
    root = page.locator(WIDGET)
    root.wait_for()
    mounted_at = root.get_attribute("data-mounted-at")
    page.wait_for_timeout(300)

    # Accept a suggestion with the keyboard: → selects the first in text order, Enter.
    click_phrase(page, todo["word"], todo["word_nth"])  # focus, on plain text
    page.keyboard.press("ArrowRight")
    expect_selected(page, sid=first.suggestion_id)
    page.keyboard.press("Enter")
    box(page, sid=first.suggestion_id, state="gold").first.wait_for()

    # A new span: select a word with the mouse, label it by its hotkey.
    drag_over(page, todo["word"], todo["word_nth"])
    page.locator("#nl-ann-picker:not([hidden])").wait_for()
    page.keyboard.press(todo["hotkey"])
    box(page, label=todo["label"], state="gold").first.wait_for()

    # A relation: select one end, Shift+click the other (the picker, if it opens: 1).
    first_text = todo["text"][first.start : first.end]
    first_nth = todo["text"][: first.start].count(first_text)
    ends = [(todo["word"], todo["word_nth"]), (first_text, first_nth)]
    head, tail = ends if todo["manual_is_head"] else ends[::-1]
    click_phrase(page, *head)
    click_phrase(page, *tail, modifier="Shift")
    page.wait_for_function(
        """() => [...document.querySelectorAll('*')].some((e) => e.shadowRoot && (
            e.shadowRoot.querySelector('#nl-ann-picker button[data-relation]')
            || e.shadowRoot.querySelector('#nl-ann-arcs g.nl-arc.nl-sel')))"""
    )
    if page.locator("#nl-ann-picker button[data-relation]").count():
        page.keyboard.press("1")  # the first type: the one plan() expects
    page.locator("#nl-ann-arcs g.nl-arc.nl-sel").wait_for()
    page.wait_for_timeout(1500)  # let the timer count a little, as a person's would
    page.screenshot(path=str(artifacts / "app_annotate.png"), full_page=False)

    page.locator("#nl-ann-submit").click()
    page.wait_for_function(
        """(at) => [...document.querySelectorAll('*')].some((e) => e.shadowRoot
            && e.shadowRoot.querySelector("#nl-ann[data-ready='1']")?.dataset.mountedAt !== at)""",
        arg=mounted_at,
    )  # the next note is shown
    assert_saved(sessions, todo)


def assert_saved(sessions: Any, todo: dict[str, Any]) -> None:
    first: Span = todo["first"]
    with sessions() as session:
        ann = session.scalars(
            select(models.Annotation).where(
                models.Annotation.document_id == todo["row"], models.Annotation.annotator == "ann"
            )
        ).one()
        spans = {
            (s.label, s.start, s.end): s
            for s in session.scalars(select(models.Span).where(models.Span.annotation_id == ann.id))
        }
        relations = list(
            session.scalars(select(models.Relation).where(models.Relation.annotation_id == ann.id))
        )
        accepted = session.get(models.Suggestion, first.suggestion_id)
        assert (ann.status, ann.version) == ("submitted", 2)
        assert ann.seconds_spent > 1.0
        got = spans[(first.label, first.start, first.end)]
        assert (got.source, got.suggestion_id) == ("accepted", first.suggestion_id)
        manual = spans[(todo["label"], *todo["word_at"])]
        assert (manual.source, manual.suggestion_id) == ("manual", None)
        assert len(spans) == 2
        head, tail = (manual, got) if todo["manual_is_head"] else (got, manual)
        assert [(r.label, r.head_id, r.tail_id) for r in relations] == [
            (todo["relation"], head.id, tail.id)
        ]
        assert accepted.status == "accepted"


def test_a_stale_submit_is_refused_and_keeps_both_versions(page, app, sessions):
    with sessions() as session:
        row = next_document(session, repo.get_project(session, "demo"), "ann")
    log_in(page, app.url, "ann", "ann-pw")
    page.locator(WIDGET).wait_for()
    with sessions.begin() as session:  # a lead corrects ann's draft meanwhile
        repo.save_annotation(
            session, row, "ann", [Span("T9", "Problem", 0, 3)], [], expected_version=1,
            saved_by="lea", status=AnnotationStatus.IN_PROGRESS,
        )  # fmt: skip
    page.locator("#nl-ann-submit").click()
    page.get_by_text(re.compile("Not saved: .* lea saved ann's annotation")).wait_for()
    page.get_by_role("button", name="Download your version (JSON)").wait_for()
    with sessions() as session:
        assert [s.id for s in repo.load_annotation(session, row, "ann").document.spans] == ["T9"]
    page.get_by_role("button", name="Open the saved version").click()
    page.get_by_text(re.compile(r"version 2$")).wait_for()  # the lead's version, to go on from
    page.get_by_text("Not saved").wait_for(state="detached")  # gone once the rerun ends


def test_a_note_made_of_html_renders_inert(page, app):
    log_in(page, app.url, "eve", "eve-pw")
    page.locator(WIDGET).wait_for()
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__nlInjected") is None
    text = page.locator("#nl-ann-text").inner_text()
    assert "<script>window.__nlInjected = 1</script>" in text
    assert '<img src=x onerror="window.__nlInjected = 2">' in text
    assert page.locator("#nl-ann img, #nl-ann script, #nl-ann-text b").count() == 0
    # The note's id (HTML too) is shown by the page around the widget: as characters.
    page.get_by_text(INJECT_ID, exact=False).first.wait_for()
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#nl-ann-labels .nl-chip").first.inner_text().startswith("<b>Bold</b>")
    assert page.evaluate("() => window.__nlInjected") is None


def test_screenshot_of_the_dashboard(page, app, artifacts: Path):
    from noteloop.access import PAGES_DIR

    if not (PAGES_DIR / "dashboard.py").exists():
        pytest.skip("no dashboard page yet")
    log_in(page, app.url, "lea", "lea-pw")
    page.locator(WIDGET).wait_for()
    page.get_by_role("link", name="Dashboard", exact=True).click()
    page.wait_for_url(re.compile("/dashboard"))
    page.wait_for_timeout(4000)  # charts draw after the page's data arrives
    assert page.locator("[data-testid='stException']").count() == 0
    path = artifacts / "app_dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
