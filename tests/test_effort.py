"""The effort model: which actions turn suggestions into gold, and what they cost."""

from __future__ import annotations

import numpy as np
import pytest

from noteloop.core.effort import (
    Action,
    Costs,
    Effort,
    NoteEffort,
    fit_costs,
    note_effort,
)
from noteloop.core.schema import Document, Relation, Span, Suggestion

TEXT = "Patient had severe chest pain and fever after aspirin was given twice daily."
#       0         1         2         3         4         5         6         7
#       0123456789012345678901234567890123456789012345678901234567890123456789012345


def span(sid: str, label: str, start: int, end: int) -> Span:
    return Span(sid, label, start, end)


def sug(item: Span | Relation, score: float = 0.9) -> Suggestion:
    return Suggestion(item, score)


GOLD = Document(
    "d1",
    TEXT,
    spans=(
        span("T1", "Sign", 19, 29),  # chest pain
        span("T2", "Sign", 34, 39),  # fever
        span("T3", "Drug", 46, 53),  # aspirin
        span("T4", "Frequency", 64, 75),  # twice daily
    ),
    relations=(Relation("R1", "cause", "T3", "T2"),),
)


def test_right_suggestions_are_accepted_and_what_is_missing_is_drawn() -> None:
    effort = note_effort(GOLD, [sug(span("S1", "Sign", 19, 29), 0.5)])
    assert effort.actions == {Action.ACCEPT: 1, Action.CREATE_SPAN: 3, Action.CREATE_RELATION: 1}
    assert effort.scratch == {Action.CREATE_SPAN: 4, Action.CREATE_RELATION: 1}
    assert effort.bulk_presses == 0


def test_each_kind_of_wrong_suggestion_gets_its_own_action() -> None:
    suggestions = [
        sug(span("S1", "Sign", 12, 29)),  # "severe chest pain": a boundary to fix
        sug(span("S2", "Drug", 34, 39)),  # fever as a drug: relabel
        sug(span("S3", "Sign", 0, 7)),  # "Patient": reject
        sug(span("S4", "Sign", 46, 53)),  # aspirin, overlapping with a wrong type
        sug(Relation("Q1", "cause", "S4", "S2"), 0.4),  # ends fixed: accepted
    ]
    effort = note_effort(GOLD, suggestions)
    assert effort.actions == {
        Action.ACCEPT: 1,
        Action.REJECT: 1,
        Action.FIX_BOUNDARY: 1,
        Action.RELABEL: 2,
        Action.CREATE_SPAN: 1,
    }


def test_a_right_suggestion_is_not_spent_on_a_near_miss() -> None:
    # The near miss comes first by score; the exact one must still match the gold span.
    suggestions = [sug(span("S1", "Sign", 25, 29), 0.99), sug(span("S2", "Sign", 19, 29), 0.6)]
    effort = note_effort(GOLD, suggestions)
    assert effort.actions[Action.ACCEPT] == 1
    assert effort.actions[Action.REJECT] == 1
    assert Action.FIX_BOUNDARY not in effort.actions


def test_relations_are_relabelled_rejected_or_created() -> None:
    spans = [sug(span("S1", "Drug", 46, 53)), sug(span("S2", "Sign", 34, 39)),
             sug(span("S3", "Sign", 19, 29))]
    relabelled = note_effort(GOLD, [*spans, sug(Relation("Q1", "treats", "S1", "S2"), 0.3)])
    assert relabelled.actions.get(Action.RELABEL) == 1
    assert Action.CREATE_RELATION not in relabelled.actions
    wrong_pair = note_effort(GOLD, [*spans, sug(Relation("Q1", "cause", "S1", "S3"), 0.3)])
    assert wrong_pair.actions.get(Action.REJECT) == 1
    assert wrong_pair.actions.get(Action.CREATE_RELATION) == 1
    reversed_ = note_effort(GOLD, [*spans, sug(Relation("Q1", "cause", "S2", "S1"), 0.3)],
                           symmetric={"cause"})
    assert reversed_.actions.get(Action.ACCEPT) == 1  # the relation: the spans went in bulk
    assert Action.CREATE_RELATION not in reversed_.actions


