"""Span enumeration's pure parts: word edges, candidates, gold targets, the learnt width
and the choice among scored candidates (numpy only; the trained head is tested with the
real MiniLM in test_model_encoder.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from noteloop.core.align import sliding_windows, token_owners
from noteloop.core.model.decode import choose_spans
from noteloop.core.model.features import (
    EncodedDoc,
    LabelMaps,
    attach_spans,
    gold_span_targets,
    learnt_width,
    span_candidates,
    word_edges,
)
from noteloop.core.schema import Document, EntityType, LabelSchema, Span

MAPS = LabelMaps.from_schema(LabelSchema(
    (EntityType("Body"), EntityType("Problem"), EntityType("Drug")), ()))


def _tokens(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Character offsets of ``pieces`` found in order in ``text`` (a hand-made tokenizer)."""
    out, at = [], 0
    for piece in pieces:
        start = text.index(piece, at)
        out.append((start, start + len(piece)))
        at = start + len(piece)
    return out


def _encoded(text: str, pieces: list[str], spans=(), size: int = 64) -> EncodedDoc:
    offsets = _tokens(text, pieces)
    windows = sliding_windows(len(offsets), size, size // 4)
    enc = EncodedDoc(Document("n", text, tuple(spans)), list(range(len(offsets))), offsets,
                     windows, token_owners(windows, len(offsets)))
    attach_spans(enc, spans)
    return enc


def test_word_edges_join_subword_pieces_and_split_at_punctuation():
    text = "hypertension, 5mg/day"
    offsets = _tokens(text, ["hyper", "tension", ",", "5", "mg", "/", "day"])
    starts, ends = word_edges(text, offsets)
    assert starts.tolist() == [True, False, True, True, False, True, True]
    assert ends.tolist() == [False, True, True, False, True, True, True]


def test_candidates_are_word_aligned_and_at_most_the_width():
    enc = _encoded("left knee pain worsening", ["left", "knee", "pa", "in", "worsening"])
    cands = span_candidates(enc, 2, every_window=False)
    ranges = sorted(zip(cands.lo.tolist(), cands.hi.tolist(), strict=True))
    # "pa" never ends a candidate and "in" never starts one; width <= 2 tokens
    assert ranges == [(0, 1), (0, 2), (1, 2), (2, 4), (4, 5)]


def test_prediction_reads_each_candidate_once_training_once_per_window():
    pieces = [f"w{i}" for i in range(40)]
    enc = _encoded(" ".join(pieces), pieces, size=16)
    once = span_candidates(enc, 3, every_window=False)
    every = span_candidates(enc, 3, every_window=True)
    keys = list(zip(once.lo.tolist(), once.hi.tolist(), strict=True))
    assert len(keys) == len(set(keys)) == 40 * 3 - 3  # every range of 1..3 words, once
    assert len(every) > len(once) and set(keys) == set(
        zip(every.lo.tolist(), every.hi.tolist(), strict=True))
    for lo, hi, w in zip(once.lo, once.hi, once.window, strict=True):
        window = enc.windows[w]
        assert window.start <= lo and hi <= window.end


def test_gold_targets_mark_nested_spans_and_count_what_no_candidate_holds():
    text = "left knee pain and hypertension"
    spans = [Span("a", "Problem", 0, 14), Span("b", "Body", 0, 9),
             Span("c", "Problem", 19, 24),  # cuts "hypertension" inside the word
             Span("d", "Body", 0, 14),  # a second type on the range of "a"
             Span("e", "Problem", 0, 14)]  # "a" again
    enc = _encoded(text, ["left", "knee", "pain", "and", "hyper", "tension"], spans)
    cands = span_candidates(enc, 3, every_window=True)
    lost = gold_span_targets(enc, cands, MAPS)
    marked = {(int(lo), int(hi), int(t), int(u)) for lo, hi, t, u
              in zip(cands.lo, cands.hi, cands.target, cands.second, strict=True) if t}
    assert marked == {(0, 3, 2, 1), (0, 2, 1, 0)}  # Problem (and Body) over 3 tokens, Body in it
    assert lost == 1


def test_a_third_type_on_one_range_is_counted_lost():
    spans = [Span("a", "Problem", 0, 9), Span("b", "Body", 0, 9), Span("c", "Drug", 0, 9)]
    enc = _encoded("left knee", ["left", "knee"], spans)
    cands = span_candidates(enc, 2, every_window=True)
    assert gold_span_targets(enc, cands, MAPS) == 1


def test_learnt_width_is_a_high_quantile_within_bounds():
    pieces = [f"w{i}" for i in range(60)]
    short, wide = _encoded(" ".join(pieces), pieces), _encoded(" ".join(pieces), pieces)
    short.ranges = [(0, 1 + i % 2) for i in range(200)]
    wide.ranges = [*((0, 1 + i % 10) for i in range(300)), (0, 50)]
    assert learnt_width([short]) == 4  # spans of 1 and 2 tokens: the floor
    assert learnt_width([wide]) == 10  # the single 50-token span is left out
    assert learnt_width([wide], ceiling=8) == 8
    assert learnt_width([]) == 4


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


def test_choice_keeps_nesting_drops_crossing_and_duplicates():
    lo = np.array([0, 0, 1, 2, 0, 2])
    hi = np.array([3, 2, 3, 4, 3, 3])
    probs = _probs([[0.1, 0.0, 0.9],   # Problem 0-3, the surest
                    [0.2, 0.8, 0.0],   # Body 0-2: nested in it, kept
                    [0.3, 0.7, 0.0],   # 1-3: inside 0-3 but crosses 0-2: dropped
                    [0.4, 0.6, 0.0],   # 2-4 crosses 0-3: dropped
                    [0.5, 0.5, 0.0],   # Body on 0-3 again: the range is taken
                    [0.45, 0.55, 0.0]])  # 2-3: nested in 0-3, beside 0-2: kept
    chosen = choose_spans(lo, hi, probs, nested=True)
    assert [(a, b, c) for a, b, c, _ in chosen] == [(0, 3, 2), (0, 2, 1), (2, 3, 1)]
    assert chosen[0][3] == pytest.approx(0.9)
    flat = choose_spans(lo, hi, probs, nested=False)
    assert [(a, b, c) for a, b, c, _ in flat] == [(0, 3, 2)]


def test_a_candidate_is_a_span_when_all_types_together_reach_the_threshold():
    lo, hi = np.array([0, 1, 2]), np.array([1, 2, 3])
    probs = _probs([[0.6, 0.4, 0.0],     # "no span" at 0.6: nothing
                    [0.45, 0.3, 0.25],   # no type beats "no span", together they do
                    [0.75, 0.15, 0.1]])
    chosen = choose_spans(lo, hi, probs, nested=True)
    assert [(a, b, c) for a, b, c, _ in chosen] == [(1, 2, 1)]
    assert chosen[0][3] == pytest.approx(0.3)
    lower = choose_spans(lo, hi, probs, nested=True, threshold=0.2)
    assert [(a, b, c) for a, b, c, _ in lower] == [(0, 1, 1), (1, 2, 1), (2, 3, 1)]


def test_a_taken_range_gets_a_second_type_that_reaches_its_threshold():
    lo, hi = np.array([0, 2, 0]), np.array([2, 3, 3])
    probs = _probs([[0.1, 0.48, 0.42],   # two types on one range
                    [0.1, 0.6, 0.3],     # the second type below 0.35
                    [0.6, 0.2, 0.2]])    # not a span: no type at all
    chosen = choose_spans(lo, hi, probs, nested=True, second=0.35)
    assert [(a, b, c) for a, b, c, _ in chosen] == [(0, 2, 1), (0, 2, 2), (2, 3, 1)]
    assert chosen[1][3] == pytest.approx(0.42)
    assert [(a, b, c) for a, b, c, _ in choose_spans(lo, hi, probs, nested=True)] == [
        (0, 2, 1), (2, 3, 1)]  # one type per range by default


def test_hybrid_fills_only_the_gaps_the_enumeration_left():
    from noteloop.core.model.encoder import _gaps_filled

    every = np.ones(10, dtype=bool)
    found = [(2, 5, "Problem", 0.9)]
    tagged = [(0, 1, "Drug", 0.8), (3, 6, "Problem", 0.9), (6, 8, "Dose", 0.4),
              (8, 9, "Drug", 0.5)]
    # crossing the enumerated span: out; below the threshold: out
    assert _gaps_filled(found, tagged, 0.5, every, every) == [
        (0, 1, "Drug", 0.8), (8, 9, "Drug", 0.5)]
    assert _gaps_filled([], tagged, 0.0, every, every) == sorted(tagged)


def test_hybrid_widens_a_tagged_span_to_whole_words():
    from noteloop.core.model.encoder import _gaps_filled

    text = "HER2-negative disease"
    offsets = [(0, 3), (3, 4), (4, 5), (5, 13), (14, 21)]  # her ##2 - negative disease
    starts, ends = word_edges(text, offsets)
    tagged = [(0, 1, "Test", 0.8), (1, 4, "TestResult", 0.7)]
    # "HER" becomes "HER2"; "2-negative", widened to "HER2-negative", overlaps it: out
    assert _gaps_filled([], tagged, 0.5, starts, ends) == [(0, 2, "Test", 0.8)]


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(1, 5), st.integers(0, 2),
                          st.floats(0.0, 1.0)), max_size=30))
