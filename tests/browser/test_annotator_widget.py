"""The annotator widget in a real headless Chromium, mounted by a real Streamlit server.

Every test drives the widget as an annotator would (keys, clicks, mouse drags) and then
checks what reached Python: the test app checks each submitted state with
``check_deliberate``, converts it with ``result_to_annotation`` and appends it to a JSON
file; it keeps the latest emitted state (the draft) in another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from widget_driver import (
    ARC_POINT,
    answer,
    box,
    click_phrase,
    drag_over,
    expect_selected,
    focused_answer,
    picture,
    question,
    set_visibility,
)
from widget_fixtures import CLINIC_TEXT, find
from widget_server import states_file

pytestmark = pytest.mark.browser


def open_widget(page: Any, url: str, fixture: str = "clinic", query: str = "") -> Any:
    page.goto(f"{url}/?fixture={fixture}{query}")
    root = page.locator("#nl-ann[data-ready='1']")
    root.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('*')].some((e) => e.shadowRoot"
        " && e.shadowRoot.querySelector('#nl-ann-arcs g.nl-arc'))"
        if fixture == "clinic"
        else "() => true"
    )
    return root


def span_by_text(result: dict[str, Any], text: str) -> dict[str, Any]:
    matches = [s for s in result["spans"] if s["text"] == text]
    assert len(matches) == 1, (text, result["spans"])
    return matches[0]


def offsets(phrase: str, nth: int = 0) -> tuple[int, int]:
    return find(CLINIC_TEXT, phrase, nth)


def emitted(root: Any) -> int:
    """How many times the widget has sent its state to Python."""
    return int(root.get_attribute("data-emitted") or 0)


@pytest.fixture
def states(app_output: Path) -> Callable[..., dict[str, Any]]:
    """Clears the app's drafts; the returned function waits for a stored state of the
    clinic note that satisfies ``check`` (any, unless told) and returns it."""
    path = states_file(app_output)
    path.write_text("{}")

    def wait(check: Callable[[dict[str, Any]], bool] = bool, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        state: Any = None
        while time.monotonic() < deadline:
            try:
                state = json.loads(path.read_text() or "{}").get("clinic")
            except json.JSONDecodeError:  # caught the app mid-write
                state = None
            if state is not None and check(state):
                return state
            time.sleep(0.1)
        raise AssertionError(f"no stored state passed the check within {timeout} s: {state}")

    return wait


def store_draft(app_output: Path, draft: dict[str, Any]) -> None:
    """Put ``draft`` where the app looks for the clinic note's draft (``&draft=1``)."""
    states_file(app_output).write_text(json.dumps({"clinic": draft}))