def test_bulk_accept_from_three_right_suggestions_above_the_threshold() -> None:
    right = [sug(span("S1", "Sign", 19, 29)), sug(span("S2", "Sign", 34, 39)),
             sug(span("S3", "Drug", 46, 53)), sug(span("S9", "Sign", 0, 7))]
    effort = note_effort(GOLD, [*right, sug(Relation("Q1", "cause", "S3", "S1"), 0.95)])
    assert effort.bulk_presses == 1
    assert effort.actions[Action.BULK_ACCEPT] == 3
    assert effort.actions[Action.REJECT] == 1  # a wrong span taken in bulk is deleted
    assert effort.actions[Action.REMOVE_RELATION] == 1  # a wrong relation taken in bulk
    two = note_effort(GOLD, right[:2])
    assert two.bulk_presses == 0 and two.actions[Action.ACCEPT] == 2
    below = note_effort(GOLD, right[:3], threshold=0.95)
    assert below.bulk_presses == 0 and below.actions[Action.ACCEPT] == 3


def test_seconds_follow_the_keystroke_level_costs() -> None:
    costs = Costs()
    effort = note_effort(GOLD, [sug(span("S1", "Sign", 19, 29), 0.5)])
    words = len(TEXT.split())
    actions = costs.accept + 3 * costs.create_span + costs.create_relation
    expected = words * costs.read_per_word + actions
    assert effort.seconds(costs) == pytest.approx(expected)
    scratch = words * costs.read_per_word + 4 * costs.create_span + costs.create_relation
    assert effort.scratch_seconds(costs) == pytest.approx(scratch)
    # perfect suggestions cost less than scratch, and no suggestion costs exactly scratch
    perfect = note_effort(GOLD, [sug(s, 0.5) for s in GOLD.spans]
                          + [sug(r, 0.5) for r in GOLD.relations])
    assert perfect.seconds(costs) < perfect.scratch_seconds(costs)
    none = note_effort(GOLD, [])
    assert none.seconds(costs) == pytest.approx(none.scratch_seconds(costs))


def test_effort_over_notes_round_trips_and_refuses_bad_json() -> None:
    notes = [note_effort(GOLD, [sug(span("S1", "Sign", 19, 29))]), note_effort(GOLD, [])]
    effort = Effort.of(notes)
    assert effort.notes == 2 and effort.words == 2 * len(TEXT.split())
    assert effort.actions[Action.CREATE_SPAN] == 7
    assert 0 < effort.share < 1
    again = Effort.from_dict(effort.to_dict())
    assert again == effort and again.seconds == pytest.approx(effort.seconds)
    data = effort.to_dict()
    data["actions"] = {"wave hands": 1}
    with pytest.raises(ValueError, match="effort: unknown action 'wave hands'"):
        Effort.from_dict(data)
    with pytest.raises(ValueError, match="keys"):
        Effort.from_dict({"notes": 1})
    with pytest.raises(ValueError, match="`accept` must be a number of seconds >= 0"):
        Costs(accept=-1)
    with pytest.raises(ValueError, match="unknown cost"):
        Costs.from_dict({"typing": 1.0})


def _timed(costs: Costs, n: int, seed: int = 0) -> list[tuple[NoteEffort, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        actions = {a: int(rng.integers(0, 12)) for a in Action}
        note = NoteEffort(int(rng.integers(100, 900)), actions, {Action.CREATE_SPAN: 10})
        out.append((note, note.seconds(costs) * float(rng.normal(1, 0.02))))
    return out


def test_costs_are_fitted_to_logged_time_once_there_are_enough_notes() -> None:
    slow = Costs(accept=4.0, create_span=9.0, read_per_word=0.4)
    assert fit_costs(_timed(slow, 19)) is None
    fitted = fit_costs(_timed(slow, 200))
    assert fitted is not None and fitted.source == "a fit to the logged time of 200 notes"
    assert fitted.accept == pytest.approx(4.0, rel=0.15)
    assert fitted.create_span == pytest.approx(9.0, rel=0.1)
    assert fitted.read_per_word == pytest.approx(0.4, rel=0.1)
    # untimed notes are not evidence
    assert fit_costs([(n, 0.0) for n, _ in _timed(slow, 50)]) is None


def test_a_fit_never_prices_an_action_below_zero() -> None:
    # Notes timed as if creating a span saved time: the fit holds that cost at zero.
    odd = [(NoteEffort(100, {Action.CREATE_SPAN: k}, {}), max(60.0 - 3 * k, 1.0))
           for k in range(40)]
    fitted = fit_costs(odd)
    assert fitted is not None
    assert min(fitted.to_dict()[k] for k in fitted.to_dict() if k != "source") >= 0