def test_chosen_spans_never_cross_or_repeat_a_range(rows):
    lo = np.array([r[0] for r in rows], dtype=np.int64)
    hi = lo + np.array([r[1] for r in rows], dtype=np.int64)
    probs = np.zeros((len(rows), 3))
    for i, (_, _, label, p) in enumerate(rows):
        probs[i, label] = 0.5 + p / 2
        probs[i, (label + 1) % 3] = 0.5 - p / 2
    chosen = choose_spans(lo, hi, probs, nested=True)
    ranges = [(a, b) for a, b, _, _ in chosen]
    assert len(ranges) == len(set(ranges)) and ranges == sorted(ranges, key=lambda r: (r[0], -r[1]))
    for a, b in ranges:
        for c, d in ranges:
            crossing = a < c < b < d
            assert not crossing



def test_a_range_with_two_types_is_taught_both_half_and_half():
    import torch

    from noteloop.core.model.encoder import _enumeration_nll
    from noteloop.core.model.heads import CandidateBatch

    index = torch.zeros(2, dtype=torch.long)
    cands = CandidateBatch(index, index, index + 1, torch.tensor([1, 2]), torch.tensor([2, 0]))
    scores = torch.log(torch.tensor([[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]]))
    nll = _enumeration_nll(scores, cands)
    assert nll.tolist() == pytest.approx([-np.log(0.4), -np.log(0.4)])
    scores.requires_grad_(True)
    _enumeration_nll(scores, cands)[0].backward()
    # at 0.4 and 0.4 against a target of 0.5 and 0.5, both types rise and "no span" falls
    grad = scores.grad[0].tolist()
    assert grad[0] > 0 and grad[1] < 0 and grad[2] < 0 and grad[1] == pytest.approx(grad[2])
