"""The whole app in a real headless Chromium, served by ``streamlit run noteloop/screen/app.py``
on a seeded demo database: log in, annotate a note with keyboard and mouse, submit, and
find exactly that in the database. Also: a wrong password, a lead's page by URL, a stale
submit, a note made of HTML, and screenshots for people (under artifacts/).

The app and the database connection are the fixtures of ``conftest.py``; each test that
holds a note does it as its own annotator, so no test finds another's claim."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from app_server import (
    INJECT_ID,
    WIDGET,
    accept_first,
    add_annotator,
    draw_span,
    get_next_note,
    log_in,
    plan,
    wait_for_note,
)
from sqlalchemy import select
from widget_driver import answer, click_phrase, question

from noteloop.core.schema import AnnotationStatus, Span
from noteloop.db import gold, models, suggestions
from noteloop.screen import annotate_flow

pytestmark = pytest.mark.browser


def test_a_lead_url_on_a_fresh_server_asks_for_a_login_then_opens(page, cold_app):
    # The module's first test: no other request has reached the server yet, and the first
    # one runs app.py too (no page script runs on its own), so the login leads to the page.
    page.goto(f"{cold_app.url}/model")
    page.get_by_label("User name").wait_for()
    assert page.get_by_role("button", name="Train now").count() == 0
    log_in(page, cold_app.url, "lea", path="model")
    page.get_by_role("button", name="Train now").wait_for()


def test_a_lead_logs_in_at_a_lead_url_and_gets_that_page(page, app):
    log_in(page, app.url, "lea", path="model")
    page.get_by_role("button", name="Train now").wait_for()
    page.get_by_text("Suggestions come from").wait_for()  # the fake model the seed trained


def test_a_wrong_password_is_refused(page, app):
    log_in(page, app.url, "ann", "not-the-password")
    page.get_by_text("Wrong user name or password.").wait_for()
    assert page.locator(WIDGET).count() == 0
    assert page.get_by_role("button", name="Log in").is_visible()


def test_an_annotator_cannot_reach_a_lead_page_by_url(page, app):
    name = add_annotator(app.db_url, "una")
    log_in(page, app.url, name, path="model")  # the URL typed in
    page.get_by_role("button", name="Get the next note").wait_for()  # Annotate instead
    assert not page.url.endswith("/model")
    assert page.get_by_role("button", name="Train now").count() == 0
    assert page.get_by_text("Training jobs").count() == 0
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Annotate" in nav and "Model" not in nav and "Users" not in nav


def test_annotate_a_note_and_find_it_in_the_database(page, app, sessions, artifacts: Path):
    row = annotate_flow.claim_next(sessions, "demo", "ann")  # held: the page opens it
    assert row is not None
    todo = plan(sessions, row, "ann")
    first: Span = todo["first"]
    log_in(page, app.url, "ann")
    mounted = wait_for_note(page)
    page.wait_for_timeout(300)

    accept_first(page, todo)
    draw_span(page, todo)

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
    left_open = todo["n_open"] - 1
    question(page).get_by_text(f"{left_open} suggestions are still open").wait_for()
    answer(page, "yes").click()
    wait_for_note(page, mounted)  # the next note is shown
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
        shown = suggestions.suggestion_row_ids(session, todo["row"]).values()
        decisions = suggestions.decided(session, "ann", list(shown))
        assert (ann.status, ann.version) == ("submitted", 1)  # opening the note wrote nothing
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
        # The accepted one is ann's; every other suggestion shown was rejected at submit.
        assert decisions.pop(first.suggestion_id) == "accepted"
        assert len(decisions) == len(shown) - 1 == todo["n_open"] - 1
        assert set(decisions.values()) == {"rejected"}


def test_a_stale_submit_is_refused_and_keeps_both_versions(page, app, sessions):
    name = add_annotator(app.db_url, "sol")
    row = annotate_flow.claim_next(sessions, "demo", name)
    assert row is not None
    log_in(page, app.url, name)
    wait_for_note(page)
    with sessions.begin() as session:  # a lead corrects the note meanwhile
        gold.save_annotation(
            session, row, name, [Span("T9", "Problem", 0, 3)], [], expected_version=0,
            saved_by="lea", status=AnnotationStatus.IN_PROGRESS,
        )  # fmt: skip
    page.locator("#nl-ann-submit").click()
    answer(page, "yes").click()  # reject the open suggestions...
    question(page).get_by_text("This note has no span.").wait_for()
    answer(page, "yes").click()  # ...and submit it as empty
    page.get_by_text(re.compile(f"Not saved: .* lea saved {name}'s annotation")).wait_for()
    page.get_by_role("button", name="Download your version (JSON)").wait_for()
    with sessions() as session:
        assert [s.id for s in gold.load_annotation(session, row, name).document.spans] == ["T9"]
        shown = list(suggestions.suggestion_row_ids(session, row).values())
        assert shown and suggestions.decided(session, name, shown) == {}  # no decision either
    assert annotate_flow.held_note(sessions, "demo", name) == row  # still theirs
    page.get_by_role("button", name="Open the saved version").click()
    page.get_by_text(re.compile(r"version 1 · ")).wait_for()  # the lead's version, to go on
    page.get_by_text("Not saved").wait_for(state="detached")  # gone once the rerun ends


def test_a_note_made_of_html_renders_inert(page, app):
    log_in(page, app.url, "eve")  # an annotator of the project "inject" only
    get_next_note(page)
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
    log_in(page, app.url, "lea")  # a lead lands on the Dashboard
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.wait_for_timeout(4000)  # charts draw after the page's data arrives
    assert page.locator("[data-testid='stException']").count() == 0
    path = artifacts / "app_dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
