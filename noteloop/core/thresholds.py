"""Decision thresholds chosen on held-out gold: the least score a suggestion needs.

A model's probabilities are not calibrated alike for every type: on MACCROBAT2020 a
relation type seen a thousand times is suggested sensibly at 0.5, while a rare one is
either never that sure or sure of the wrong pairs. So each relation type gets its own
threshold, the one that maximised its F1 on held-out gold notes that the model did not
train on, end to end (the relations between the model's own predicted spans, as an
annotator sees them). A type with too little held-out gold keeps the default: a
threshold fitted to two examples is noise.

Pure Python over the project's own metrics: the backend hands in its held-out
predictions with every candidate above the lowest threshold, and gets a dict back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from noteloop.core.metrics import match_relations
from noteloop.core.schema import Document

GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10, 0.15 ... 0.90
MIN_GOLD = 5  # held-out gold relations of a type needed to choose its threshold


@dataclass(frozen=True, slots=True)
class Outcome:
    """One predicted relation on a held-out note: its type, score and whether it is gold."""

    label: str
    score: float
    correct: bool


def relation_outcomes(
    gold: Document, pred: Document, scores: Sequence[float], *, symmetric: Set[str] = frozenset()
) -> list[Outcome]:
    """Each of ``pred``'s relations (scored ``scores``, in order) judged against ``gold``
    with the evaluation's own strict matching."""
    matched = {j for _, j in match_relations(gold, pred, symmetric=symmetric)}
    return [Outcome(r.label, float(s), j in matched)
            for j, (r, s) in enumerate(zip(pred.relations, scores, strict=True))]


def best_thresholds(
    outcomes: Sequence[Outcome], gold_counts: Mapping[str, int], default: float,
    grid: Sequence[float] = GRID, min_gold: int = MIN_GOLD,
) -> dict[str, float]:
    """The F1-best threshold of every type with at least ``min_gold`` held-out gold
    relations; the others keep ``default``. Ties go to the threshold nearest ``default``
    (no evidence to move further)."""
    by_label: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_label.setdefault(o.label, []).append(o)
    chosen = {}
    for label, n_gold in gold_counts.items():
        found = by_label.get(label, [])
        if n_gold < min_gold:
            chosen[label] = default
            continue
        f1 = {t: _f1(found, n_gold, t) for t in grid}
        chosen[label] = max(grid, key=lambda t: (round(f1[t], 9), -abs(t - default)))
    return chosen


def _f1(found: Sequence[Outcome], n_gold: int, threshold: float) -> float:
    kept = [o for o in found if o.score >= threshold]
    tp = sum(o.correct for o in kept)
    return 2 * tp / (len(kept) + n_gold) if kept or n_gold else 0.0


def gold_relation_counts(docs: Sequence[Document]) -> Counter[str]:
    return Counter(r.label for d in docs for r in d.relations)