def test_keyboard_and_mouse_reach_python(page, app_url, submitted):
    root = open_widget(page, app_url)
    mounted_at = root.get_attribute("data-mounted-at")
    click_phrase(page, "Cardiology")  # focus the widget on plain text
    # Keyboard: → walks the suggestions in text order (67-year-old, atrial fibrillation),
    # Enter accepts and moves on to palpitations, x rejects that.
    page.keyboard.press("ArrowRight")
    expect_selected(page, sid=110)
    page.keyboard.press("ArrowRight")
    expect_selected(page, sid=101)
    page.keyboard.press("Enter")
    box(page, sid=101, state="gold").first.wait_for()
    expect_selected(page, sid=102)
    page.keyboard.press("x")
    box(page, sid=102).first.wait_for(state="detached")

    # Mouse: select text, label it by hotkey (d = Drug, p = Problem).
    drag_over(page, "levothyroxine")
    page.locator("#nl-ann-picker:not([hidden])").wait_for()
    page.keyboard.press("d")
    box(page, label="Drug", state="gold").first.wait_for()
    drag_over(page, "ypothyroidis")  # cut words snap to "hypothyroidism"
    page.keyboard.press("p")

    # Relation: the new Problem is selected; click the Drug, then Shift+click the Problem.
    # Drug -> Problem allows treats and causes, so a picker offers both: 1 = treats.
    click_phrase(page, "levothyroxine")
    click_phrase(page, "hypothyroidism", modifier="Shift")
    page.locator("#nl-ann-picker button[data-relation='treats']").wait_for()
    page.keyboard.press("1")
    page.locator("#nl-ann-arcs g.nl-arc.nl-sel").wait_for()

    # Attribute: select the Problem and toggle the third attribute (historical).
    click_phrase(page, "hypothyroidism")
    page.keyboard.press("Shift+Digit3")
    page.locator("#nl-ann-panel input[data-attr='historical']:checked").wait_for()

    # Undo: delete the saved span, then take it back.
    click_phrase(page, "hypertension")
    page.keyboard.press("Delete")
    box(page, id="T1").first.wait_for(state="detached")
    page.keyboard.press("Control+z")
    box(page, id="T1").first.wait_for()

    # The changes reached Python as a draft (Streamlit reran the app)...
    page.wait_for_function(
        "() => [...document.querySelectorAll('*')].some((e) => e.shadowRoot"
        " && Number(e.shadowRoot.querySelector('#nl-ann')?.dataset.emitted || 0) > 0)"
    )
    page.wait_for_timeout(300)
    assert root.get_attribute("data-mounted-at") == mounted_at  # ...without a remount
    assert root.get_attribute("data-last-update-ms") is not None
    # Eight span and three relation suggestions are still open: the widget asks first.
    page.keyboard.press("Control+Enter")
    question(page).wait_for()
    assert (
        question(page)
        .inner_text()
        .startswith("11 suggestions are still open: reject them and submit, or go back")
    )
    page.keyboard.press("Tab")  # from "Go back" to "Reject 11 and submit"
    assert focused_answer(page) == "yes"
    page.keyboard.press("Enter")
    result = submitted()
    assert "error" not in result, result.get("error")

    af = span_by_text(result, "atrial fibrillation")
    assert (af["start"], af["end"]) == offsets("atrial fibrillation")
    assert (af["label"], af["source"], af["suggestion_id"]) == ("Problem", "accepted", 101)
    drug = span_by_text(result, "levothyroxine")
    assert (drug["start"], drug["end"]) == offsets("levothyroxine")
    assert (drug["label"], drug["source"], drug["suggestion_id"]) == ("Drug", "manual", None)
    problem = span_by_text(result, "hypothyroidism")
    assert (problem["start"], problem["end"]) == offsets("hypothyroidism")
    assert problem["source"] == "manual"
    assert problem["attributes"] == {"historical": "true"}
    saved = span_by_text(result, "hypertension")
    assert (saved["id"], saved["source"]) == ("T1", "manual")
    assert result["relations"] == [
        {
            "id": result["relations"][0]["id"],
            "label": "treats",
            "head": drug["id"],
            "tail": problem["id"],
        }
    ]
    rejected = {str(sid): "rejected" for sid in (*range(103, 111), 201, 202, 203)}
    assert result["decisions"] == {"101": "accepted", "102": "rejected", **rejected}
    assert result["state"]["confirm"] == {"reject_open": True, "empty": False}
    assert result["open_at_submit"] == []
    assert result["seconds"] > 0
    assert result["state"]["version"] == 3
    assert "palpitations" not in {s["text"] for s in result["spans"]}

    # The app saves and shows the note again at version 4: the widget remounts with the
    # saved gold, and submitting again keeps every source.
    page.wait_for_function(
        "(at) => [...document.querySelectorAll('*')].some((e) => e.shadowRoot"
        " && e.shadowRoot.querySelector('#nl-ann[data-ready]')?.dataset.mountedAt !== at)",
        arg=mounted_at,
    )
    box(page, sid=101, state="gold").first.wait_for()
    assert box(page, sid=102).count() == 0
    click_phrase(page, "Cardiology")
    page.keyboard.press("Control+Enter")
    again = submitted(after=result)
    assert "error" not in again, again.get("error")
    assert again["state"]["version"] == 4
    assert again["decisions"] == {}
    assert {(s["text"], s["source"]) for s in again["spans"]} == {
        (s["text"], s["source"]) for s in result["spans"]
    }


