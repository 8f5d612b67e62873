"""What an annotator does to turn a note's suggestions into its gold, and what that costs.

The actions, one taxonomy for the effort figures and the acceptance figures:

- ``accept``: a right suggestion taken one at a time (step to it, judge it, Enter);
- ``bulk accept``: a right suggestion taken by "Accept ≥ threshold" (Shift+A), which the
  annotator still steps to and judges; the key press itself counts once per note;
- ``reject``: a suggestion that is not in the gold at all (Backspace);
- ``fix boundary``: a suggested span whose gold has other offsets (word nudges);
- ``relabel``: a suggested span or relation whose gold has another type (a label key);
- ``create span``: a gold span nothing suggested near it (drag over the words, label key);
- ``create relation``: a gold relation not suggested between its spans (two clicks);
- ``remove relation``: a wrong relation taken by the bulk accept, deleted afterwards.

Costs come from the keystroke-level model (Card, Moran & Newell 1980, "The keystroke-level
model for user performance time with interactive systems", CACM 23(7):396-410):
K = 0.28 s a keystroke (an average typist), P = 1.1 s pointing with the mouse, B = 0.1 s
pressing or releasing its button, H = 0.4 s moving a hand between keyboard and mouse,
M = 1.35 s deciding (mental preparation). Reading costs 60/238 s a word, the mean silent
reading rate of adults for non-fiction (Brysbaert 2019, "How many words do we read per
minute?", Journal of Memory and Language 109). Both ways of annotating read the whole note:
suggestions save actions, not reading. In the app the costs are refitted to the active
time annotators logged (:func:`fit_costs`) once there are enough submitted notes.

The simulated annotator matches suggestions to the gold one to one: same offsets and type
first, then same offsets, then the largest overlap; uses the bulk accept on a note where
at least three right suggestions score at or above the threshold (from the third, the
keystroke saved on each pays for the press); and draws what is left. Equivalences and
attributes are not counted.

Pure: no database, no model.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np

from noteloop.core.active import word_count
from noteloop.core.schema import Document, Relation, Span, Suggestion

# The widget's default "Accept ≥" threshold (Shift+A).
BULK_THRESHOLD = 0.8
# Right suggestions above the threshold from which the bulk accept pays off (see above).
BULK_FROM = 3

# Keystroke-level operators (Card, Moran & Newell 1980), seconds.
K, P, B, H, M = 0.28, 1.1, 0.1, 0.4, 1.35
READ_PER_WORD = 60 / 238  # Brysbaert 2019


class Action(StrEnum):
    ACCEPT = "accept"
    BULK_ACCEPT = "bulk accept"
    REJECT = "reject"
    FIX_BOUNDARY = "fix boundary"
    RELABEL = "relabel"
    CREATE_SPAN = "create span"
    CREATE_RELATION = "create relation"
    REMOVE_RELATION = "remove relation"


@dataclass(frozen=True)
class Costs:
    """Seconds per action, per word read and per bulk-accept key press; refuses a
    negative cost, naming it."""

    accept: float = K + M + K  # step, judge, Enter
    bulk_accept: float = K + M  # step, judge
    reject: float = K + M + K  # step, judge, Backspace
    fix_boundary: float = K + M + 2 * (2 * K)  # step, judge, two word nudges (Shift+arrow)
    relabel: float = K + M + K  # step, judge, label key
    create_span: float = M + H + (P + B + P + B) + H + K  # find, drag over it, label key
    create_relation: float = M + H + 2 * (P + 2 * B) + H + K  # click both ends, pick a type
    remove_relation: float = K + M + K
    read_per_word: float = READ_PER_WORD
    bulk_press: float = 2 * K  # Shift+A
    source: str = "the keystroke-level model"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "source" and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"`{f.name}` must be a number of seconds >= 0, got {value!r}")

    def of(self, action: Action) -> float:
        """Seconds one ``action`` takes."""
        return float(getattr(self, action.name.lower()))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Costs:
        """Costs from their JSON form; refuses unknown keys, naming them."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"unknown cost(s): {', '.join(extra)}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- one note


