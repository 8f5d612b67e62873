"""Agreement and the adjudication diff against numbers computed by hand (written out below)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from noteloop.core.agreement import (
    AdjudicationError,
    Choice,
    Difference,
    Kind,
    agreement,
    cohen_kappa,
    describe,
    diff_annotations,
    merge,
    snippet,
    token_labels,
    tokens,
)
from noteloop.core.schema import Document, Equivalence, Relation, Span

# Tokens: Aspirin 0-7, 81 8-10, mg 11-13, for 14-17, chest 18-23, pain 24-28, "." 28-29.
TEXT = "Aspirin 81 mg for chest pain."


def note(spans=(), relations=(), equivalences=(), doc_id="n1", text=TEXT) -> Document:
    return Document(doc_id, text, tuple(spans), tuple(relations), tuple(equivalences))


# A: Drug "Aspirin", Dosage "81 mg", Problem "chest pain"; has_dose and treats.
A = note(
    [Span("T1", "Drug", 0, 7), Span("T2", "Dosage", 8, 13), Span("T3", "Problem", 18, 28)],
    [Relation("R1", "has_dose", "T1", "T2"), Relation("R2", "treats", "T1", "T3")],
)
# B: the same Drug; Dosage only "81"; "chest pain" labelled Drug; has_dose to "81" only.
B = note(
    [Span("S1", "Drug", 0, 7), Span("S2", "Dosage", 8, 10), Span("S3", "Drug", 18, 28)],
    [Relation("Q1", "has_dose", "S1", "S2")],
)


def approx(fraction: Fraction) -> pytest.approx:
    return pytest.approx(float(fraction))


# --------------------------------------------------------------------------- agreement


def test_pairwise_f1_strict_lenient_and_relations():
    result = agreement([(A, B)])
    # strict: only Drug 0-7 is the same: tp 1, fp 2, fn 2 -> 2/(2+2+2)
    assert (result.entity_strict.tp, result.entity_strict.fp, result.entity_strict.fn) == (1, 2, 2)
    assert result.entity_strict.f1 == approx(Fraction(1, 3))
    # lenient: the two Dosage spans overlap too: tp 2, fp 1, fn 1 -> 4/6
    assert result.entity_lenient.f1 == approx(Fraction(2, 3))
    # relations, strict arguments: none shared: tp 0, fp 1, fn 2
    assert (result.relation.tp, result.relation.fp, result.relation.fn) == (0, 1, 2)
    assert result.relation.f1 == 0.0
    assert result.n_docs == 1


def test_per_label_f1():
    strict = agreement([(A, B)]).per_label["entity_strict"]
    assert {label: (p.tp, p.fp, p.fn) for label, p in strict.items()} == {
        "Dosage": (0, 1, 1),
        "Drug": (1, 1, 0),  # B has a second Drug, A has none there
        "Problem": (0, 0, 1),
    }
    assert strict["Drug"].f1 == approx(Fraction(2, 3))


def test_token_kappa_overall_and_per_label():
    result = agreement([(A, B)])
    # A: Drug Dosage Dosage O Problem Problem O;  B: Drug Dosage O O Drug Drug O
    # p_o = 4/7; marginals A {Drug 1, Dosage 2, O 2, Problem 2}, B {Drug 3, Dosage 1, O 3}
    # p_e = (1*3 + 2*1 + 2*3) / 49 = 11/49; kappa = (28/49 - 11/49) / (38/49) = 17/38
    assert result.kappa.n == 7
    assert result.kappa.observed == approx(Fraction(4, 7))
    assert result.kappa.expected == approx(Fraction(11, 49))
    assert result.kappa.value == approx(Fraction(17, 38))
    per = {label: k.value for label, k in result.kappa_per_label.items()}
    # Drug: p_o 5/7, p_e (1*3 + 6*4)/49 = 27/49 -> (35-27)/(49-27) = 8/22
    assert per["Drug"] == approx(Fraction(8, 22))
    # Dosage: p_o 6/7, p_e (2*1 + 5*6)/49 = 32/49 -> (42-32)/(49-32) = 10/17
    assert per["Dosage"] == approx(Fraction(10, 17))
    # Problem: B never uses it: p_o 5/7 = p_e 35/49 -> exactly chance
    assert per["Problem"] == pytest.approx(0.0)


def test_agreement_is_symmetric():
    ab, ba = agreement([(A, B)]), agreement([(B, A)])
    assert ab.entity_strict.f1 == ba.entity_strict.f1
    assert ab.entity_lenient.f1 == ba.entity_lenient.f1
    assert ab.kappa.value == ba.kappa.value


def test_identical_versions_agree_perfectly_and_kappa_is_one():
    result = agreement([(A, A)])
    assert result.entity_strict.f1 == result.relation.f1 == 1.0
    assert result.kappa.value == pytest.approx(1.0)


def test_kappa_is_undefined_not_zero_when_neither_marked_anything():
    result = agreement([(note(), note())])
    assert result.kappa.observed == 1.0 and result.kappa.expected == 1.0
    assert result.kappa.value is None
    assert result.entity_strict.f1 == 0.0  # the metrics convention: nothing to measure


def test_agreement_pools_notes():
    other = "Metformin daily."  # tokens: Metformin, daily, "."
    a2 = note([Span("T1", "Drug", 0, 9)], doc_id="n2", text=other)
    b2 = note([Span("T1", "Drug", 0, 9)], doc_id="n2", text=other)
    result = agreement([(A, B), (a2, b2)])
    assert result.n_docs == 2
    assert (result.entity_strict.tp, result.entity_strict.fp, result.entity_strict.fn) == (2, 2, 2)
    assert result.kappa.n == 10
    assert result.kappa.observed == approx(Fraction(7, 10))


def test_nested_spans_are_a_label_set_per_token():
    nested = note([Span("T1", "Problem", 18, 28), Span("T2", "Site", 18, 23)])
    labels = token_labels(nested.spans, tokens(TEXT))
    assert labels[4] == {"Problem", "Site"} and labels[5] == {"Problem"} and labels[0] == set()


def test_a_discontinuous_span_does_not_cover_its_gap():
    span = Span("T1", "Problem", 0, 28, ((0, 7), (18, 28)))
    labels = token_labels([span], tokens(TEXT))
    assert [bool(x) for x in labels] == [True, False, False, False, True, True, False]


def test_cohen_kappa_by_hand():
    # 10 units: both yes 4, both no 3, A yes B no 2, A no B yes 1
    pairs = [(1, 1)] * 4 + [(0, 0)] * 3 + [(1, 0)] * 2 + [(0, 1)]
    k = cohen_kappa(pairs)
    # p_o = 0.7; p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.2 / 0.5
    assert k.observed == pytest.approx(0.7) and k.expected == pytest.approx(0.5)
    assert k.value == pytest.approx(0.4)
    assert cohen_kappa([]).value is None


def test_agreement_refuses_bad_pairs():
    with pytest.raises(ValueError, match="no notes annotated by both annotators"):
        agreement([])
    with pytest.raises(ValueError, match="cannot compare two different notes: n1 and n2"):
        agreement([(A, note(doc_id="n2"))])
    with pytest.raises(ValueError, match="note n1: the two versions have different texts"):
        agreement([(A, note(text="Aspirin."))])
    with pytest.raises(ValueError, match="document id n1 occurs more than once"):
        agreement([(A, B), (A, B)])


# --------------------------------------------------------------------------- the diff


def kinds(diff) -> list[tuple[str, str]]:
    return [(d.what, d.kind.value) for d in diff.items]


def test_diff_of_two_versions():
    diff = diff_annotations(A, B)
    assert kinds(diff) == [
        ("span", "both"),  # Drug 0-7
        ("span", "only_b"),  # Dosage 8-10
        ("span", "only_a"),  # Dosage 8-13
        ("span", "label"),  # 18-28: Problem in A, Drug in B
        ("relation", "only_a"),  # has_dose to 8-13
        ("relation", "only_a"),  # treats
        ("relation", "only_b"),  # has_dose to 8-10
    ]
    label = diff.items[3]
    assert (label.a.label, label.b.label) == ("Problem", "Drug")
    assert diff.counts() == {"both": 1, "label": 1, "only_a": 3, "only_b": 2}
    assert [i for i, _ in diff.disagreements()] == [1, 2, 3, 4, 5, 6]
    assert diff.items[1].choices == (Choice.B, Choice.DROP)
    assert diff.items[3].choices == (Choice.A, Choice.B, Choice.BOTH, Choice.DROP)


def test_a_relation_label_disagreement_on_the_same_arguments():
    a = note([Span("T1", "Drug", 0, 7), Span("T2", "Problem", 18, 28)])
    b = a.with_annotations(a.spans, [Relation("R1", "causes", "T1", "T2")])
    a = a.with_annotations(a.spans, [Relation("R1", "treats", "T1", "T2")])
    diff = diff_annotations(a, b)
    assert kinds(diff) == [("span", "both"), ("span", "both"), ("relation", "label")]
    assert describe(diff.items[2].b, b) == (
        "causes: Drug 'Aspirin' [0-7] -> Problem 'chest pain' [18-28]"
    )


def test_merge_taking_a_everywhere_gives_a_back():
    diff = diff_annotations(A, B)
    final = merge(diff, {1: "drop", 2: "a", 3: "a", 4: "a", 5: "a", 6: "drop"})
    assert final.annotation_set() == A.annotation_set()
    assert [s.id for s in final.spans] == ["T1", "T2", "T3"]


def test_merge_takes_b_label_and_keeps_relations_on_the_merged_span():
    diff = diff_annotations(A, B)
    final = merge(diff, {1: "b", 2: "drop", 3: "b", 4: "drop", 5: "a", 6: "b"})
    assert [(s.label, s.start, s.end) for s in final.spans] == [
        ("Drug", 0, 7),
        ("Dosage", 8, 10),
        ("Drug", 18, 28),
    ]
    by_id = {s.id: s for s in final.spans}
    # A's treats pointed at A's Problem 18-28: it now points at the kept Drug 18-28.
    shown = sorted(
        (r.label, by_id[r.head].start, by_id[r.tail].start, by_id[r.tail].end)
        for r in final.relations
    )
    assert shown == [("has_dose", 0, 8, 10), ("treats", 0, 18, 28)]


def test_merge_keeping_both_labels_gives_two_spans():
    diff = diff_annotations(A, B)
    final = merge(diff, {1: "drop", 2: "a", 3: "both", 4: "a", 5: "a", 6: "drop"})
    assert sorted(s.label for s in final.spans if s.start == 18) == ["Drug", "Problem"]
    treats = next(r for r in final.relations if r.label == "treats")
    assert final.span(treats.tail).label == "Problem"  # A's relation stays on A's span


def test_merge_refuses_a_relation_whose_span_is_dropped():
    diff = diff_annotations(A, B)
    with pytest.raises(
        AdjudicationError,
        match=r"relation has_dose: Drug 'Aspirin' \[0-7\] -> Dosage '81 mg' \[8-13\] needs "
        r"span Dosage '81 mg' \[8-13\], which the choices drop",
    ):
        merge(diff, {1: "drop", 2: "drop", 3: "a", 4: "a", 5: "a", 6: "drop"})


def test_merge_refuses_missing_and_wrong_choices():
    diff = diff_annotations(A, B)
    full = {1: "drop", 2: "a", 3: "a", 4: "a", 5: "a", 6: "drop"}
    with pytest.raises(AdjudicationError, match=r"2 difference\(s\) without a choice: #1, #6"):
        merge(diff, {k: v for k, v in full.items() if k not in (1, 6)})
    with pytest.raises(AdjudicationError, match="difference #0 is the same in both versions"):
        merge(diff, {**full, 0: "a"})
    with pytest.raises(AdjudicationError, match="difference #9 does not exist"):
        merge(diff, {**full, 9: "a"})
    with pytest.raises(AdjudicationError, match=r"difference #2: choose one of a, drop, not 'b'"):
        merge(diff, {**full, 2: "b"})
    with pytest.raises(AdjudicationError, match="choose one of a, b, both, drop, not 'maybe'"):
        merge(diff, {**full, 3: "maybe"})


def test_equivalence_groups_are_diffed_and_kept_with_their_members():
    spans = [Span("T1", "Drug", 0, 7), Span("T2", "Drug", 18, 28)]
    a = note(spans, equivalences=[Equivalence("Same", ("T1", "T2"))])
    b = note(spans)
    diff = diff_annotations(a, b)
    assert kinds(diff) == [("span", "both"), ("span", "both"), ("equivalence", "only_a")]
    assert merge(diff, {2: "a"}).equivalences == (Equivalence("Same", ("T1", "T2")),)
    assert merge(diff, {2: "drop"}).equivalences == ()


def test_merge_keeps_span_details():
    kept = Span("T1", "Drug", 0, 7, attributes=(("negated", "true"),), source="accepted")
    diff = diff_annotations(note([kept]), note())
    (span,) = merge(diff, {0: "a"}).spans
    assert span.attributes == (("negated", "true"),) and span.source == "accepted"


def test_a_difference_refuses_the_wrong_sides():
    with pytest.raises(ValueError, match="a only_a difference needs an A item and no B item"):
        Difference(Kind.ONLY_A, None, A.spans[0])
    with pytest.raises(ValueError, match="pairs two items of the same kind"):
        Difference(Kind.LABEL, A.spans[0], A.relations[0])


def test_snippet_shows_the_span_in_context_on_one_line():
    assert snippet("a\nb aspirin c\nd", 4, 11, width=3) == "… b [aspirin] c …"
    assert snippet(TEXT, 0, 7, width=5) == "[Aspirin] 81 m…"