def test_accept_all_edit_and_relation_suggestion(page, app_url, submitted):
    open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    page.keyboard.press("Shift+A")  # everything scored >= 0.80, and has_dosage (0.84)
    box(page, sid=105, state="gold").first.wait_for()
    page.locator("#nl-ann-arcs g.nl-arc[data-sid='201']:not(.nl-sugg)").wait_for()

    # Accept a relation suggestion from its arc: its open tail (0.55) comes along.
    point = page.evaluate(ARC_POINT, 203)
    page.mouse.click(point["x"], point["y"])
    page.locator("#nl-ann-arcs g.nl-arc.nl-sel[data-sid='203']").wait_for()
    page.keyboard.press("Enter")
    page.locator("#nl-ann-arcs g.nl-arc[data-sid='203']:not(.nl-sugg)").wait_for()

    # Edit an open suggestion: chest pain (0.62) relabelled by hotkey, then negated.
    click_phrase(page, "chest pain")
    page.keyboard.press("t")
    page.keyboard.press("Shift+Digit1")
    page.locator("#nl-ann-panel input[data-attr='negated']:checked").wait_for()
    # Shrink an accepted suggestion by a word: "50 mg daily" -> "50 mg".
    click_phrase(page, "50 mg daily")
    page.keyboard.press("Shift+ArrowLeft")
    # Re-draw the extent of a selected span: select it, select new text, Enter.
    click_phrase(page, "fibrillation", nth=1)
    expect_selected(page, sid=106)
    drag_over(page, "for atrial fibrillation")
    page.locator("#nl-ann-picker .nl-pick-resize").wait_for()
    page.keyboard.press("Enter")
    box(page, sid=106).first.wait_for()
    page.locator("#nl-ann-submit").click()
    answer(page, "yes").click()  # left atrium, 67-year-old and treats are still open

    result = submitted()
    assert "error" not in result, result.get("error")
    assert result["decisions"] == {
        "101": "accepted", "102": "accepted", "103": "edited", "104": "accepted",
        "105": "edited", "106": "edited", "107": "accepted", "108": "accepted",
        "109": "rejected", "110": "rejected", "201": "accepted", "202": "rejected",
        "203": "accepted",
    }  # fmt: skip
    chest = span_by_text(result, "chest pain")
    assert (chest["label"], chest["source"], chest["suggestion_id"]) == ("Test", "edited", 103)
    assert chest["attributes"] == {"negated": "true"}
    dose = span_by_text(result, "50 mg")
    assert (dose["start"], dose["end"], dose["source"]) == (*offsets("50 mg"), "edited")
    widened = span_by_text(result, "for atrial fibrillation")
    assert (widened["start"], widened["end"]) == offsets("for atrial fibrillation")
    assert (widened["source"], widened["suggestion_id"]) == ("edited", 106)
    by_id = {s["id"]: s["text"] for s in result["spans"]}
    named = {(r["label"], by_id[r["head"]], by_id[r["tail"]]) for r in result["relations"]}
    assert named == {
        ("has_dosage", "Metoprolol", "50 mg"),
        ("reveals", "Echocardiogram", "dilated left atrium"),
    }


def test_two_types_on_one_range_show_apart_and_are_accepted_one_by_one(page, app_url, submitted):
    open_widget(page, app_url, fixture="two_types")
    problem, history = box(page, sid=1), box(page, sid=2)
    problem.first.wait_for()
    history.first.wait_for()
    assert problem.first.bounding_box() != history.first.bounding_box()  # two lanes
    for sid in (1, 2, 1):  # each click on the words selects the next reading
        click_phrase(page, "hypothyroidism")
        expect_selected(page, sid=sid)
    page.keyboard.press("Enter")
    box(page, sid=1, state="gold").first.wait_for()
    expect_selected(page, sid=2)  # accepting moved on to the other reading, still open
    page.keyboard.press("Backspace")
    page.locator("#nl-ann-submit").click()

    result = submitted()
    assert "error" not in result, result.get("error")
    assert result["decisions"] == {"1": "accepted", "2": "rejected"}
    (span,) = result["spans"]
    assert (span["label"], span["text"], span["source"]) == ("Problem", "hypothyroidism",
                                                             "accepted")


def test_script_in_a_note_renders_as_text(page, app_url):
    open_widget(page, app_url, "inject")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__nlInjected") is None
    text = page.locator("#nl-ann-text").inner_text()
    assert "<script>window.__nlInjected = 1</script>" in text
    assert '<img src=x onerror="window.__nlInjected = 2">' in text
    assert "<b>bold</b> &amp; more." in text
    assert page.locator("#nl-ann img, #nl-ann script, #nl-ann-text b").count() == 0
    # A label made of markup is shown as its characters too.
    assert page.locator("#nl-ann-labels .nl-chip").first.inner_text().startswith("<b>Bold</b>")
    click_phrase(page, "<script>")
    page.locator("#nl-ann-panel .nl-excerpt").wait_for()
    assert "<script>" in page.locator("#nl-ann-panel .nl-excerpt").inner_text()
    assert page.evaluate("() => window.__nlInjected") is None