@dataclass(frozen=True)
class NoteEffort:
    """The actions one note needs with its suggestions, and from scratch."""

    words: int
    actions: Mapping[Action, int]
    scratch: Mapping[Action, int]
    bulk_presses: int = 0

    def seconds(self, costs: Costs) -> float:
        """Estimated seconds to reach the gold from the suggestions, reading included."""
        return _seconds(self.words, self.actions, self.bulk_presses, costs)

    def scratch_seconds(self, costs: Costs) -> float:
        """Estimated seconds to annotate the same gold with no suggestion."""
        return _seconds(self.words, self.scratch, 0, costs)


def _seconds(words: int, actions: Mapping[Action, int], presses: int, costs: Costs) -> float:
    done = sum(costs.of(a) * n for a, n in actions.items())
    return words * costs.read_per_word + presses * costs.bulk_press + done


def note_effort(
    gold: Document,
    suggestions: Sequence[Suggestion],
    *,
    symmetric: Collection[str] = (),
    threshold: float = BULK_THRESHOLD,
) -> NoteEffort:
    """The actions that turn ``suggestions`` (spans and relations of one note, relations
    naming suggested span ids) into ``gold``, and the ones ``gold`` needs from scratch.

    Args:
        gold: The note with its gold spans and relations.
        suggestions: What the model suggested for it (any order).
        symmetric: Relation types that hold in either direction.
        threshold: The bulk accept's score threshold.
    """
    spans = [s for s in suggestions if isinstance(s.item, Span)]
    rels = [s for s in suggestions if isinstance(s.item, Relation)]
    span_match, span_actions = _match_spans(spans, list(gold.spans))
    rel_actions = _match_relations(rels, span_match, gold.relations, set(symmetric))
    decided = span_actions + rel_actions
    right_above = sum(1 for s, acts in decided if acts == (Action.ACCEPT,) and s.score >= threshold)
    bulk = right_above >= BULK_FROM
    actions: Counter[Action] = Counter()
    for s, acts in decided:
        actions.update(_in_bulk(s, acts, bulk and s.score >= threshold))
    actions[Action.CREATE_SPAN] += len(gold.spans) - len(span_match)
    matched_rels = sum(1 for _, acts in rel_actions if acts != (Action.REJECT,))
    actions[Action.CREATE_RELATION] += len(gold.relations) - matched_rels
    scratch = Counter({Action.CREATE_SPAN: len(gold.spans),
                       Action.CREATE_RELATION: len(gold.relations)})
    return NoteEffort(word_count(gold.text), _nonzero(actions), _nonzero(scratch), int(bulk))


def _in_bulk(s: Suggestion, acts: tuple[Action, ...], taken: bool) -> tuple[Action, ...]:
    """A suggestion's actions when the bulk accept took it: a right one is a bulk accept;
    a wrong relation became gold and is removed; a wrong span is fixed, relabelled or
    deleted as it would have been while open (the same keys)."""
    if not taken:
        return acts
    if acts == (Action.ACCEPT,):
        return (Action.BULK_ACCEPT,)
    if isinstance(s.item, Relation) and acts == (Action.REJECT,):
        return (Action.REMOVE_RELATION,)
    return acts


def _nonzero(counts: Counter[Action]) -> dict[Action, int]:
    return {a: counts[a] for a in Action if counts[a] > 0}


