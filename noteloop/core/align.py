"""Character offsets <-> token indices, BIO tags, and sliding windows over long notes.

Pure Python: a tokenizer's offset mapping comes in as plain ``(start, end)`` pairs, one per
token of the whole note (no special tokens), so this module never imports torch or a
tokenizer and can be tested on its own.

The conventions the model relies on:

* **Token ranges** are half-open ``(lo, hi)`` token indices; a character span maps to
  every token sharing at least one character with it, and a token range maps back to
  ``(start of its first token, end of its last token)``: predictions snap to token edges.
* **Windows** cover a note of any length with overlapping stretches of at most ``size``
  tokens (no truncation). Each token is *owned* by the window in which it sits most
  centrally, and a merged prediction takes every token's tag from its owner: the tokens
  near a window's edge, which saw the least context, never decide.
* **Chunks** (:func:`sentence_chunks`) are what a generative model reads: consecutive,
  non-overlapping stretches of at most ``max_tokens`` tokens, cut after a paragraph or a
  sentence when one lies within reach, never inside a given span; offsets of what the
  model finds in a chunk are shifted by the chunk's start back into the whole note.
* **What BIO cannot express** follows :func:`noteloop.core.metrics.resolve_overlaps` (one
  rule for the tagger and for the "unrepresentable" count): of overlapping spans the
  longest is kept, ties broken by earliest start, then label. A discontinuous span tags
  each fragment as its own ``B-``/``I-`` run (decoded back as separate spans). Two kept
  spans that share no character but split one token would still collide on that token:
  the same priority decides, and the loser is reported as dropped too.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from noteloop.core.metrics import resolve_overlaps
from noteloop.core.schema import Span

OUTSIDE = "O"
# Where a new sentence or paragraph may begin: after a line break, or after a sentence's
# closing punctuation and the whitespace that follows it.
_SENTENCE_BREAK = re.compile(r"\n\s*|(?<=[.!?;:])\s+")
T = TypeVar("T")
Offsets = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of a note's tokens, ``start`` inclusive, ``end`` exclusive."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def centrality(self, token: int) -> int:
        """Tokens of context on the poorer side of ``token`` (higher = more central)."""
        return min(token - self.start, self.end - 1 - token)


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """A labelled token range ``[lo, hi)``; ``span_id`` names the span it came from."""

    label: str
    lo: int
    hi: int
    span_id: str = ""


@dataclass(frozen=True, slots=True)
class Tagging:
    """BIO tags for a note's tokens, the runs they encode and the spans they could not."""

    tags: list[str]
    runs: list[TokenSpan]
    dropped: list[Span]


# --------------------------------------------------------------------------- offsets


def char_to_tokens(offsets: Offsets, start: int, end: int) -> tuple[int, int] | None:
    """The token range sharing at least one character with ``[start, end)``.

    Offsets must be in text order (a fast tokenizer's are). Tokens of zero width never
    count. Returns None when no token covers any of the characters (whitespace only).
    """
    lo = bisect_right(offsets, start, key=lambda o: o[1])  # first token ending after start
    hi = lo
    while hi < len(offsets) and offsets[hi][0] < end:
        hi += 1
    while lo < hi and offsets[lo][0] == offsets[lo][1]:
        lo += 1
    while hi > lo and offsets[hi - 1][0] == offsets[hi - 1][1]:
        hi -= 1
    return (lo, hi) if lo < hi else None


def tokens_to_chars(offsets: Offsets, lo: int, hi: int) -> tuple[int, int] | None:
    """Snaps a token range to characters: first token's start to last token's end.

    Zero-width tokens at either edge are skipped; None if the range has no width at all.
    """
    wide = [offsets[i] for i in range(lo, hi) if offsets[i][0] < offsets[i][1]]
    if not wide:
        return None
    return wide[0][0], wide[-1][1]


# --------------------------------------------------------------------------- windows


def sliding_windows(n_tokens: int, size: int, overlap: int, *, fill_last: bool = False
                    ) -> list[Window]:
    """Windows of at most ``size`` tokens, consecutive ones sharing at least ``overlap``.

    Windows start every ``size - overlap`` tokens; the last one ends at the note's end.
    By default it is shorter than the others, so no token is encoded more often than the
    overlap requires (on MACCROBAT, 1.11 encoded tokens per note token instead of 1.26);
    ``fill_last`` moves it back to a full window instead (more context for its tokens, for
    callers that cannot batch windows by length). A note shorter than ``size`` is one
    window; an empty note has none.

    Raises:
        ValueError: ``size`` < 1 or ``overlap`` outside ``[0, size)``.
    """
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"window overlap must be in [0, {size}), got {overlap}")
    if n_tokens == 0:
        return []
    stride = size - overlap
    # the last start is the first multiple of stride at or past n_tokens - size
    starts = range(0, max(n_tokens - size, 0) + stride, stride)
    windows = [Window(s, min(s + size, n_tokens)) for s in starts]
    if fill_last and len(windows) > 1:
        windows[-1] = Window(n_tokens - size, n_tokens)
    return windows


def token_owners(windows: Sequence[Window], n_tokens: int) -> list[int]:
    """For each token, the index of the window where it sits most centrally.

    Ties go to the earlier window. Every token must be covered by some window.
    """
    best = [-1] * n_tokens
    score = [-1] * n_tokens
    for w, window in enumerate(windows):
        for t in range(window.start, window.end):
            c = window.centrality(t)
            if c > score[t]:
                best[t], score[t] = w, c
    if -1 in best:
        raise ValueError(f"token {best.index(-1)} is not covered by any window")
    return best