def test_timer_counts_only_while_visible(page, app_url, submitted):
    root = open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    set_visibility(page, "hidden")
    page.wait_for_timeout(2000)
    set_visibility(page, "visible")
    page.keyboard.press("Control+Enter")
    answer(page, "yes").click()
    mounted_for = page.evaluate(
        "(at) => (performance.now() - at) / 1000", float(root.get_attribute("data-mounted-at"))
    )
    result = submitted()
    assert 0 < result["seconds"] < mounted_for - 1.9  # the hidden 2 s did not count
    assert set(result["decisions"].values()) == {"rejected"}


def test_screenshot_for_people(page, app_url, artifacts: Path):
    """artifacts/annotator_widget.png: gold and suggested spans, nested boxes, scores, an
    attribute, a gold and two suggested relations, one of them hovered."""
    root = open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    for key in ("ArrowRight", "ArrowRight", "Enter", "Enter", "Shift+Digit1"):
        page.keyboard.press(key)  # atrial fibrillation, palpitations; chest pain negated
    point = page.evaluate("([sid, at]) => (" + ARC_POINT + ")(sid, at)", [201, 0.8])
    page.mouse.click(point["x"], point["y"])  # near its tail, clear of the treats arc
    page.keyboard.press("Enter")  # has_dosage with both its ends
    page.locator("#nl-ann-arcs g.nl-arc[data-sid='201']:not(.nl-sugg)").wait_for()
    click_phrase(page, "Echocardiogram")
    point = page.evaluate(ARC_POINT, 203)
    page.mouse.move(point["x"], point["y"])  # hover: both ends of reveals light up
    page.locator("#nl-ann-arcs g.nl-arc.nl-hl[data-sid='203']").wait_for()
    path = artifacts / "annotator_widget.png"
    root.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


# ------------------------------------------------------------------- deliberate submits


SCROLL_PAGE_DOWN = """() => {
  for (const el of [document.scrollingElement, ...document.querySelectorAll('*')]) {
    if (el && el.scrollHeight > el.clientHeight + 1) el.scrollTop = el.scrollHeight;
  }
}"""


def test_submit_asks_before_it_rejects_open_suggestions(page, app_url, submitted):
    root = open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    page.keyboard.press("Shift+A")  # six spans and has_dosage; six suggestions stay open
    box(page, sid=105, state="gold").first.wait_for()
    # A short window, scrolled to the bottom: the widget's top is off the screen.
    page.set_viewport_size({"width": 1280, "height": 420})
    page.evaluate(SCROLL_PAGE_DOWN)
    assert page.locator("#nl-ann-bar").bounding_box()["y"] < 0
    page.keyboard.press("Control+Enter")
    question(page).wait_for()
    text = "6 suggestions are still open: reject them and submit, or go back"
    assert question(page).locator("#nl-ann-confirm-text").inner_text() == text
    assert answer(page, "yes").inner_text() == "Reject 6 and submit"
    assert answer(page, "back").inner_text() == "Go back"
    assert focused_answer(page) == "back"
    # At the top of the widget, above the note, and on the screen without scrolling.
    asked = question(page).bounding_box()
    header = page.locator("[data-testid='stHeader']").bounding_box()
    top = header["y"] + header["height"] if header else 0  # Streamlit's bar covers that
    assert asked["y"] >= top and asked["y"] + asked["height"] <= 420, (asked, top)
    assert asked["y"] < page.locator("#nl-ann-labels").bounding_box()["y"]
    page.set_viewport_size({"width": 1280, "height": 900})

    # Esc goes back: nothing submitted, the first open suggestion selected.
    page.keyboard.press("Escape")
    question(page).wait_for(state="hidden")
    expect_selected(page, sid=110)
    with pytest.raises(AssertionError, match="no submitted result"):
        submitted(timeout=1.5)

    # "Go back" by mouse works too; a change made while asked closes the question.
    page.locator("#nl-ann-submit").click()
    answer(page, "back").click()
    question(page).wait_for(state="hidden")
    page.locator("#nl-ann-submit").click()
    question(page).wait_for()
    click_phrase(page, "chest pain")
    page.locator("#nl-ann-panel button", has_text="Accept").click()
    question(page).wait_for(state="hidden")  # the count it asked about is stale now

    page.locator("#nl-ann-submit").click()
    assert answer(page, "yes").inner_text() == "Reject 5 and submit"
    answer(page, "yes").click()
    result = submitted()
    assert "error" not in result, result.get("error")
    assert result["state"]["confirm"] == {"reject_open": True, "empty": False}
    decisions = result["decisions"]
    assert {k for k, v in decisions.items() if v == "rejected"} == {
        "108", "109", "110", "202", "203",
    }  # fmt: skip
    assert decisions["103"] == "accepted"
    assert result["open_at_submit"] == []
    assert root.get_attribute("data-ready") == "1"


