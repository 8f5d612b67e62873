"""Benchmark of the annotator widget in headless Chromium: first render and key presses.

Serves ``tests/browser/annotator_app.py`` under ``streamlit run`` with a generated note
(``--words`` words, ``--suggestions`` span suggestions, a relation suggestion per five)
and drives it with Playwright. Times come from inside the page: the widget records
``performance.now()`` from the input event's timestamp to the first moment after the next
paint (``requestAnimationFrame`` then a task), and from its mount to its first paint.
Prints a markdown table of medians and 95th percentiles. Example::

    .venv/bin/python bench/bench_widget.py --words 5000 --suggestions 150

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

from widget_fixtures import bench_view  # noqa: E402
from widget_server import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402

TARGET_MS = 300.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, no interpolation."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def open_note(browser: Any, url: str, words: int, suggestions: int) -> tuple[Any, Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(f"{url}/?fixture=bench&words={words}&suggestions={suggestions}")
    root = page.locator("#nl-ann[data-ready='1']")
    root.wait_for()
    return page, root


def press(page: Any, root: Any, key: str, pause_ms: int) -> float:
    """Press a key, wait for the widget to paint the update, return its latency in ms."""
    before = int(root.get_attribute("data-updates") or 0)
    page.keyboard.press(key)
    page.wait_for_function(
        """([n]) => [...document.querySelectorAll('*')].some((e) => e.shadowRoot
            && Number(e.shadowRoot.querySelector('#nl-ann')?.dataset.updates || 0) > n)""",
        arg=[before],
    )
    page.wait_for_timeout(pause_ms)  # an annotator's pace; lets Streamlit's rerun happen
    return float(root.get_attribute("data-last-update-ms"))


def first_renders(browser: Any, url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"widget": [], "page": []}
    for _ in range(args.loads):
        page, root = open_note(browser, url, args.words, args.suggestions)
        widget = float(root.get_attribute("data-first-render-ms"))
        out["widget"].append(widget)
        out["page"].append(float(root.get_attribute("data-mounted-at")) + widget)
        page.close()
    return out


def key_presses(browser: Any, url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    page, root = open_note(browser, url, args.words, args.suggestions)
    root.focus()
    out: dict[str, list[float]] = {"next": [], "accept": [], "undo": [], "accept_all": []}
    for _ in range(args.presses):
        out["next"].append(press(page, root, "ArrowRight", args.pause_ms))
        out["accept"].append(press(page, root, "Enter", args.pause_ms))
    for _ in range(max(1, args.presses // 4)):
        out["undo"].append(press(page, root, "Control+z", args.pause_ms))
    out["accept_all"].append(press(page, root, "Shift+A", args.pause_ms))
    page.close()
    return out


def table(results: dict[str, list[float]]) -> str:
    rows = [
        ("first render: widget mount -> painted", "widget"),
        ("first render: navigation -> widget painted (with Streamlit)", "page"),
        ("key -> painted: next suggestion (→)", "next"),
        ("key -> painted: accept (Enter)", "accept"),
        ("key -> painted: undo (Ctrl+Z)", "undo"),
        ("key -> painted: accept all ≥ 0.80 (Shift+A)", "accept_all"),
    ]
    return timing_table([(label, results[key]) for label, key in rows])


def timing_table(rows: list[tuple[str, list[float]]], digits: int = 1) -> str:
    """A markdown table of (measure, milliseconds): count, median, p95 and max."""
    lines = ["| measure | n | median ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for label, v in rows:
        stats = (statistics.median(v), percentile(v, 95), max(v))
        lines.append(
            f"| {label} | {len(v)} | " + " | ".join(f"{x:.{digits}f}" for x in stats) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=5000)
    parser.add_argument("--suggestions", type=int, default=150)
    parser.add_argument("--loads", type=int, default=5, help="page loads for first render")
    parser.add_argument("--presses", type=int, default=40, help="→/Enter pairs")
    parser.add_argument("--pause-ms", type=int, default=150, help="pause after each key")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    view = bench_view({"words": str(args.words), "suggestions": str(args.suggestions)})
    n_rel = len(view.relation_suggestions)
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_app(Path(tmp) / "out.json") as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        results = first_renders(browser, url, args) | key_presses(browser, url, args)
        version = browser.version
        browser.close()
    print(
        f"note: {len(view.text.split()):,} words, {len(view.text):,} characters, "
        f"{len(view.span_suggestions)} span + {n_rel} relation suggestions, "
        f"{len(view.spans)} saved spans; Chromium {version} headless, "
        f"{os.cpu_count()} CPUs (shared)\n"
    )
    print(table(results))
    worst = percentile(results["accept"], 95)
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(f"\naccept p95 {worst:.1f} ms {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
