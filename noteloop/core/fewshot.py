"""Leave-one-dataset-out transfer: zero- and few-shot curves on a held-out corpus.

The experiment of Peng et al. 2025: a model is instruction-tuned on several *source*
corpora at once (both tasks, each corpus under its own schema), then used on a *target*
corpus it never saw, with 0, 5, 10... of the target's training documents. Each point is
measured twice on the same target documents:

* ``start = "multitask"``: training continues from the multi-task starting point;
* ``start = "base"``: the single-task model, trained from the base model on the target
  documents alone (at 0 shots: the base model prompted as it is, for a backend that can
  answer without training; a backend that cannot suggests nothing and scores 0).

**No mapping between schemas.** Every prompt names the target's own entity and relation
types with their definitions (:func:`with_definitions` adds definitions a corpus lacks),
so a model tuned to *follow type definitions* on other corpora can follow new ones. This
is what makes zero-shot possible at all, and it is what the experiment measures.

The k-shot documents are the first k of one seeded permutation of the target's training
part, so 5 shots are inside 10 shots and both arms see the same notes.

The result is JSON (:meth:`TransferResult.to_dict`)::

    {"target": str, "sources": [str], "backend": str, "seed": int, "shots": [int],
     "n_test": int, "multitask": {"n_docs": int, "train_seconds": float} | null,
     "points": [{"start": "multitask" | "base", "shots": int, "trained": bool,
                 "train_seconds": float, "predict_seconds": float,
                 "entity": {"strict": {"p", "r", "f1"}, "lenient": {"p", "r", "f1"}},
                 "relation": {"p", "r", "f1"}, "parse": {kind: count}}]}

Pure apart from the callables it is given.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from noteloop.core.errors import ConfigError, LineError
from noteloop.core.metrics import evaluate
from noteloop.core.model.base import Extractor
from noteloop.core.schema import Document, LabelSchema
from noteloop.core.simulate import Scores, restrict_document, restrict_schema

STARTS = ("multitask", "base")
_SENTENCE_END = re.compile(r"[.!?]\s+|\n")


@dataclass(frozen=True)
class Corpus:
    """An annotated corpus under its own schema, split into training and test notes."""

    name: str
    schema: LabelSchema
    train: tuple[Document, ...]
    test: tuple[Document, ...]
    # What reading it left out (every problem of each refused file) or mended/skipped.
    refused: tuple[LineError, ...] = ()
    notes: tuple[LineError, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", tuple(self.train))
        object.__setattr__(self, "test", tuple(self.test))
        object.__setattr__(self, "refused", tuple(self.refused))
        object.__setattr__(self, "notes", tuple(self.notes))

    def read_summary(self) -> dict[str, Any]:
        """What a results JSON records of reading the corpus; empty when nothing happened."""
        if not self.refused and not self.notes:
            return {}
        return {
            "refused_files": sorted({e.path for e in self.refused}),
            "refused": [str(e) for e in self.refused],
            "notes": [str(n) for n in self.notes],
        }


@dataclass(frozen=True)
class TransferPoint:
    start: str
    shots: int
    trained: bool
    train_seconds: float
    predict_seconds: float
    entity_strict: Scores
    entity_lenient: Scores
    relation: Scores
    parse: Mapping[str, int] = field(default_factory=dict)
    # Relations predicted between the gold entities: the relation task alone, which the
    # end-to-end score above hides while entity F1 is low. None: the target has no
    # relation types, or there was no model to ask.
    relation_gold_entities: Scores | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "shots": self.shots,
            "trained": self.trained,
            "train_seconds": self.train_seconds,
            "predict_seconds": self.predict_seconds,
            "entity": {"strict": self.entity_strict.to_dict(),
                       "lenient": self.entity_lenient.to_dict()},
            "relation": self.relation.to_dict(),
            "relation_gold_entities": (None if self.relation_gold_entities is None
                                       else self.relation_gold_entities.to_dict()),
            "parse": dict(self.parse),
        }


@dataclass(frozen=True)
class TransferResult:
    target: str
    sources: tuple[str, ...]
    backend: str
    seed: int
    shots: tuple[int, ...]
    n_test: int
    multitask: Mapping[str, Any] | None
    points: tuple[TransferPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "sources": list(self.sources),
            "backend": self.backend,
            "seed": self.seed,
            "shots": list(self.shots),
            "n_test": self.n_test,
            "multitask": None if self.multitask is None else dict(self.multitask),
            "points": [p.to_dict() for p in self.points],
        }


# --------------------------------------------------------------------------- preparing corpora


def with_definitions(schema: LabelSchema, definitions: Mapping[str, str]) -> LabelSchema:
    """The schema with ``definitions`` (type name -> text) as the descriptions of the
    entity and relation types that have none; types it does not name are left as they are."""
    entities = tuple(
        e if e.description or e.name not in definitions
        else replace(e, description=definitions[e.name])
        for e in schema.entity_types
    )
    relations = tuple(
        r if r.description or r.name not in definitions
        else replace(r, description=definitions[r.name])
        for r in schema.relation_types
    )
    return replace(schema, entity_types=entities, relation_types=relations)


def top_types(docs: Sequence[Document], schema: LabelSchema, n: int) -> list[str]:
    """The ``n`` entity types with the most spans in ``docs`` (schema order breaks ties)."""
    counts = Counter(s.label for d in docs for s in d.spans)
    order = {name: i for i, name in enumerate(schema.entity_names)}
    ranked = sorted(schema.entity_names, key=lambda name: (-counts[name], order[name]))
    return ranked[:n]


def clip_document(doc: Document, max_words: int) -> Document:
    """The note's beginning: about ``max_words`` words, cut after a sentence where one
    ends in the second half; only spans wholly inside are kept, and the relations between
    them. A shorter note is returned as it is."""
    words = list(re.finditer(r"\S+", doc.text))
    if len(words) <= max_words:
        return doc
    limit = words[max_words - 1].end()
    ends = [m.end() for m in _SENTENCE_END.finditer(doc.text, 0, limit + 1)]
    cut = ends[-1] if ends and ends[-1] >= limit // 2 else limit
    spans = [s for s in doc.spans if s.end <= cut]
    ids = {s.id for s in spans}
    relations = [r for r in doc.relations if {r.head, r.tail} <= ids]
    equivalences = [e for e in doc.equivalences if set(e.members) <= ids]
    clipped = doc.with_annotations(spans, relations, equivalences)
    return replace(clipped, text=doc.text[:cut].rstrip())


def prepare(corpus: Corpus, *, max_words: int = 0, n_types: int = 0,
            definitions: Mapping[str, str] | None = None) -> Corpus:
    """The corpus reduced for a quick run (``max_words``: clipped notes; ``n_types``: its
    most frequent entity types only; 0 = no reduction) and with ``definitions`` added."""
    schema = corpus.schema
    train, test = list(corpus.train), list(corpus.test)
    if n_types:
        keep = top_types(train, schema, n_types)
        schema = restrict_schema(schema, keep, relations=True)
        train = [restrict_document(d, keep, True) for d in train]
        test = [restrict_document(d, keep, True) for d in test]
    if max_words:
        train = [clip_document(d, max_words) for d in train]
        test = [clip_document(d, max_words) for d in test]
    return Corpus(corpus.name, with_definitions(schema, definitions or {}), tuple(train),
                  tuple(test))


def sample(docs: Sequence[Document], n: int, seed: int) -> list[Document]:
    """The first ``n`` of a seeded permutation (by id, so the input order does not
    matter); all of them when ``n`` is 0 or more than there are."""
    ranked = sorted(docs, key=lambda d: d.id)
    order = np.random.default_rng(seed).permutation(len(ranked))
    picked = [ranked[i] for i in order]
    return picked if n <= 0 else picked[:n]


# --------------------------------------------------------------------------- the experiment

# fresh(use_multitask) -> a new, untrained extractor; pretrain(datasets) trains and keeps
# the multi-task starting point that fresh(True) then starts from, returning its seconds.
Fresh = Callable[[bool], Extractor]
Pretrain = Callable[[Sequence[tuple[Sequence[Document], LabelSchema]]], float]
OnPoint = Callable[[TransferPoint], None]


def check_shots(shots: Sequence[int], available: int) -> tuple[int, ...]:
    """Sorted distinct shot counts; refuses negatives and counts above ``available``."""
    if not shots:
        raise ConfigError("`shots` must name at least one number of target documents")
    bad = [k for k in shots if isinstance(k, bool) or not isinstance(k, int) or k < 0]
    if bad:
        raise ConfigError(f"`shots` must be integers >= 0, got {bad}")
    too_many = [k for k in shots if k > available]
    if too_many:
        raise ConfigError(
            f"`shots` {too_many} exceed the target's {available} training documents"
        )
    return tuple(sorted(set(shots)))


def transfer_curves(
    sources: Sequence[Corpus],
    target: Corpus,
    shots: Sequence[int],
    fresh: Fresh,
    pretrain: Pretrain | None,
    *,
    backend: str,
    seed: int = 0,
    can_zero_shot: bool = True,
    relations: bool = True,
    on_point: OnPoint | None = None,
) -> TransferResult:
    """Runs the experiment (see the module docstring); ``pretrain`` None skips the
    multi-task arm (a backend without a shared starting point); ``relations`` False
    (concepts only) skips the relation task on gold entities.

    Raises:
        ValueError: no sources for the multi-task arm, a source that is the target, bad
            shot counts, or a target without test documents.
    """
    _check_corpora(sources, target, pretrain is not None)
    ks = check_shots(shots, len(target.train))
    pool = sample(target.train, 0, seed)
    multitask = None
    points: list[TransferPoint] = []

    def add(point: TransferPoint) -> None:
        points.append(point)
        if on_point is not None:
            on_point(point)

    if pretrain is not None:
        seconds = pretrain([(c.train, c.schema) for c in sources])
        multitask = {"n_docs": sum(len(c.train) for c in sources), "train_seconds": seconds}
        for k in ks:
            add(_point(fresh(True), "multitask", k, pool[:k], target, True, relations))
    for k in ks:
        add(_point(fresh(False), "base", k, pool[:k], target, k > 0 or can_zero_shot,
                   relations))
    return TransferResult(target.name, tuple(c.name for c in sources), backend, seed, ks,
                          len(target.test), multitask, tuple(points))


def _check_corpora(sources: Sequence[Corpus], target: Corpus, multitask: bool) -> None:
    if multitask and not sources:
        raise ConfigError("the multi-task arm needs at least one source corpus (--train)")
    if any(c.name == target.name for c in sources):
        raise ConfigError(f"the target {target.name!r} is also a source: leave it out")
    if not target.test:
        raise ConfigError(f"target {target.name!r} has no test documents")


def _point(extractor: Extractor, start: str, k: int, docs: Sequence[Document],
           target: Corpus, can_predict: bool, relations: bool) -> TransferPoint:
    """Trains (``docs`` may be empty: zero-shot) and scores on the target's test notes."""
    began = time.perf_counter()
    if can_predict:
        extractor.train(docs, target.schema)
    train_seconds = time.perf_counter() - began
    began = time.perf_counter()
    test = list(target.test)
    if can_predict:
        preds = extractor.predict([d.without_annotations() for d in test])
        pred_docs = [p.as_document(d.text) for p, d in zip(preds, test, strict=True)]
    else:  # no model: nothing is suggested
        pred_docs = [d.without_annotations() for d in test]
    symmetric = {rt.name for rt in target.schema.relation_types if rt.symmetric}
    ev = evaluate(test, pred_docs, symmetric=symmetric, n_bootstrap=0)
    parse = dict(getattr(extractor, "parse_report", {}) or {}) if can_predict else {}
    predict_seconds = time.perf_counter() - began
    given = None
    if can_predict and relations and target.schema.relation_types:
        given = _relations_on_gold_entities(extractor, test, symmetric)
    return TransferPoint(start, k, can_predict, train_seconds, predict_seconds,
                         Scores.from_prf(ev.entity_strict), Scores.from_prf(ev.entity_lenient),
                         Scores.from_prf(ev.relation), parse, given)


def _relations_on_gold_entities(extractor: Extractor, test: Sequence[Document],
                                symmetric: set[str]) -> Scores:
    """Relation F1 when the model is handed the gold entities and asked only for relations."""
    entities_only = [d.with_annotations(spans=d.spans) for d in test]
    preds = extractor.predict(entities_only, given_spans=True)
    pred_docs = [p.as_document(d.text) for p, d in zip(preds, test, strict=True)]
    return Scores.from_prf(evaluate(test, pred_docs, symmetric=symmetric, n_bootstrap=0).relation)