def test_ctrl_enter_on_an_untouched_note_asks_and_does_not_submit(page, app_url, submitted):
    open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    page.keyboard.press("Control+Enter")
    question(page).wait_for()
    assert question(page).inner_text().startswith("13 suggestions are still open")
    page.keyboard.press("Control+Enter")  # again: still asking, never a blind submit
    page.keyboard.press("Enter")  # on "Go back", where the focus starts
    question(page).wait_for(state="hidden")
    with pytest.raises(AssertionError, match="no submitted result"):
        submitted(timeout=1.5)
    assert box(page, sid=101, state="open").count() > 0  # nothing was rejected

    # Arrows and Tab move between the two answers; Space presses one.
    page.keyboard.press("Control+Enter")
    question(page).wait_for()
    page.keyboard.press("ArrowRight")
    assert focused_answer(page) == "yes"
    page.keyboard.press("Tab")
    assert focused_answer(page) == "back"
    page.keyboard.press("Shift+Tab")
    assert focused_answer(page) == "yes"
    page.keyboard.press("Space")
    result = submitted()
    assert "error" not in result, result.get("error")
    assert len(result["decisions"]) == 13
    assert set(result["decisions"].values()) == {"rejected"}
    assert [s["id"] for s in result["spans"]] == ["T1"]


def test_an_empty_note_is_submitted_only_as_confirmed_empty(page, app_url, submitted):
    open_widget(page, app_url)
    click_phrase(page, "hypertension")
    page.keyboard.press("Delete")  # the one saved span
    box(page, id="T1").first.wait_for(state="detached")
    page.keyboard.press("Control+Enter")
    answer(page, "yes").click()  # reject the 13 open suggestions...
    question(page).get_by_text(
        "This note has no span. Submit it as 'nothing to annotate in this note'?"
    ).wait_for()  # ...and then the widget asks about the empty note
    assert answer(page, "yes").inner_text() == "Nothing to annotate: submit"
    assert focused_answer(page) == "back"
    page.keyboard.press("Escape")
    question(page).wait_for(state="hidden")
    with pytest.raises(AssertionError, match="no submitted result"):
        submitted(timeout=1.5)

    page.keyboard.press("Control+Enter")  # nothing is open now: only the empty note is asked
    question(page).get_by_text("This note has no span.").wait_for()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    result = submitted()
    assert "error" not in result, result.get("error")
    assert result["spans"] == []
    assert result["state"]["confirm"] == {"reject_open": False, "empty": True}
    assert len(result["decisions"]) == 13


# ----------------------------------------------------------------------------- drafts


def make_some_changes(page: Any) -> None:
    """Accept, reject, edit, draw, link, delete: every kind of item a draft holds."""
    click_phrase(page, "Cardiology")
    for key in ("ArrowRight", "ArrowRight", "Enter", "x", "t", "Shift+Digit1"):
        page.keyboard.press(key)  # 101 accepted, 102 rejected, 103 as a negated Test
    page.locator("#nl-ann-panel input[data-attr='negated']:checked").wait_for()
    point = page.evaluate("([sid, at]) => (" + ARC_POINT + ")(sid, at)", [201, 0.8])
    page.mouse.click(point["x"], point["y"])  # near its tail, clear of the treats arc
    page.keyboard.press("Enter")  # has_dosage with Metoprolol and 50 mg daily
    page.locator("#nl-ann-arcs g.nl-arc[data-sid='201']:not(.nl-sugg)").wait_for()
    drag_over(page, "levothyroxine")
    page.keyboard.press("d")
    drag_over(page, "hypothyroidism")
    page.keyboard.press("p")
    click_phrase(page, "levothyroxine")
    click_phrase(page, "hypothyroidism", modifier="Shift")
    page.keyboard.press("1")  # treats
    click_phrase(page, "hypertension")
    page.keyboard.press("Delete")
    box(page, id="T1").first.wait_for(state="detached")