def _match_spans(
    suggested: Sequence[Suggestion], gold: Sequence[Span]
) -> tuple[dict[str, str], list[tuple[Suggestion, tuple[Action, ...]]]]:
    """Suggested span id -> the gold span id it becomes, and each suggestion's actions.

    One to one, in three passes so a right suggestion is never spent on a near miss:
    same offsets and type, then same offsets, then the largest overlap.
    """
    left = {g.id: g for g in gold}
    match: dict[str, str] = {}
    acts: dict[str, tuple[Action, ...]] = {}
    order = sorted(suggested, key=lambda s: -s.score)
    # Dicts for the exact passes: a long note has hundreds of spans each way.
    passes = (
        (lambda sp: (sp.fragments, sp.label), (Action.ACCEPT,)),
        (lambda sp: sp.fragments, (Action.RELABEL,)),
    )
    for key, found in passes:
        index: dict[Any, list[str]] = defaultdict(list)
        for g in left.values():
            index[key(g)].append(g.id)
        for sug in order:
            span = sug.item
            if span.id in match or not index.get(key(span)):
                continue
            match[span.id] = left.pop(index[key(span)].pop(0)).id
            acts[span.id] = found
    for sug in order:
        span = sug.item
        if span.id in match:
            continue
        hit = _most_overlap(span, left.values())
        if hit is None:
            acts[span.id] = (Action.REJECT,)
            continue
        match[span.id] = left.pop(hit.id).id
        relabel = (Action.RELABEL,) if hit.label != span.label else ()
        acts[span.id] = (Action.FIX_BOUNDARY, *relabel)
    return match, [(s, acts[s.item.id]) for s in suggested]


def _most_overlap(span: Any, candidates: Collection[Span]) -> Span | None:
    """The gold span sharing the most characters with ``span`` (same type first)."""
    best, best_key = None, (0, False)
    for g in candidates:
        shared = _shared_chars(span.fragments, g.fragments)
        key = (shared, g.label == span.label)
        if shared > 0 and key > best_key:
            best, best_key = g, key
    return best


