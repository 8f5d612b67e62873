"""Benchmark of the served app in headless Chromium: from the Submit click to the next note.

Serves ``noteloop/screen/app.py`` with ``streamlit run`` on a demo database seeded as the
end-to-end tests seed it (``tests/browser/app_server.py``: the demo of ``make run``, with
suggestions for every pool note), logs in as an annotator and, note after note, accepts
the suggestions scored 0.80 or more (Shift+A), clicks Submit (rejecting the rest when the
widget asks) and waits for the next note.
The time is measured inside the page: from the click event's timestamp to the first paint
of the next note's widget (its mount time plus its own first-render time, both
``performance.now()``). It covers saving the note, the rerun that picks and claims the
next one, loading its suggestions, sending it to the browser and drawing it. Example::

    .venv/bin/python bench/bench_app.py --notes 15

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))

from app_server import password_of, serve_seeded  # noqa: E402
from bench_widget import timing_table  # noqa: E402
from widget_server import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

WIDGET = "#nl-ann[data-ready='1']"
# Records the timestamp of the click that submits (the buttons sit inside the widget's
# shadow root): Submit, or the widget's "yes" when it asked about open suggestions first.
WATCH_SUBMIT = """() => window.addEventListener('click', (e) => {
  const el = e.composedPath()[0];
  if (el?.id === 'nl-ann-submit' || el?.dataset?.answer === 'yes') {
    window.__nlSubmitAt = e.timeStamp;
  }
}, true)"""
YES = "#nl-ann-confirm button[data-answer='yes']"
# The widgets in the page: while Streamlit reruns, the old note's stays beside the new one.
HOSTS = """[...document.querySelectorAll('*')].filter(
  (e) => e.shadowRoot && e.shadowRoot.querySelector("#nl-ann[data-ready='1']"))"""
NEXT_SHOWN = f"""(at) => {HOSTS}.some(
  (h) => h.shadowRoot.querySelector('#nl-ann').dataset.mountedAt !== at)"""
ONE_SHOWN = f"() => {HOSTS}.length === 1"
# The widget mounted at another time than ``at``: its size and first paint (performance.now()).
SHOWN = f"""(at) => {{
  const host = {HOSTS}.find(
    (h) => h.shadowRoot.querySelector('#nl-ann').dataset.mountedAt !== at);
  const root = host.shadowRoot.querySelector('#nl-ann');
  const text = host.shadowRoot.querySelector('#nl-ann-text').textContent;
  return {{mountedAt: root.dataset.mountedAt,
          paintedAt: Number(root.dataset.mountedAt) + Number(root.dataset.firstRenderMs),
          words: text.split(/\\s+/).filter(Boolean).length,
          boxes: host.shadowRoot.querySelectorAll('#nl-ann-boxes .nl-box').length}};
}}"""


def log_in(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password", exact=True).fill(password_of("ann"))
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Get the next note").click()  # logging in claims nothing
    page.locator(WIDGET).wait_for()


def submit_and_next(page: Any, pause_ms: int) -> dict[str, float]:
    """Accept the confident suggestions, submit, wait for the next note; its timings."""
    page.wait_for_function(ONE_SHOWN)  # the previous note's widget has gone
    page.locator("#nl-ann-text").click(position={"x": 5, "y": 5})  # focus the widget
    page.keyboard.press("Shift+A")
    page.wait_for_timeout(pause_ms)  # an annotator's pace: Streamlit's rerun happens
    before = page.evaluate(SHOWN, "")
    page.locator("#nl-ann-submit").click()
    for _ in range(2):  # the widget asks about open suggestions, then about an empty note
        if page.locator(YES).is_visible():
            page.locator(YES).click()
    page.wait_for_function(NEXT_SHOWN, arg=before["mountedAt"])
    after = page.evaluate(SHOWN, before["mountedAt"])
    clicked = page.evaluate("() => window.__nlSubmitAt")
    return {
        "ms": after["paintedAt"] - clicked,
        "words": before["words"],
        "boxes": before["boxes"],
        "next_words": after["words"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=15, help="notes to submit")
    parser.add_argument("--pause-ms", type=int, default=400, help="pause before each submit")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_seeded(Path(tmp)) as app,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        log_in(page, app.url)
        page.evaluate(WATCH_SUBMIT)
        page.wait_for_timeout(1000)
        samples = [submit_and_next(page, args.pause_ms) for _ in range(args.notes)]
        version = browser.version
        browser.close()
    load_after = os.getloadavg()
    words = [s["words"] for s in samples]
    print(
        f"{len(samples)} notes of the demo pool ({min(words):,}-{max(words):,} words, median "
        f"{statistics.median(words):,.0f}; {statistics.median(s['boxes'] for s in samples):.0f} "
        f"spans on screen at submit, median); Chromium {version} headless, {os.cpu_count()} "
        f"CPUs (shared), load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print(timing_table([("submit click -> next note painted", [s["ms"] for s in samples])], 0))
    print("\n| note words | spans at submit | ms |\n|---|---|---|")
    for s in samples:
        print(f"| {s['words']:,} | {s['boxes']} | {s['ms']:.0f} |")


if __name__ == "__main__":
    main()