def test_a_draft_is_replayed_exactly(page, app_url, app_output, states):
    open_widget(page, app_url)
    make_some_changes(page)
    draft = states(lambda s: len(s["relations"]) == 2 and "T1" not in {x["id"] for x in s["spans"]})
    shown = picture(page)
    page.close()
    store_draft(app_output, draft)  # exactly this state, whatever the closed tab sent last

    again = page.context.new_page()
    again.set_default_timeout(20_000)
    root = open_widget(again, app_url, query="&draft=1")
    again.locator("#nl-ann-arcs g.nl-arc[data-sid='201']:not(.nl-sugg)").wait_for()
    assert picture(again) == shown
    assert again.locator("#nl-ann-msg").inner_text() == "Your draft of this note was restored."
    assert again.locator("#nl-ann-undo").is_disabled()  # the undo stack starts empty
    whole = int(draft["seconds"])  # the clock goes on from the draft's time
    assert timer(again) == f"active {whole // 60}:{whole % 60:02d}"

    # Its state is the draft: hiding the tab after a while sends it with the time.
    click_phrase(again, "Cardiology")
    again.wait_for_timeout(1200)
    before = emitted(root)
    set_visibility(again, "hidden")
    assert emitted(root) == before + 1
    replayed = states(lambda s: s["seconds"] > draft["seconds"])
    for key in ("spans", "relations", "decisions", "document_id", "version"):
        assert replayed[key] == draft[key], key

    # A new span after a replay gets an id the draft never used.
    set_visibility(again, "visible")
    drag_over(again, "reports")
    again.keyboard.press("p")
    set_visibility(again, "hidden")
    grown = states(lambda s: len(s["spans"]) == len(draft["spans"]) + 1)
    new = [s for s in grown["spans"] if s["start"] == offsets("reports")[0]]
    assert len(new) == 1 and new[0]["id"] not in {s["id"] for s in draft["spans"]} | {"T1"}


def test_what_no_longer_fits_a_draft_is_left_out_and_said(page, app_url, app_output, states):
    def span(span_id: str, label: str, phrase: str) -> dict[str, Any]:
        start, end = offsets(phrase)
        return {
            "id": span_id, "label": label, "start": start, "end": end,
            "fragments": [[start, end]], "attributes": {}, "source": "manual",
            "suggestion_id": None, "concept": "", "notes": [],
        }  # fmt: skip

    draft = {
        "document_id": "clinic-1", "version": 3, "submitted": False, "seconds": 42.0,
        "spans": [
            span("T1", "Problem", "hypertension"),
            span("T5", "Symptom", "palpitations"),  # a label the schema no longer has
            span("T6", "Drug", "levothyroxine"),
        ],
        "relations": [],
        "decisions": {"101": "rejected", "555": "rejected"},  # 555: a suggestion now gone
    }  # fmt: skip
    store_draft(app_output, draft)
    open_widget(page, app_url, query="&draft=1")
    message = page.locator("#nl-ann-msg")
    assert message.inner_text() == (
        "2 items of your draft no longer fit this note and were left out"
    )
    box(page, id="T6", label="Drug", state="gold").first.wait_for()
    assert box(page, sid=101).count() == 0
    assert "0:42" in page.locator("#nl-ann-timer").inner_text()

    click_phrase(page, "Cardiology")  # any new action clears the message
    assert message.inner_text() == ""
    page.wait_for_timeout(1200)
    set_visibility(page, "hidden")
    kept = states(lambda s: s["seconds"] > 42.0)
    assert [s["id"] for s in kept["spans"]] == ["T1", "T6"]
    assert kept["decisions"] == {"101": "rejected"}


# ------------------------------------------------------------- drafts reach the server


