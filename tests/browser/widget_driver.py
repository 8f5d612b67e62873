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