def _shared_chars(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def _match_relations(
    suggested: Sequence[Suggestion],
    span_match: Mapping[str, str],
    gold: Sequence[Relation],
    symmetric: set[str],
) -> list[tuple[Suggestion, tuple[Action, ...]]]:
    """Each suggested relation's actions: accepted when its ends became the gold relation's
    ends with its type, relabelled when only the type differs, else rejected."""
    by_ends: dict[tuple[str, str], list[Relation]] = defaultdict(list)
    for g in gold:
        by_ends[(g.head, g.tail)].append(g)
        if g.label in symmetric:
            by_ends[(g.tail, g.head)].append(g)
    used: set[int] = set()  # id() of the gold relations taken: a symmetric one is listed twice
    out: list[tuple[Suggestion, tuple[Action, ...]]] = []
    for sug in sorted(suggested, key=lambda s: -s.score):
        rel = sug.item
        head, tail = span_match.get(rel.head), span_match.get(rel.tail)
        free = [] if head is None or tail is None else [
            g for g in by_ends.get((head, tail), []) if id(g) not in used]
        exact = next((g for g in free if g.label == rel.label), None)
        hit = exact or next(iter(free), None)
        if hit is None:
            out.append((sug, (Action.REJECT,)))
            continue
        used.add(id(hit))
        out.append((sug, (Action.ACCEPT,) if exact else (Action.RELABEL,)))
    return out


# --------------------------------------------------------------------------- many notes


@dataclass(frozen=True)
class Effort:
    """Actions summed over notes, with the costs that price them."""

    notes: int
    words: int
    actions: Mapping[Action, int]
    scratch: Mapping[Action, int]
    bulk_presses: int = 0
    costs: Costs = field(default_factory=Costs)

    @classmethod
    def of(cls, notes: Sequence[NoteEffort], costs: Costs | None = None) -> Effort:
        actions: Counter[Action] = Counter()
        scratch: Counter[Action] = Counter()
        for n in notes:
            actions.update(n.actions)
            scratch.update(n.scratch)
        return cls(len(notes), sum(n.words for n in notes), _nonzero(actions), _nonzero(scratch),
                   sum(n.bulk_presses for n in notes), costs or Costs())

    @property
    def seconds(self) -> float:
        """Estimated seconds to reach the gold of every note from the suggestions."""
        return _seconds(self.words, self.actions, self.bulk_presses, self.costs)

    @property
    def scratch_seconds(self) -> float:
        """Estimated seconds to annotate the same gold with no suggestion."""
        return _seconds(self.words, self.scratch, 0, self.costs)

    @property
    def share(self) -> float | None:
        """Seconds with suggestions as a share of from scratch; None for no work at all."""
        return self.seconds / self.scratch_seconds if self.scratch_seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "words": self.words,
            "actions": {a.value: n for a, n in self.actions.items()},
            "scratch": {a.value: n for a, n in self.scratch.items()},
            "bulk_presses": self.bulk_presses,
            "costs": self.costs.to_dict(),
            "seconds": self.seconds,
            "scratch_seconds": self.scratch_seconds,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "effort") -> Effort:
        """An effort from its JSON form; the seconds are recomputed from the counts."""
        keys = {"notes", "words", "actions", "scratch", "bulk_presses", "costs", "seconds",
                "scratch_seconds"}
        if not isinstance(data, Mapping) or set(data) != keys:
            raise ValueError(f"{where} must be an object with the keys {', '.join(sorted(keys))}")
        try:
            return cls(int(data["notes"]), int(data["words"]), _actions(data["actions"]),
                       _actions(data["scratch"]), int(data["bulk_presses"]),
                       Costs.from_dict(data["costs"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def _actions(data: Mapping[str, Any]) -> dict[Action, int]:
    """Action counts from their JSON form; refuses an unknown action, naming it."""
    out = {}
    for name, n in data.items():
        try:
            action = Action(name)
        except ValueError:
            raise ValueError(f"unknown action {name!r}") from None
        out[action] = int(n)
    return out


# --------------------------------------------------------------------------- fitted costs

# Below this many timed notes the keystroke-level costs stand: a fit to a handful of notes
# would follow one annotator's coffee break.
MIN_FIT_NOTES = 20
# How many notes' worth of evidence the keystroke-level costs count for in a fit: they
# keep an action seen on few notes near its model cost instead of at whatever fits noise.
PRIOR_NOTES = 10
_FITTED = (*(a.name.lower() for a in Action), "read_per_word")


def fit_costs(
    timed: Sequence[tuple[NoteEffort, float]],
    prior: Costs | None = None,
    *,
    min_notes: int = MIN_FIT_NOTES,
) -> Costs | None:
    """Costs fitted to the active seconds annotators logged on notes whose actions are
    known: least squares of seconds on words and action counts, pulled towards ``prior``
    (the keystroke-level costs) by ``PRIOR_NOTES`` notes' worth of weight, no cost below 0.
    None with fewer than ``min_notes`` notes timed above 0 s.
    """
    prior = prior or Costs()
    rows = [(n, s) for n, s in timed if s > 0]
    if len(rows) < min_notes:
        return None
    x = np.array([_design_row(n) for n, _ in rows], dtype=float)
    t = np.array([s - n.bulk_presses * prior.bulk_press for n, s in rows], dtype=float)
    c0 = np.array([getattr(prior, name) for name in _FITTED], dtype=float)
    # Each cost's pull scales with its column, so the prior weighs like PRIOR_NOTES notes.
    weight = np.sqrt(PRIOR_NOTES * (x**2).mean(axis=0) + 1e-9)
    fitted = _ridge_nonnegative(x, t, c0, weight)
    values = dict(zip(_FITTED, fitted.tolist(), strict=True))
    return Costs(**values, bulk_press=prior.bulk_press,
                 source=f"a fit to the logged time of {len(rows)} notes")


def _design_row(n: NoteEffort) -> list[float]:
    return [*(float(n.actions.get(a, 0)) for a in Action), float(n.words)]


def _ridge_nonnegative(
    x: np.ndarray, t: np.ndarray, c0: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """argmin |x c - t|^2 + sum (w_j (c_j - c0_j))^2 with c >= 0: the ridge solution,
    with any cost that comes out negative held at 0 and the rest solved again."""
    free = np.ones(len(c0), dtype=bool)
    c = np.zeros(len(c0))
    for _ in range(len(c0)):
        a = np.vstack([x[:, free], np.diag(weight[free])])
        b = np.concatenate([t, weight[free] * c0[free]])
        c[free] = np.linalg.lstsq(a, b, rcond=None)[0]
        c[~free] = 0.0
        if (c >= 0).all():
            return c
        free &= c > 0  # a held cost is 0, so it adds nothing to the targets
    return np.clip(c, 0, None)