def test_changes_reach_python_a_second_after_the_last_one(page, app_url, states):
    page.clock.install()
    root = open_widget(page, app_url)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)  # time moves when told
    click_phrase(page, "Cardiology")
    start = emitted(root)
    for key in ("ArrowRight", "ArrowRight", "Enter", "x"):
        page.keyboard.press(key)
        page.clock.run_for(600)  # each change restarts the wait
    assert emitted(root) == start
    page.clock.run_for(500)
    assert emitted(root) == start + 1  # one state for the burst, one rerun
    page.clock.run_for(100)
    state = states(lambda s: s["decisions"] == {"101": "accepted", "102": "rejected"})
    assert state["submitted"] is False

    # Hiding the tab sends the latest change at once...
    page.keyboard.press("Enter")  # accepts chest pain
    set_visibility(page, "hidden")
    assert emitted(root) == start + 2
    page.clock.run_for(100)  # (Streamlit's own timers send the message)
    states(lambda s: s["decisions"].get("103") == "accepted")
    # ...and so does leaving the page.
    set_visibility(page, "visible")
    page.keyboard.press("x")  # rejects Metoprolol, the next open suggestion
    page.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pagehide'))")
    assert emitted(root) == start + 3
    page.clock.run_for(100)
    states(lambda s: s["decisions"].get("104") == "rejected")
    page.clock.run_for(2000)
    assert emitted(root) == start + 3  # nothing left to send


# ------------------------------------------------------------------------ active time


def timer(page: Any) -> str:
    return page.locator("#nl-ann-timer").inner_text()


def test_active_time_needs_a_visible_tab_and_recent_input(page, app_url, submitted):
    page.clock.install()
    open_widget(page, app_url)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    title = page.locator("#nl-ann-timer").get_attribute("title")
    assert "visible" in title and "within the last minute" in title

    page.clock.run_for(30_000)  # the note is open, nobody touches it
    assert timer(page) == "active 0:00"
    page.mouse.move(300, 300)
    page.mouse.move(320, 310)  # a pointer move inside the widget starts the clock
    page.clock.run_for(20_000)
    assert timer(page) == "active 0:20"
    page.locator("#nl-ann-body").dispatch_event("wheel")  # (mouse.wheel lands later)
    page.clock.run_for(180_000)  # gone for three minutes: a minute after the wheel counts
    assert timer(page) == "active 1:20"
    assert "nl-idle" in (page.locator("#nl-ann-timer").get_attribute("class") or "")

    click_phrase(page, "Cardiology")
    page.clock.run_for(10_000)
    set_visibility(page, "hidden")  # another tab: stops at once, whatever the input
    page.keyboard.press("ArrowRight")
    page.clock.run_for(30_000)
    set_visibility(page, "visible")  # back within the minute of the last key: counts again
    page.clock.run_for(5_000)
    assert timer(page) == "active 1:35"

    page.keyboard.press("Control+Enter")
    answer(page, "yes").click()
    page.clock.run_for(100)
    result = submitted()
    assert "error" not in result, result.get("error")
    assert 95.0 <= result["seconds"] < 96.0


# ----------------------------------------------------------------------------- messages


def test_a_message_never_outlives_the_next_action(page, app_url):
    open_widget(page, app_url)
    message = page.locator("#nl-ann-msg")
    # The message line sits in the top bar, above the note.
    assert page.locator("#nl-ann-bar #nl-ann-msg").count() == 1
    click_phrase(page, "Cardiology")
    page.keyboard.press("Shift+A")  # Metoprolol and 50 mg daily accepted, has_dosage too
    page.locator("#nl-ann-arcs g.nl-arc[data-sid='201']:not(.nl-sugg)").wait_for()
    click_phrase(page, "Metoprolol")
    click_phrase(page, "50 mg daily", modifier="Shift")  # has_dosage exists already
    assert message.inner_text() == "That relation exists already."
    # A new relation: the old message must not stay to describe it.
    click_phrase(page, "Metoprolol")
    click_phrase(page, "palpitations", modifier="Shift")
    page.locator("#nl-ann-picker button[data-relation='treats']").wait_for()
    page.keyboard.press("1")
    page.locator("#nl-ann-arcs g.nl-arc.nl-sel").wait_for()
    assert message.inner_text() == ""
    page.keyboard.press("Control+z")
    assert message.inner_text() == "Undone."
    page.keyboard.press("ArrowRight")
    assert message.inner_text() == ""
