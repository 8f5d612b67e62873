"""Held-out gold of the pool: which notes a round keeps aside, and how it scores them.

Once the gold is large enough, each round trains on most of it and keeps a share aside
to decide what a fixed schedule can only guess: when to stop training (the epoch whose
model scored best on the held-out notes) and the relation thresholds
(:mod:`noteloop.core.thresholds`). Below that size every note is worth more as training
data than as a judge, and the fixed schedule of ``EncoderConfig.epochs_for`` applies.

Which notes are held out depends only on their ids (a hash), not on the order they were
annotated in: from one round to the next the held-out set changes little, so rounds
are judged alike. No torch here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from noteloop.core.metrics import Evaluation
from noteloop.core.schema import Document


def split_holdout(
    docs: Sequence[Document], share: float, min_docs: int
) -> tuple[list[Document], list[Document]]:
    """(training notes, held-out notes): ``share`` of the notes, at least 1, held out
    when there are at least ``min_docs`` of them; none otherwise. Order is kept."""
    if share <= 0 or len(docs) < max(min_docs, 2):
        return list(docs), []
    k = max(1, round(share * len(docs)))
    held = set(sorted(range(len(docs)), key=lambda i: _rank(docs[i].id))[:k])
    return ([d for i, d in enumerate(docs) if i not in held],
            [d for i, d in enumerate(docs) if i in held])


def _rank(doc_id: str) -> str:
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()


def held_out_score(result: Evaluation, has_relations: bool) -> float:
    """What a round is judged by: strict entity F1, averaged with end-to-end relation F1
    when the schema has relations (a round that finds the spans but loses every relation
    is not the better one)."""
    strict = result.entity_strict.f1
    return (strict + result.relation.f1) / 2 if has_relations else strict
