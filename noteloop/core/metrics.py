"""Evaluation of spans and relations against gold: counts, P/R/F1, bootstrap intervals.

Conventions that every score in the app, the CLI and the learning curves follows:

* **Zero when undefined.** precision = tp / (tp + fp) and recall = tp / (tp + fn) are 0.0
  when their denominator is 0 (no predictions, no gold), and F1 = 2tp / (2tp + fp + fn)
  is 0.0 when nothing was predicted and nothing was gold. "Nothing to measure" must not
  look like a perfect score on a curve.
* **Micro-averaged.** Per-document counts are summed, then P/R/F1 are computed once, so a
  note with many concepts weighs more than a note with one.
* **Strict spans:** same label and the same fragments (exact offsets; a discontinuous span
  must match every fragment). Matching is a multiset intersection: two identical
  predictions of one gold span score one TP and one FP.
* **Lenient spans:** same label and at least one shared character between fragments (a
  span lying in the gap of a discontinuous span does not overlap it). Matching is
  one-to-one so duplicates and split predictions cannot inflate the score: exact pairs are
  made first (every strict TP is a lenient TP), then a maximum matching pairs the rest,
  trying larger overlaps first. A prediction covering two gold spans scores one TP and
  one FN; a gold span split into two predictions scores one TP and one FP.
* **Relations:** correct when the label and the direction are right and both arguments
  match gold arguments (strict by default; ``lenient_args`` uses the lenient span rule).
  Labels in ``symmetric`` match in either direction. Relations are paired one-to-one with
  the same rule as spans.
* **Bootstrap:** 95% percentile intervals of micro F1 from resampling documents with
  replacement; only the per-document counts are resampled, nothing is matched again.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import numpy as np

from noteloop.core.schema import Document, Span

# The three scored tasks, in the order of the bootstrap count matrix.
TASKS = ("entity_strict", "entity_lenient", "relation")

Pair = tuple[int, int]  # (index into the gold items, index into the predicted items)
Score = Callable[[int, int], int]  # > 0 when a gold and a predicted item may be paired
_Argument = tuple[str, Span, Span]  # a relation as (label, head span, tail span)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True, slots=True)
class PRF:
    """True positives, false positives and false negatives, with the scores they give.

    Every score is 0.0 when undefined (see the module docstring). Adding two PRFs sums the
    counts, which is micro-aggregation: ``sum(prfs, PRF())``.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "fn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"PRF {name} must be a non-negative integer, got {value!r}")

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        # Equal to the harmonic mean of P and R whenever that is defined, and 0.0 otherwise,
        # without a special case; the bootstrap uses the same formula on arrays.
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def __add__(self, other: PRF) -> PRF:
        if not isinstance(other, PRF):
            return NotImplemented
        return PRF(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "p": self.precision,
            "r": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _label_counts(
    gold: Sequence[str], pred: Sequence[str], pairs: Sequence[Pair]
) -> dict[str, PRF]:
    """Per-label counts from the labels of gold and predicted items and their pairing.

    Paired items always share a label, so a pair counts once, as a TP of that label.
    """
    tp = Counter(gold[g] for g, _ in pairs)
    fn = Counter(gold) - tp
    fp = Counter(pred) - tp
    return {label: PRF(tp[label], fp[label], fn[label]) for label in sorted({*gold, *pred})}


def micro(per_label: Mapping[str, PRF]) -> PRF:
    """The micro-aggregate of per-label counts."""
    return sum(per_label.values(), PRF())


# --------------------------------------------------------------------------- pairing


def pair_exact(gold_keys: Sequence[Hashable], pred_keys: Sequence[Hashable]) -> list[Pair]:
    """Pairs items with equal keys, each used at most once (a multiset intersection).

    Public because agreement pairs spans by offsets alone with the same rule.
    """
    waiting: dict[Hashable, deque[int]] = defaultdict(deque)
    for j, key in enumerate(pred_keys):
        waiting[key].append(j)
    pairs = []
    for i, key in enumerate(gold_keys):
        if waiting.get(key):
            pairs.append((i, waiting[key].popleft()))
    return pairs


def _ranked(gold: int, preds: Sequence[int], score: Score) -> list[int]:
    """The predictions that may pair with ``gold``, best score first, then by index."""
    scored = sorted((-score(gold, p), p) for p in preds)
    return [p for neg, p in scored if neg < 0]


def _augment(
    gold: int, options: Mapping[int, list[int]], owner: dict[int, int], seen: set[int]
) -> bool:
    """Finds a prediction for ``gold``, moving earlier golds to other options if need be.

    Recursion depth is bounded by the pairs already made among one document's leftovers.
    """
    for pred in options[gold]:
        if pred in seen:
            continue
        seen.add(pred)
        if pred not in owner or _augment(owner[pred], options, owner, seen):
            owner[pred] = gold
            return True
    return False


def _pair_maximum(golds: Sequence[int], preds: Sequence[int], score: Score) -> list[Pair]:
    """A maximum one-to-one matching among pairs with a positive score (augmenting paths).

    Maximum rather than greedy: greedily, a prediction overlapping two gold spans could
    take the one that another prediction needed, and undercount. The counts are the same
    for every maximum matching; trying larger scores first only decides which pairs.
    """
    options = {g: _ranked(g, preds, score) for g in golds}
    owner: dict[int, int] = {}
    for gold in golds:
        _augment(gold, options, owner, set())
    return [(g, p) for p, g in owner.items()]


def _pair_up(
    gold_keys: Sequence[Hashable], pred_keys: Sequence[Hashable], score: Score | None
) -> list[Pair]:
    """Exact pairs first, then (when ``score`` is given) a maximum matching of the rest."""
    pairs = pair_exact(gold_keys, pred_keys)
    if score is not None:
        used_g, used_p = {g for g, _ in pairs}, {p for _, p in pairs}
        rest_g = [i for i in range(len(gold_keys)) if i not in used_g]
        rest_p = [j for j in range(len(pred_keys)) if j not in used_p]
        pairs += _pair_maximum(rest_g, rest_p, score)
    return sorted(pairs)


# --------------------------------------------------------------------------- spans


def _span_key(span: Span) -> tuple[str, tuple[tuple[int, int], ...]]:
    # Not Span.key(): attributes, notes and concept ids are not part of span extraction.
    return (span.label, span.fragments)


def fragment_overlap(a: Span, b: Span) -> int:
    """Characters shared by the fragments of ``a`` and ``b``.

    0 when one span lies in the gap of a discontinuous other: no character is shared.
    """
    if a.end <= b.start or b.end <= a.start:
        return 0
    return sum(
        max(0, min(ae, be) - max(ab, bb)) for ab, ae in a.fragments for bb, be in b.fragments
    )


def _lenient_overlap(gold: Span, pred: Span) -> int:
    return fragment_overlap(gold, pred) if gold.label == pred.label else 0


def match_spans(gold: Sequence[Span], pred: Sequence[Span], *, lenient: bool = False) -> list[Pair]:
    """One-to-one pairs of gold and predicted spans of one document.

    Args:
        gold: The gold spans.
        pred: The predicted spans (their ids play no part).
        lenient: Pair same-label spans that share a character, not only exact ones.

    Returns:
        Sorted ``(gold index, predicted index)`` pairs; each index occurs at most once.
    """

    def score(i: int, j: int) -> int:
        return _lenient_overlap(gold[i], pred[j])

    keys_g, keys_p = [_span_key(s) for s in gold], [_span_key(s) for s in pred]
    return _pair_up(keys_g, keys_p, score if lenient else None)


def span_counts(
    gold: Sequence[Span], pred: Sequence[Span], *, lenient: bool = False
) -> dict[str, PRF]:
    """Per-label TP/FP/FN of predicted spans against gold spans of one document."""
    pairs = match_spans(gold, pred, lenient=lenient)
    return _label_counts([s.label for s in gold], [s.label for s in pred], pairs)


# --------------------------------------------------------------------------- relations


def _arguments(doc: Document) -> list[_Argument]:
    """Each relation with its argument spans, looked up in its own document."""
    spans = {s.id: s for s in doc.spans}
    return [(r.label, spans[r.head], spans[r.tail]) for r in doc.relations]


def _relation_key(rel: _Argument, symmetric: Set[str]) -> tuple[Any, ...]:
    label, head, tail = rel
    ends = [_span_key(head), _span_key(tail)]
    if label in symmetric:
        ends.sort()  # one canonical order, so either direction gives the same key
    return (label, *ends)


def _arguments_overlap(g_head: Span, g_tail: Span, p_head: Span, p_tail: Span) -> int:
    """Characters shared by both argument pairs; 0 unless both match leniently."""
    head, tail = _lenient_overlap(g_head, p_head), _lenient_overlap(g_tail, p_tail)
    return head + tail if head and tail else 0


def _relation_overlap(gold: _Argument, pred: _Argument, symmetric: Set[str]) -> int:
    label, g_head, g_tail = gold
    if pred[0] != label:
        return 0
    best = _arguments_overlap(g_head, g_tail, pred[1], pred[2])
    if label in symmetric:
        best = max(best, _arguments_overlap(g_head, g_tail, pred[2], pred[1]))
    return best


def match_relations(
    gold: Document,
    pred: Document,
    *,
    symmetric: Set[str] = frozenset(),
    lenient_args: bool = False,
) -> list[Pair]:
    """One-to-one pairs of gold and predicted relations of one document.

    Args:
        gold: The gold document; its relations refer to its own spans.
        pred: The predicted document; its relations refer to its own (predicted) spans.
        symmetric: Relation labels that match in either direction.
        lenient_args: Arguments match when they share a character and a label, instead
            of having exactly the same offsets and label.

    Returns:
        Sorted ``(index into gold.relations, index into pred.relations)`` pairs.
    """
    rels_g, rels_p = _arguments(gold), _arguments(pred)

    def score(i: int, j: int) -> int:
        return _relation_overlap(rels_g[i], rels_p[j], symmetric)

    keys_g = [_relation_key(r, symmetric) for r in rels_g]
    keys_p = [_relation_key(r, symmetric) for r in rels_p]
    return _pair_up(keys_g, keys_p, score if lenient_args else None)


def relation_counts(
    gold: Document,
    pred: Document,
    *,
    symmetric: Set[str] = frozenset(),
    lenient_args: bool = False,
) -> dict[str, PRF]:
    """Per-label TP/FP/FN of predicted relations against the gold ones of one document."""
    pairs = match_relations(gold, pred, symmetric=symmetric, lenient_args=lenient_args)
    labels_g = [r.label for r in gold.relations]
    return _label_counts(labels_g, [r.label for r in pred.relations], pairs)


def document_counts(
    gold: Document,
    pred: Document,
    *,
    symmetric: Set[str] = frozenset(),
    lenient_args: bool = False,
) -> dict[str, dict[str, PRF]]:
    """Per-label counts of one document for each task of ``TASKS``."""
    return {
        "entity_strict": span_counts(gold.spans, pred.spans),
        "entity_lenient": span_counts(gold.spans, pred.spans, lenient=True),
        "relation": relation_counts(gold, pred, symmetric=symmetric, lenient_args=lenient_args),
    }


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Evaluation:
    """Micro scores, per-label scores and bootstrap intervals of a set of predictions.

    ``per_label`` and ``ci`` are keyed by task (``TASKS``); ``ci`` is empty when no
    bootstrap was asked for.
    """

    entity_strict: PRF
    entity_lenient: PRF
    relation: PRF
    per_label: Mapping[str, Mapping[str, PRF]]
    ci: Mapping[str, tuple[float, float]]
    n_docs: int
    lenient_args: bool = False
    n_bootstrap: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable, nested view (what a training job row stores)."""
        labels = {
            task: {label: prf.to_dict() for label, prf in by_label.items()}
            for task, by_label in self.per_label.items()
        }
        return {
            "entity": {
                "strict": self.entity_strict.to_dict(),
                "lenient": self.entity_lenient.to_dict(),
                "per_label": {
                    "strict": labels["entity_strict"],
                    "lenient": labels["entity_lenient"],
                },
            },
            "relation": {
                "micro": self.relation.to_dict(),
                "per_label": labels["relation"],
                "lenient_args": self.lenient_args,
            },
            "ci": {task: [low, high] for task, (low, high) in self.ci.items()},
            "n_docs": self.n_docs,
            "bootstrap": {"n": self.n_bootstrap, "seed": self.seed},
        }


def _by_id(docs: Iterable[Document], role: str) -> dict[str, Document]:
    out: dict[str, Document] = {}
    for doc in docs:
        if doc.id in out:
            raise ValueError(f"{role} documents: document id {doc.id} occurs more than once")
        out[doc.id] = doc
    return out


def _prediction_for(gold: Document, pred: Document | None) -> Document:
    if pred is None:
        return gold.without_annotations()  # nothing predicted: every gold item is a FN
    if pred.text != gold.text:
        raise ValueError(
            f"document {gold.id}: the predicted text differs from the gold text, "
            "so their offsets cannot be compared"
        )
    return pred


def _pair_documents(
    gold_docs: Sequence[Document], pred_docs: Sequence[Document]
) -> list[tuple[Document, Document]]:
    """Gold documents with their predictions, by id, in the order of ``gold_docs``."""
    gold = _by_id(gold_docs, "gold")
    preds = _by_id(pred_docs, "predicted")
    extra = [doc_id for doc_id in preds if doc_id not in gold]
    if extra:
        raise ValueError(f"prediction(s) for document(s) without gold: {', '.join(extra)}")
    if not gold:
        raise ValueError("no gold documents: there is nothing to evaluate against")
    return [(doc, _prediction_for(doc, preds.get(doc.id))) for doc in gold.values()]


def _sum_labels(per_doc: Iterable[Mapping[str, PRF]]) -> dict[str, PRF]:
    total: dict[str, PRF] = defaultdict(PRF)
    for by_label in per_doc:
        for label, prf in by_label.items():
            total[label] += prf
    return dict(sorted(total.items()))


def _count_matrix(per_doc: Sequence[Mapping[str, Mapping[str, PRF]]]) -> np.ndarray:
    """Micro counts per document: shape (documents, tasks, 3) for tp, fp, fn."""
    rows = []
    for counts in per_doc:
        totals = [micro(counts[task]) for task in TASKS]
        rows.append([[t.tp, t.fp, t.fn] for t in totals])
    return np.asarray(rows, dtype=np.int64).reshape(len(per_doc), len(TASKS), 3)


def _f1_array(counts: np.ndarray) -> np.ndarray:
    """F1 over the last axis (tp, fp, fn), 0.0 where undefined, as ``PRF.f1``."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros(den.shape), where=den > 0)


def bootstrap_f1_ci(
    counts: np.ndarray, *, n_bootstrap: int, seed: int
) -> list[tuple[float, float]]:
    """95% percentile intervals of micro F1 from resampling documents with replacement.

    Args:
        counts: Per-document counts, shape (documents, tasks, 3) for tp, fp, fn.
        n_bootstrap: Number of resamples (> 0).
        seed: Seed of the numpy Generator, so that an interval can be reproduced.

    Returns:
        One ``(2.5th percentile, 97.5th percentile)`` pair per task.
    """
    n_docs = counts.shape[0]
    rng = np.random.default_rng(seed)
    # Drawing n documents with replacement is the same as drawing how often each one is
    # drawn (multinomial); weighting the count matrix then needs no re-matching at all.
    # Memory is n_bootstrap x documents integers: 8 MB for 1,000 x 1,000.
    weights = rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=n_bootstrap)
    totals = (weights @ counts.reshape(n_docs, -1)).reshape(n_bootstrap, *counts.shape[1:])
    low, high = np.percentile(_f1_array(totals), [2.5, 97.5], axis=0)
    return [(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]


def evaluate(
    gold_docs: Sequence[Document],
    pred_docs: Sequence[Document],
    *,
    symmetric: Set[str] = frozenset(),
    lenient_args: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Scores predictions against gold, paired by document id.

    Args:
        gold_docs: The gold documents; each is scored once, in this order.
        pred_docs: Predictions; a gold document without one counts all its gold as FN.
        symmetric: Relation labels that match in either direction.
        lenient_args: Relation arguments match by the lenient span rule.
        n_bootstrap: Document resamples for the 95% intervals; 0 computes none.
        seed: Seed of the bootstrap, so the same call gives the same intervals.

    Returns:
        The micro and per-label scores, intervals of micro F1 and the document count.

    Raises:
        ValueError: A prediction for a document without gold (naming its id), a
            duplicate id, a prediction on another text, no gold documents, or a
            negative ``n_bootstrap``.
    """
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    per_doc = [
        document_counts(g, p, symmetric=symmetric, lenient_args=lenient_args)
        for g, p in _pair_documents(gold_docs, pred_docs)
    ]
    per_label = {task: _sum_labels(d[task] for d in per_doc) for task in TASKS}
    ci: dict[str, tuple[float, float]] = {}
    if n_bootstrap:
        bounds = bootstrap_f1_ci(_count_matrix(per_doc), n_bootstrap=n_bootstrap, seed=seed)
        ci = dict(zip(TASKS, bounds, strict=True))
    return Evaluation(
        entity_strict=micro(per_label["entity_strict"]),
        entity_lenient=micro(per_label["entity_lenient"]),
        relation=micro(per_label["relation"]),
        per_label=per_label,
        ci=ci,
        n_docs=len(per_doc),
        lenient_args=lenient_args,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


# --------------------------------------------------------------------------- representability


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    """How many gold spans a flat tagging cannot express.

    ``affected`` counts spans that are lost to an overlap or discontinuous, once each even
    when both; ``fraction`` is ``affected / total`` (0.0 without spans).
    """

    representation: str
    total: int
    lost_overlap: int
    discontinuous: int
    affected: int

    @property
    def fraction(self) -> float:
        return _ratio(self.affected, self.total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "representation": self.representation,
            "total": self.total,
            "lost_overlap": self.lost_overlap,
            "discontinuous": self.discontinuous,
            "affected": self.affected,
            "fraction": self.fraction,
        }


def _covered(span: Span) -> int:
    return sum(end - start for start, end in span.fragments)


def _bio_priority(span: Span) -> tuple[int, int, str, str]:
    # Longest first, then earliest start, then label; the id only makes the order total.
    return (-_covered(span), span.start, span.label, span.id)


def resolve_overlaps(spans: Iterable[Span]) -> tuple[list[Span], list[Span]]:
    """Splits spans into those a flat tagging keeps and those it loses to an overlap.

    The rule: keep the longest span (characters covered by its fragments), ties broken by
    earliest start then label; drop any span sharing a character with a kept one. A span
    inside the gap of a discontinuous span shares none, so both are kept.

    Returns:
        ``(kept, lost)``, each in text order.
    """
    kept: list[Span] = []
    lost: list[Span] = []
    for span in sorted(spans, key=_bio_priority):
        clash = any(fragment_overlap(span, k) for k in kept)
        (lost if clash else kept).append(span)
    return sorted(kept, key=_text_order), sorted(lost, key=_text_order)


def _text_order(span: Span) -> tuple[int, int, str]:
    return (span.start, span.end, span.id)


def _doc_unrepresentable(doc: Document) -> tuple[int, int, int, int]:
    """(total, lost to overlap, discontinuous, lost or discontinuous) of one document."""
    lost = {s.id for s in resolve_overlaps(doc.spans)[1]}
    broken = {s.id for s in doc.spans if s.discontinuous}
    return len(doc.spans), len(lost), len(broken), len(lost | broken)


def unrepresentable(docs: Iterable[Document], representation: str = "bio") -> Unrepresentable:
    """Counts gold spans that a flat BIO tagger cannot express.

    Overlapping spans (nested or crossing) are resolved by ``resolve_overlaps`` and the
    losers counted; discontinuous spans are counted because BIO can tag each fragment but
    not link them. Counted on characters: spans that break a token boundary depend on the
    tokenizer and are not counted here.

    Args:
        docs: Gold documents.
        representation: The tagging scheme; only ``"bio"`` is known.

    Raises:
        ValueError: An unknown representation.
    """
    if representation != "bio":
        raise ValueError(f"representation must be 'bio', got {representation!r}")
    sums = [0, 0, 0, 0]
    for doc in docs:
        sums = [a + b for a, b in zip(sums, _doc_unrepresentable(doc), strict=True)]
    total, lost, broken, affected = sums
    return Unrepresentable(representation, total, lost, broken, affected)
