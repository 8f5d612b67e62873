"""Metrics against numbers computed by hand: every expected count is written out below."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteloop.core.metrics import (
    PRF,
    evaluate,
    match_spans,
    relation_counts,
    resolve_overlaps,
    span_counts,
    unrepresentable,
)
from noteloop.core.schema import Document, Relation, Span

TEXT = "x" * 200


def sp(span_id: str, label: str, start: int, end: int, fragments=()) -> Span:
    return Span(span_id, label, start, end, tuple(fragments))


def doc(doc_id: str = "d1", spans=(), relations=()) -> Document:
    return Document(doc_id, TEXT, tuple(spans), tuple(relations))


def counts(prf: PRF) -> tuple[int, int, int]:
    return (prf.tp, prf.fp, prf.fn)


def total(per_label: dict[str, PRF]) -> tuple[int, int, int]:
    return counts(sum(per_label.values(), PRF()))


# --------------------------------------------------------------------------- PRF


def test_prf_scores_from_counts():
    prf = PRF(tp=3, fp=1, fn=2)
    assert prf.precision == pytest.approx(3 / 4)
    assert prf.recall == pytest.approx(3 / 5)
    assert prf.f1 == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))  # = 2/3
    expected = {"p": 0.75, "r": 0.6, "f1": pytest.approx(2 / 3), "tp": 3, "fp": 1, "fn": 2}
    assert prf.to_dict() == expected


def test_prf_adds_counts_not_scores():
    assert PRF(1, 2, 3) + PRF(2, 0, 1) == PRF(3, 2, 4)
    assert sum([PRF(1, 0, 0), PRF(0, 1, 0)], PRF()) == PRF(1, 1, 0)


def test_prf_refuses_negative_counts():
    with pytest.raises(ValueError, match="PRF fp must be a non-negative integer, got -1"):
        PRF(1, -1, 0)


@pytest.mark.parametrize(
    ("prf", "p", "r"),
    [
        (PRF(0, 0, 0), 0.0, 0.0),  # no gold, no predictions: 0, not a perfect 1
        (PRF(0, 0, 4), 0.0, 0.0),  # nothing predicted
        (PRF(0, 3, 0), 0.0, 0.0),  # no gold
        (PRF(2, 0, 0), 1.0, 1.0),
    ],
)
def test_prf_zero_when_undefined(prf, p, r):
    assert (prf.precision, prf.recall) == (p, r)
    assert prf.f1 == (1.0 if p else 0.0)


# --------------------------------------------------------------------------- spans


def test_exact_match_is_strict_and_lenient_tp_whatever_the_ids():
    gold = [sp("T1", "Drug", 0, 5), sp("T2", "Dose", 10, 15)]
    pred = [sp("P9", "Dose", 10, 15), sp("P8", "Drug", 0, 5)]
    assert match_spans(gold, pred) == [(0, 1), (1, 0)]
    assert total(span_counts(gold, pred)) == (2, 0, 0)
    assert total(span_counts(gold, pred, lenient=True)) == (2, 0, 0)


def test_partial_overlap_is_lenient_tp_but_strict_fp_and_fn():
    gold, pred = [sp("T1", "Drug", 0, 10)], [sp("P1", "Drug", 2, 10)]
    assert total(span_counts(gold, pred)) == (0, 1, 1)
    assert total(span_counts(gold, pred, lenient=True)) == (1, 0, 0)


def test_wrong_label_misses_even_leniently():
    gold, pred = [sp("T1", "Drug", 0, 5)], [sp("P1", "Dose", 0, 5)]
    for lenient in (False, True):
        per_label = span_counts(gold, pred, lenient=lenient)
        assert per_label == {"Dose": PRF(0, 1, 0), "Drug": PRF(0, 0, 1)}


def test_duplicate_predictions_count_one_tp_and_one_fp():
    gold = [sp("T1", "Drug", 0, 5)]
    pred = [sp("P1", "Drug", 0, 5), sp("P2", "Drug", 0, 5)]
    for lenient in (False, True):
        prf = span_counts(gold, pred, lenient=lenient)["Drug"]
        assert counts(prf) == (1, 1, 0)
        assert (prf.precision, prf.recall, prf.f1) == pytest.approx((1 / 2, 1.0, 2 / 3))


def test_one_prediction_over_two_gold_spans_is_one_lenient_tp():
    gold = [sp("T1", "Drug", 0, 5), sp("T2", "Drug", 6, 10)]
    pred = [sp("P1", "Drug", 0, 10)]
    assert total(span_counts(gold, pred, lenient=True)) == (1, 0, 1)
    assert total(span_counts(gold, pred)) == (0, 1, 2)


def test_a_split_prediction_is_one_lenient_tp_and_one_fp():
    gold = [sp("T1", "Drug", 0, 10)]
    pred = [sp("P1", "Drug", 0, 4), sp("P2", "Drug", 5, 10)]
    assert total(span_counts(gold, pred, lenient=True)) == (1, 1, 0)


def test_lenient_pairs_the_exact_prediction_first():
    gold = [sp("T1", "Drug", 0, 10)]
    pred = [sp("P1", "Drug", 0, 12), sp("P2", "Drug", 0, 10)]
    assert match_spans(gold, pred, lenient=True) == [(0, 1)]


def test_lenient_matching_is_maximum_not_greedy():
    # P1 overlaps T1 by 10 and T2 by 3; P2 overlaps only T1 (by 5). Greedy by overlap would
    # give T1 to P1 and leave P2 and T2 unmatched: 1 TP. The maximum matching finds 2.
    gold = [sp("T1", "Drug", 0, 10), sp("T2", "Drug", 9, 12)]
    pred = [sp("P1", "Drug", 0, 12), sp("P2", "Drug", 0, 5)]
    assert match_spans(gold, pred, lenient=True) == [(0, 1), (1, 0)]
    assert total(span_counts(gold, pred, lenient=True)) == (2, 0, 0)


def test_discontinuous_span_must_match_every_fragment_strictly():
    gold = [sp("T1", "Problem", 0, 9, [(0, 3), (6, 9)])]
    same = [sp("P1", "Problem", 0, 9, [(0, 3), (6, 9)])]
    contiguous = [sp("P1", "Problem", 0, 9)]
    first_only = [sp("P1", "Problem", 0, 3)]
    in_gap = [sp("P1", "Problem", 4, 5)]
    assert total(span_counts(gold, same)) == (1, 0, 0)
    assert total(span_counts(gold, contiguous)) == (0, 1, 1)
    assert total(span_counts(gold, first_only)) == (0, 1, 1)
    assert total(span_counts(gold, contiguous, lenient=True)) == (1, 0, 0)
    assert total(span_counts(gold, first_only, lenient=True)) == (1, 0, 0)
    assert total(span_counts(gold, in_gap, lenient=True)) == (0, 1, 1)  # shares no character


# --------------------------------------------------------------------------- relations

A, B = sp("T1", "Drug", 0, 5), sp("T2", "Drug", 10, 15)


def rel_doc(rel_id, label, head, tail, spans=(A, B)) -> Document:
    return doc(spans=spans, relations=[Relation(rel_id, label, head, tail)])


def test_relation_matches_by_arguments_not_ids():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    pa, pb = sp("X", "Drug", 0, 5), sp("Y", "Drug", 10, 15)
    pred = rel_doc("Q7", "Interacts", "X", "Y", spans=(pb, pa))
    assert relation_counts(gold, pred) == {"Interacts": PRF(1, 0, 0)}


def test_relation_wrong_direction_is_fp_and_fn_unless_symmetric():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    pred = rel_doc("R1", "Interacts", "T2", "T1")
    assert relation_counts(gold, pred) == {"Interacts": PRF(0, 1, 1)}
    assert relation_counts(gold, pred, symmetric={"Interacts"}) == {"Interacts": PRF(1, 0, 0)}
    lenient = relation_counts(gold, pred, symmetric={"Interacts"}, lenient_args=True)
    assert lenient == {"Interacts": PRF(1, 0, 0)}
    # Symmetry is per label: another symmetric label does not rescue this one.
    assert relation_counts(gold, pred, symmetric={"Coref"}) == {"Interacts": PRF(0, 1, 1)}


def test_relation_wrong_label_is_fp_and_fn():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    pred = rel_doc("R1", "Treats", "T1", "T2")
    assert relation_counts(gold, pred) == {"Interacts": PRF(0, 0, 1), "Treats": PRF(0, 1, 0)}


def test_relation_argument_off_by_one_is_wrong_strictly_and_right_leniently():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    pred = rel_doc("R1", "Interacts", "T1", "T2", spans=(A, sp("T2", "Drug", 10, 16)))
    assert relation_counts(gold, pred) == {"Interacts": PRF(0, 1, 1)}
    assert relation_counts(gold, pred, lenient_args=True) == {"Interacts": PRF(1, 0, 0)}


def test_relation_argument_with_wrong_label_is_wrong_even_leniently():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    pred = rel_doc("R1", "Interacts", "T1", "T2", spans=(A, sp("T2", "Dose", 10, 15)))
    assert relation_counts(gold, pred, lenient_args=True) == {"Interacts": PRF(0, 1, 1)}


def test_duplicate_predicted_relations_count_one_tp_and_one_fp():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    rels = [Relation("R1", "Interacts", "T1", "T2"), Relation("R2", "Interacts", "T1", "T2")]
    pred = doc(spans=(A, B), relations=rels)
    for lenient_args in (False, True):
        got = relation_counts(gold, pred, lenient_args=lenient_args)
        assert got == {"Interacts": PRF(1, 1, 0)}


# --------------------------------------------------------------------------- corpus


def test_empty_gold_and_empty_prediction_score_zero():
    result = evaluate([doc("d1")], [doc("d1")], n_bootstrap=0)
    for prf in (result.entity_strict, result.entity_lenient, result.relation):
        assert prf == PRF(0, 0, 0)
        assert (prf.precision, prf.recall, prf.f1) == (0.0, 0.0, 0.0)


def test_missing_prediction_counts_all_gold_as_fn():
    gold = rel_doc("R1", "Interacts", "T1", "T2")
    result = evaluate([gold], [], n_bootstrap=0)
    assert counts(result.entity_strict) == (0, 0, 2)
    assert counts(result.relation) == (0, 0, 1)
    assert result.entity_strict.recall == 0.0


def test_predictions_on_empty_gold_are_all_fp():
    result = evaluate([doc("d1")], [doc("d1", spans=[A])], n_bootstrap=0)
    assert counts(result.entity_lenient) == (0, 1, 0)
    assert result.entity_lenient.precision == 0.0


def test_per_label_counts_and_scores():
    gold = doc(spans=[sp("T1", "Drug", 0, 5), sp("T2", "Drug", 10, 15), sp("T3", "Dose", 20, 25)])
    pred = doc(spans=[sp("P1", "Drug", 0, 5), sp("P2", "Dose", 20, 24), sp("P3", "Route", 30, 35)])
    result = evaluate([gold], [pred], n_bootstrap=0)
    strict = result.per_label["entity_strict"]
    assert strict == {"Dose": PRF(0, 1, 1), "Drug": PRF(1, 0, 1), "Route": PRF(0, 1, 0)}
    assert (strict["Drug"].precision, strict["Drug"].recall) == (1.0, 0.5)
    assert strict["Drug"].f1 == pytest.approx(2 / 3)
    lenient = result.per_label["entity_lenient"]
    assert lenient["Dose"] == PRF(1, 0, 0)
    assert counts(result.entity_strict) == (1, 2, 2)
    assert counts(result.entity_lenient) == (2, 1, 1)


def three_docs() -> tuple[list[Document], list[Document]]:
    """Strict counts per document: (2, 0, 1), (0, 1, 0), (1, 1, 1)."""
    gold = [
        doc("d1", [sp("a", "Drug", 0, 5), sp("b", "Drug", 10, 15), sp("c", "Dose", 20, 25)]),
        doc("d2"),
        doc("d3", [sp("a", "Drug", 0, 5), sp("b", "Dose", 10, 15)]),
    ]
    pred = [
        doc("d1", [sp("a", "Drug", 0, 5), sp("b", "Drug", 10, 15)]),
        doc("d2", [sp("a", "Drug", 40, 45)]),
        doc("d3", [sp("a", "Drug", 0, 5), sp("b", "Dose", 50, 55)]),
    ]
    return gold, pred


def test_micro_aggregation_over_three_documents():
    gold, pred = three_docs()
    result = evaluate(gold, pred, n_bootstrap=0)
    assert counts(result.entity_strict) == (3, 2, 2)
    assert result.entity_strict.precision == pytest.approx(3 / 5)
    assert result.entity_strict.recall == pytest.approx(3 / 5)
    assert result.entity_strict.f1 == pytest.approx(3 / 5)
    # Not the mean of the document F1s (4/5, 0, 1/2).
    assert result.entity_strict.f1 != pytest.approx((4 / 5 + 0 + 1 / 2) / 3)
    assert result.n_docs == 3


def test_prediction_for_a_document_without_gold_is_refused():
    with pytest.raises(ValueError, match="without gold: d9"):
        evaluate([doc("d1")], [doc("d1"), doc("d9")])


def test_duplicate_ids_and_other_texts_are_refused():
    with pytest.raises(ValueError, match="gold documents: document id d1 occurs more than once"):
        evaluate([doc("d1"), doc("d1")], [])
    with pytest.raises(ValueError, match="document d1: the predicted text differs"):
        evaluate([doc("d1")], [Document("d1", "other text")])
    with pytest.raises(ValueError, match="no gold documents"):
        evaluate([], [])
    with pytest.raises(ValueError, match="n_bootstrap must be >= 0, got -1"):
        evaluate([doc("d1")], [], n_bootstrap=-1)


def varied_corpus(n: int = 30) -> tuple[list[Document], list[Document]]:
    """Documents whose strict counts differ, so resamples differ."""
    gold, pred = [], []
    for i in range(n):
        spans = [sp(f"g{k}", "Drug", 10 * k, 10 * k + 5) for k in range(1 + i % 4)]
        hits = [sp(f"p{k}", "Drug", 10 * k, 10 * k + 5) for k in range(i % 3)]
        misses = [sp("px", "Drug", 150, 155)] if i % 5 == 0 else []
        gold.append(doc(f"d{i}", spans))
        pred.append(doc(f"d{i}", hits + misses))
    return gold, pred


def test_bootstrap_interval_contains_the_point_estimate_and_is_reproducible():
    gold, pred = varied_corpus()
    first = evaluate(gold, pred, n_bootstrap=500, seed=7)
    again = evaluate(gold, pred, n_bootstrap=500, seed=7)
    other = evaluate(gold, pred, n_bootstrap=500, seed=8)
    low, high = first.ci["entity_strict"]
    assert low < first.entity_strict.f1 < high
    assert first.ci == again.ci
    assert first.ci != other.ci
    assert set(first.ci) == {"entity_strict", "entity_lenient", "relation"}


def test_bootstrap_interval_has_no_width_when_all_documents_are_identical():
    gold_one, pred_one = three_docs()
    gold = [doc(f"d{i}", gold_one[0].spans) for i in range(10)]
    pred = [doc(f"d{i}", pred_one[0].spans) for i in range(10)]
    result = evaluate(gold, pred, n_bootstrap=200)
    assert result.entity_strict.f1 == pytest.approx(4 / 5)  # (2, 0, 1) per document
    assert result.ci["entity_strict"] == pytest.approx((4 / 5, 4 / 5))
    assert result.ci["relation"] == (0.0, 0.0)


def test_no_bootstrap_gives_no_interval():
    gold, pred = three_docs()
    assert evaluate(gold, pred, n_bootstrap=0).ci == {}


def test_to_dict_is_nested_and_json_serialisable():
    gold, pred = three_docs()
    data = json.loads(json.dumps(evaluate(gold, pred, n_bootstrap=50).to_dict()))
    assert data["entity"]["strict"]["tp"] == 3
    assert data["entity"]["per_label"]["strict"]["Dose"] == {
        "p": 0.0, "r": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 2
    }
    assert set(data["entity"]["per_label"]) == {"strict", "lenient"}
    assert data["relation"]["micro"]["tp"] == 0
    assert len(data["ci"]["entity_lenient"]) == 2
    assert data["n_docs"] == 3


# --------------------------------------------------------------------------- invariants

span_strategy = st.tuples(st.sampled_from(["Drug", "Dose"]), st.integers(0, 30), st.integers(1, 6))


def build(raw, prefix) -> list[Span]:
    return [sp(f"{prefix}{i}", label, s, s + n) for i, (label, s, n) in enumerate(raw)]


@settings(max_examples=200, deadline=None)
@given(st.lists(span_strategy, max_size=8), st.lists(span_strategy, max_size=8))
def test_counts_add_up_and_lenient_never_below_strict(raw_gold, raw_pred):
    gold, pred = build(raw_gold, "g"), build(raw_pred, "p")
    strict, lenient = total(span_counts(gold, pred)), total(span_counts(gold, pred, lenient=True))
    for tp, fp, fn in (strict, lenient):
        assert (tp + fn, tp + fp) == (len(gold), len(pred))
    assert lenient[0] >= strict[0]
    pairs = match_spans(gold, pred, lenient=True)
    assert len({g for g, _ in pairs}) == len({p for _, p in pairs}) == len(pairs)


# --------------------------------------------------------------------------- representability


def test_unrepresentable_counts_nested_crossing_and_discontinuous_spans():
    spans = [
        sp("A", "Problem", 0, 10),
        sp("B", "Anatomy", 2, 5),  # nested in A: lost
        sp("C", "Test", 8, 14),  # crosses A, shorter: lost
        sp("D", "Drug", 20, 25),  # alone: kept
        sp("E", "Problem", 30, 44, [(30, 33), (40, 44)]),  # discontinuous, 7 chars: kept
        sp("F", "Anatomy", 41, 43),  # inside a fragment of E: lost
        sp("G", "Anatomy", 34, 38),  # in E's gap, shares no character: kept
        sp("H", "Sign", 50, 55),  # same length and start as I, label "Sign" > "Dose": lost
        sp("I", "Dose", 50, 55),
        sp("J", "Drug", 60, 64),  # same length as K, earlier start: kept
        sp("K", "Drug", 62, 66),  # lost
    ]
    kept, lost = resolve_overlaps(spans)
    assert [s.id for s in lost] == ["B", "C", "F", "H", "K"]
    assert [s.id for s in kept] == ["A", "D", "E", "G", "I", "J"]
    result = unrepresentable([doc("d1", spans), doc("d2", [sp("Z", "Drug", 0, 3)])])
    assert (result.total, result.lost_overlap, result.discontinuous) == (12, 5, 1)
    assert result.affected == 6
    assert result.fraction == pytest.approx(6 / 12)


def test_a_discontinuous_span_that_is_also_lost_counts_once():
    spans = [sp("A", "Problem", 0, 20), sp("B", "Problem", 2, 9, [(2, 4), (6, 9)])]
    result = unrepresentable([doc("d1", spans)])
    got = (result.total, result.lost_overlap, result.discontinuous, result.affected)
    assert got == (2, 1, 1, 1)
    assert result.fraction == pytest.approx(1 / 2)


def test_unrepresentable_of_nothing_and_unknown_representation():
    assert unrepresentable([doc("d1")]).fraction == 0.0
    with pytest.raises(ValueError, match="representation must be 'bio', got 'bilou'"):
        unrepresentable([], representation="bilou")