def containing_window(windows: Sequence[Window], lo: int, hi: int) -> int | None:
    """The window holding all of tokens ``[lo, hi)`` with the most context around them.

    ``windows`` must be ordered by start (and so by end), as :func:`sliding_windows`
    makes them. None when no single window holds the whole range.
    """
    first = bisect_left(windows, hi, key=lambda w: w.end)  # windows ending at or after hi
    last = bisect_right(windows, lo, key=lambda w: w.start)  # windows starting at or before lo
    candidates = range(first, last)
    if not candidates:
        return None
    return max(candidates, key=lambda w: (min(lo - windows[w].start, windows[w].end - hi), -w))


# --------------------------------------------------------------------------- BIO


def _runs_of(span: Span, offsets: Offsets) -> list[TokenSpan] | None:
    runs = []
    for a, b in span.fragments:
        rng = char_to_tokens(offsets, a, b)
        if rng is None:
            return None
        runs.append(TokenSpan(span.label, rng[0], rng[1], span.id))
    return runs


def spans_to_bio(offsets: Offsets, spans: Iterable[Span]) -> Tagging:
    """BIO tags for the tokens of a note, following the module's rule for overlaps.

    Spans lost to a character overlap, spans covering no token, and spans that collide
    with a kept span on a shared token come back in ``Tagging.dropped``.
    """
    kept, dropped = resolve_overlaps(spans)
    tags = [OUTSIDE] * len(offsets)
    taken = [False] * len(offsets)
    all_runs: list[TokenSpan] = []
    for span in sorted(kept, key=_priority):
        runs = _runs_of(span, offsets)
        if runs is None or any(taken[i] for r in runs for i in range(r.lo, r.hi)):
            dropped.append(span)
            continue
        for run in runs:
            _write_run(tags, taken, run)
        all_runs.extend(runs)
    return Tagging(tags, sorted(all_runs, key=lambda r: r.lo), dropped)


def _priority(span: Span) -> tuple[int, int, str, str]:
    # The order of metrics.resolve_overlaps: most characters covered, earliest, label, id.
    covered = sum(b - a for a, b in span.fragments)
    return (-covered, span.start, span.label, span.id)


def _write_run(tags: list[str], taken: list[bool], run: TokenSpan) -> None:
    for i in range(run.lo, run.hi):
        tags[i] = ("B-" if i == run.lo else "I-") + run.label
        taken[i] = True


def bio_to_runs(tags: Sequence[str]) -> list[TokenSpan]:
    """Token runs encoded by BIO tags, repairing what a model may emit.

    An ``I-X`` that does not continue an ``X`` run (after ``O`` or another label) starts
    a new run, as if it were ``B-X``; a ``B-X`` always starts one.
    """
    runs: list[TokenSpan] = []
    label, lo = "", -1
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == label
        if lo >= 0 and not continues:
            runs.append(TokenSpan(label, lo, i))
            label, lo = "", -1
        if prefix in ("B", "I") and not continues:
            label, lo = name, i
    return runs


# --------------------------------------------------------------------------- chunks


def sentence_chunks(
    text: str, offsets: Offsets, max_tokens: int, spans: Iterable[Span] = ()
) -> list[tuple[int, int]]:
    """Character ranges ``(start, end)`` that split ``text`` into chunks for a generative
    model, in order, each of at most ``max_tokens`` tokens and stripped of whitespace.

    A chunk ends after a paragraph or sentence when one ends in the second half of its
    budget; otherwise at the last word boundary that fits (a very long sentence), and only
    if there is none, mid-word. No cut falls inside one of ``spans`` (training chunks keep
    their gold mentions whole) unless a span alone is longer than the budget. A blank
    note has no chunks; together the chunks hold every non-blank character.

    Raises:
        ValueError: ``max_tokens`` < 1.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    starts = [a for a, _ in offsets]
    inside = _inside_spans(spans)
    sentence = {bisect_left(starts, m.end()) for m in _SENTENCE_BREAK.finditer(text)}
    cuts, lo = [0], 0
    while len(starts) - lo > max_tokens:
        lo = _cut(text, starts, lo, max_tokens, sentence, inside)
        cuts.append(lo)
    bounds = [0, *(starts[c] for c in cuts[1:]), len(text)]
    return [r for a, b in pairwise(bounds) if (r := _strip(text, a, b))]


def _inside_spans(spans: Iterable[Span]) -> list[tuple[int, int]]:
    return sorted((s.start, s.end) for s in spans)


def _cuts_span(position: int, inside: Sequence[tuple[int, int]]) -> bool:
    """Whether a cut before character ``position`` would split one of the spans."""
    i = bisect_left(inside, (position, position))
    return any(a < position < b for a, b in inside[max(0, i - 64) : i])


def _cut(
    text: str, starts: Sequence[int], lo: int, budget: int, sentence: set[int],
    inside: Sequence[tuple[int, int]],
) -> int:
    """The token index where the chunk starting at token ``lo`` ends (see sentence_chunks)."""
    allowed = [t for t in range(lo + budget, lo, -1) if not _cuts_span(starts[t], inside)]
    for t in allowed:
        if t in sentence and t - lo >= budget // 2:
            return t
    for t in allowed:
        if starts[t] > 0 and text[starts[t] - 1].isspace():
            return t
    return allowed[0] if allowed else lo + budget


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece) - len(piece.rstrip())
    return (start + lead, end - trail) if lead < len(piece) else None
