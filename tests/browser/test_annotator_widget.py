"""The annotator widget in a real headless Chromium, mounted by a real Streamlit server.

Every test drives the widget as an annotator would (keys, clicks, mouse drags) and then
checks what reached Python: the test app converts each submitted state with
``result_to_annotation`` and appends it to a JSON file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from widget_driver import ARC_POINT, box, click_phrase, drag_over, expect_selected
from widget_fixtures import CLINIC_TEXT, find

pytestmark = pytest.mark.browser


def open_widget(page: Any, url: str, fixture: str = "clinic") -> Any:
    page.goto(f"{url}/?fixture={fixture}")
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

    page.wait_for_timeout(500)  # every change above made Streamlit rerun the app...
    assert root.get_attribute("data-mounted-at") == mounted_at  # ...without a remount
    assert root.get_attribute("data-last-update-ms") is not None
    page.keyboard.press("Control+Enter")
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
    assert result["decisions"] == {"101": "accepted", "102": "rejected"}
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

    result = submitted()
    assert "error" not in result, result.get("error")
    assert result["decisions"] == {
        "101": "accepted", "102": "accepted", "103": "edited", "104": "accepted",
        "105": "edited", "106": "edited", "107": "accepted", "108": "accepted",
        "201": "accepted", "203": "accepted",
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


def set_visibility(page: Any, state: str) -> None:
    """What a browser does when the tab goes to the background and comes back."""
    page.evaluate(
        """(state) => {
      Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
      document.dispatchEvent(new Event('visibilitychange'));
    }""",
        state,
    )


def test_timer_counts_only_while_visible(page, app_url, submitted):
    root = open_widget(page, app_url)
    click_phrase(page, "Cardiology")
    set_visibility(page, "hidden")
    page.wait_for_timeout(2000)
    set_visibility(page, "visible")
    page.keyboard.press("Control+Enter")
    mounted_for = page.evaluate(
        "(at) => (performance.now() - at) / 1000", float(root.get_attribute("data-mounted-at"))
    )
    result = submitted()
    assert 0 < result["seconds"] < mounted_for - 1.9  # the hidden 2 s did not count
    assert result["decisions"] == {}


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
