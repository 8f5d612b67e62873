"""Driving the annotator widget in a page as a person would: click or drag over a phrase
of the note, find a span's box. Shared by the widget tests, the app tests and the bench."""

from __future__ import annotations

from typing import Any

# Client rects of the nth occurrence of a phrase in the widget's text (inside the shadow root).
PHRASE_RECTS = """([phrase, nth]) => {
  const host = [...document.querySelectorAll('*')].find(
    (e) => e.shadowRoot && e.shadowRoot.querySelector('#nl-ann-text'));
  const nodes = [...host.shadowRoot.querySelectorAll('#nl-ann-text .nl-chunk')]
    .map((c) => c.firstChild);
  let full = ''; const starts = [];
  for (const n of nodes) { starts.push(full.length); full += n.data; }
  let at = -1;
  for (let i = 0; i <= nth; i++) at = full.indexOf(phrase, at + 1);
  if (at < 0) throw new Error('phrase not in the widget: ' + phrase);
  const loc = (off) => {
    for (let i = nodes.length - 1; i >= 0; i--) {
      if (starts[i] <= off) return [nodes[i], off - starts[i]];
    }
  };
  const r = document.createRange();
  r.setStart(...loc(at)); r.setEnd(...loc(at + phrase.length));
  return [...r.getClientRects()].map((q) => ({x: q.left, y: q.top, w: q.width, h: q.height}));
}"""

# A point on the arc of the relation suggestion with this id (at a fraction of its
# length: 0.5 unless told), in client coordinates.
ARC_POINT = """(sid, at = 0.5) => {
  const host = [...document.querySelectorAll('*')].find(
    (e) => e.shadowRoot && e.shadowRoot.querySelector('#nl-ann-arcs'));
  const path = host.shadowRoot.querySelector(`g.nl-arc[data-sid="${sid}"] .nl-arc-hit`);
  const p = path.getPointAtLength(path.getTotalLength() * at);
  const m = path.getScreenCTM();
  return {x: p.x * m.a + p.y * m.c + m.e, y: p.x * m.b + p.y * m.d + m.f};
}"""


def rects(page: Any, phrase: str, nth: int = 0) -> list[dict[str, float]]:
    return page.evaluate(PHRASE_RECTS, [phrase, nth])


def click_phrase(page: Any, phrase: str, nth: int = 0, modifier: str | None = None) -> None:
    q = rects(page, phrase, nth)[0]
    if modifier:
        page.keyboard.down(modifier)
    page.mouse.click(q["x"] + q["w"] / 2, q["y"] + q["h"] / 2)
    if modifier:
        page.keyboard.up(modifier)


def drag_over(page: Any, phrase: str, nth: int = 0) -> None:
    """Select a phrase with the mouse, starting and ending a little inside its first and
    last word: the widget snaps the selection to whole words."""
    qs = rects(page, phrase, nth)
    first, last = qs[0], qs[-1]
    page.mouse.move(first["x"] + 3, first["y"] + first["h"] / 2)
    page.mouse.down()
    page.mouse.move(last["x"] + last["w"] - 3, last["y"] + last["h"] / 2, steps=6)
    page.mouse.up()


def box(page: Any, **data: Any) -> Any:
    sel = "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    return page.locator(f"#nl-ann-boxes .nl-box{sel}")


def expect_selected(page: Any, **data: Any) -> None:
    sel = "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    page.locator(f"#nl-ann-boxes .nl-box.nl-sel{sel}").first.wait_for()


# What the widget shows, independent of its internal ids: every box and arc, and the counts.
PICTURE = """() => {
  const host = [...document.querySelectorAll('*')].find(
    (e) => e.shadowRoot && e.shadowRoot.querySelector('#nl-ann'));
  const root = host.shadowRoot;
  const boxes = [...root.querySelectorAll('#nl-ann-boxes .nl-box')].map((b) =>
    [b.dataset.id || '', b.dataset.label, b.dataset.state, b.dataset.sid || ''].join('|'));
  const arcs = [...root.querySelectorAll('#nl-ann-arcs g.nl-arc')].map((g) =>
    [g.dataset.sid || '', g.querySelector('text').textContent,
     g.classList.contains('nl-sugg') ? 'open' : 'gold'].join('|'));
  const attrs = [...root.querySelectorAll('#nl-ann-boxes .nl-attr')].map((a) => a.textContent);
  return {boxes: boxes.sort(), arcs: arcs.sort(), attrs: attrs.sort(),
          counts: root.querySelector('#nl-ann-counts').textContent};
}"""


def picture(page: Any) -> dict[str, Any]:
    return page.evaluate(PICTURE)


def set_visibility(page: Any, state: str) -> None:
    """What a browser does when the tab goes to the background and comes back."""
    page.evaluate(
        """(state) => {
      Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
      document.dispatchEvent(new Event('visibilitychange'));
    }""",
        state,
    )


def question(page: Any) -> Any:
    """The question the widget asks before a submit (hidden when there is none)."""
    return page.locator("#nl-ann-confirm")


def answer(page: Any, which: str) -> Any:
    """The question's buttons: ``yes`` (reject and submit, or submit as empty) or ``back``."""
    return page.locator(f"#nl-ann-confirm button[data-answer='{which}']")


def focused_answer(page: Any) -> str | None:
    """``data-answer`` of the focused button inside the widget, if one has the focus."""
    return page.evaluate(
        """() => {
      const host = [...document.querySelectorAll('*')].find(
        (e) => e.shadowRoot && e.shadowRoot.querySelector('#nl-ann'));
      const el = host.shadowRoot.activeElement;
      return el && el.dataset ? el.dataset.answer || null : null;
    }"""
    )
