"""Held-out gold: which notes a round keeps aside, how it scores them, and the relation
thresholds chosen on them (pure; the encoder's use of them is in test_model_encoder.py)."""

from __future__ import annotations

import pytest

from noteloop.core.metrics import evaluate
from noteloop.core.model.holdout import held_out_score, split_holdout
from noteloop.core.schema import Document, Relation, Span
from noteloop.core.thresholds import (
    Outcome,
    best_thresholds,
    gold_relation_counts,
    relation_outcomes,
)


def _notes(n: int) -> list[Document]:
    return [Document(f"note-{i}", f"text {i}") for i in range(n)]


def test_small_pools_hold_nothing_out():
    docs = _notes(39)
    assert split_holdout(docs, 0.15, 40) == (docs, [])
    assert split_holdout(_notes(50), 0.0, 40) == (_notes(50), [])


def test_the_held_out_share_depends_on_ids_not_order():
    docs = _notes(60)
    train, held = split_holdout(docs, 0.15, 40)
    assert len(held) == 9 and len(train) == 51
    assert {d.id for d in train} | {d.id for d in held} == {d.id for d in docs}
    assert [d.id for d in train] == [d.id for d in docs if d not in held]  # order kept
    _, again = split_holdout(list(reversed(docs)), 0.15, 40)
    assert {d.id for d in again} == {d.id for d in held}
    _, grown = split_holdout(_notes(70), 0.15, 40)  # a bigger pool keeps most of them
    assert len({d.id for d in grown} & {d.id for d in held}) >= 7


def _doc(spans, relations=()) -> Document:
    return Document("d", "aspirin for pain and ibuprofen for fever", tuple(spans),
                    tuple(relations))


SPANS = [Span("a", "Drug", 0, 7), Span("b", "Problem", 12, 16), Span("c", "Drug", 21, 30),
         Span("d", "Problem", 35, 40)]
GOLD = _doc(SPANS, [Relation("r1", "treats", "a", "b"), Relation("r2", "treats", "c", "d")])


def test_outcomes_judge_each_predicted_relation_strictly():
    pred = _doc(SPANS, [Relation("x", "treats", "a", "b"), Relation("y", "treats", "a", "d"),
                        Relation("z", "treats", "c", "d")])
    outcomes = relation_outcomes(GOLD, pred, [0.9, 0.4, 0.3])
    assert outcomes == [Outcome("treats", 0.9, True), Outcome("treats", 0.4, False),
                        Outcome("treats", 0.3, True)]
    assert gold_relation_counts([GOLD, GOLD]) == {"treats": 4}


def test_each_type_gets_its_f1_best_threshold():
    outcomes = [Outcome("treats", 0.9, True), Outcome("treats", 0.6, False),
                Outcome("treats", 0.35, True), Outcome("treats", 0.2, False),
                Outcome("causes", 0.95, False), Outcome("causes", 0.8, True)]
    chosen = best_thresholds(outcomes, {"treats": 2, "causes": 1, "rare": 1}, 0.5,
                             grid=(0.3, 0.5, 0.7, 0.9), min_gold=1)
    # treats: 0.3 keeps both right ones and one wrong (F1 0.8); 0.5 and 0.7 F1 0.67
    assert chosen["treats"] == 0.3
    # causes: 0.3 to 0.7 tie (the wrong one scores above the right one): nearest the default
    assert chosen["causes"] == 0.5
    assert chosen["rare"] == 0.5  # never predicted: every threshold ties, the default stays


def test_types_with_too_little_held_out_gold_keep_the_default():
    outcomes = [Outcome("treats", 0.2, True)]
    assert best_thresholds(outcomes, {"treats": 4}, 0.5, min_gold=5) == {"treats": 0.5}
    assert best_thresholds(outcomes, {"treats": 5}, 0.5, min_gold=5)["treats"] == 0.2


def test_a_round_is_judged_by_spans_and_relations_together():
    pred = _doc(SPANS, [])
    result = evaluate([GOLD], [pred], n_bootstrap=0)
    assert held_out_score(result, has_relations=False) == pytest.approx(1.0)
    assert held_out_score(result, has_relations=True) == pytest.approx(0.5)
