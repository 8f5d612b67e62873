"""From documents to model inputs: label maps, windows, relation candidates (numpy, no torch).

What a window holds, which span pairs may be related and how gold turns into targets can
be read and tested without a model.

Relation candidates (the same rule in training and prediction):

* **Schema:** a pair is a candidate only if some relation type allows its head and tail
  entity types. Directed types are tried in both directions (head -> tail and tail ->
  head are two candidates). A symmetric type is only offered on the pair in text order
  (earlier span as head), so it is never predicted twice; gold given the other way round
  is turned around for training.
* **Distance:** at most ``max_distance`` tokens between the two spans (0 when adjacent
  or overlapping), and both spans inside one window: the one where the pair sits most
  centrally (the rule of ``align.containing_window``).
* **Budget:** at most ``max_candidates`` pairs per window, the closest first.

Candidates are built with numpy because a note has thousands of them (MACCROBAT: ~125
spans and ~3,000 pairs per note within 64 tokens): Python objects per pair would cost
more than the relation head itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from noteloop.core.align import (
    OUTSIDE,
    Window,
    char_to_tokens,
    sliding_windows,
    spans_to_bio,
    token_owners,
)
from noteloop.core.schema import Document, LabelSchema, Span

NO_RELATION = 0  # class 0 of the relation head; relation type i is class i + 1
IGNORE = -100  # target of tokens that carry no tag loss (special tokens, padding)
N_GAP_BUCKETS = 10  # per direction; see gap_buckets
_UNKNOWN = "\x00unknown"  # stands for an entity label the schema lacks (given spans)


def gap_buckets(gap: np.ndarray, head_first: np.ndarray) -> np.ndarray:
    """Distance classes: 0..3 exact, then one per power of two; tail-first pairs + 10."""
    gap = np.asarray(gap, dtype=np.int64)
    log = np.floor(np.log2(np.maximum(gap, 1))).astype(np.int64) + 2
    bucket = np.where(gap < 4, gap, np.minimum(N_GAP_BUCKETS - 1, log))
    return np.where(head_first, bucket, bucket + N_GAP_BUCKETS)


@dataclass(frozen=True)
class LabelMaps:
    """Tag, entity and relation indices derived from a schema, stored beside the weights."""

    entities: tuple[str, ...]
    relations: tuple[str, ...]
    symmetric: frozenset[str] = frozenset()
    heads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tails: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _table: list[np.ndarray] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_schema(cls, schema: LabelSchema) -> LabelMaps:
        rts = schema.relation_types
        return cls(
            entities=tuple(schema.entity_names),
            relations=tuple(r.name for r in rts),
            symmetric=frozenset(r.name for r in rts if r.symmetric),
            heads={r.name: r.heads for r in rts},
            tails={r.name: r.tails for r in rts},
        )

    @property
    def tags(self) -> tuple[str, ...]:
        return (OUTSIDE, *(f"{p}-{e}" for e in self.entities for p in ("B", "I")))

    @property
    def n_relation_classes(self) -> int:
        return len(self.relations) + 1

    def entity_index(self, label: str) -> int:
        """The entity type's index; labels the schema lacks share the last index."""
        try:
            return self.entities.index(label)
        except ValueError:
            return len(self.entities)

    def _allows(self, rel: str, head: str, tail: str) -> bool:
        heads, tails = self.heads[rel], self.tails[rel]
        return (not heads or head in heads) and (not tails or tail in tails)

    def allowed(self, head: str, tail: str, head_first: bool) -> tuple[bool, ...]:
        """Which relation classes the pair may take (class 0, no relation, always)."""
        mask = [True]
        for rel in self.relations:
            if rel in self.symmetric:
                ok = head_first and (self._allows(rel, head, tail) or self._allows(rel, tail, head))
            else:
                ok = self._allows(rel, head, tail)
            mask.append(ok)
        return tuple(mask)

    def allowed_table(self) -> np.ndarray:
        """``allowed`` for every (head type, tail type, head first) as a bool array of shape
        (types + 1, types + 1, 2, classes); index ``len(entities)`` is an unknown label."""
        if not self._table:
            names = [*self.entities, _UNKNOWN]
            table = np.array([[[self.allowed(h, t, first) for first in (False, True)]
                               for t in names] for h in names], dtype=bool)
            self._table.append(table.reshape(len(names), len(names), 2, -1))
        return self._table[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "entities": list(self.entities),
            "relations": list(self.relations),
            "symmetric": sorted(self.symmetric),
            "heads": {k: list(v) for k, v in self.heads.items()},
            "tails": {k: list(v) for k, v in self.tails.items()},
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelMaps:
        return cls(
            entities=tuple(data["entities"]),
            relations=tuple(data["relations"]),
            symmetric=frozenset(data["symmetric"]),
            heads={k: tuple(v) for k, v in data["heads"].items()},
            tails={k: tuple(v) for k, v in data["tails"].items()},
        )


@dataclass
class PairSet:
    """Candidate relations of one note as parallel arrays (one row per candidate).

    ``head``/``tail`` index the note's span list; ``first`` is True when the head comes
    first in text order; ``window`` is the window both spans are read from; ``mask``
    (rows, classes) marks the classes the schema allows; ``target`` the gold class.
    """

    head: np.ndarray
    tail: np.ndarray
    first: np.ndarray
    window: np.ndarray
    gap: np.ndarray
    mask: np.ndarray
    target: np.ndarray

    @classmethod
    def empty(cls, n_classes: int) -> PairSet:
        ints = np.zeros(0, dtype=np.int64)
        mask = np.zeros((0, n_classes), dtype=bool)
        return cls(ints, ints, np.zeros(0, dtype=bool), ints, ints, mask, ints)

    def __len__(self) -> int:
        return len(self.head)

    def take(self, rows: np.ndarray) -> PairSet:
        return PairSet(**{k: v[rows] for k, v in vars(self).items()})

    def with_target(self, target: np.ndarray) -> PairSet:
        return PairSet(**{**vars(self), "target": target})


@dataclass
class EncodedDoc:
    """A tokenised note: token ids and offsets, its windows and the spans it knows."""

    doc: Document
    ids: list[int]
    offsets: list[tuple[int, int]]
    windows: list[Window]
    owners: list[int]
    spans: list[Span] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)  # token range of each span
    tags: list[int] = field(default_factory=list)  # gold tag index per token (training)
    pairs: PairSet | None = None
    candidates: SpanCandidates | None = None  # training, under span enumeration

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


def encode_document(
    doc: Document, ids: list[int], offsets: Sequence[Sequence[int]], size: int, overlap: int
) -> EncodedDoc:
    """Windows and token owners for a note tokenised as ``ids`` with char ``offsets``."""
    offs = [(int(a), int(b)) for a, b in offsets]
    windows = sliding_windows(len(ids), size, overlap)
    return EncodedDoc(doc, list(ids), offs, windows, token_owners(windows, len(ids)))


def attach_spans(enc: EncodedDoc, spans: Iterable[Span]) -> None:
    """Keeps the spans that cover at least one token, with their token ranges."""
    for span in spans:
        rng = char_to_tokens(enc.offsets, span.start, span.end)
        if rng is not None:
            enc.spans.append(span)
            enc.ranges.append(rng)


def attach_tags(enc: EncodedDoc, maps: LabelMaps) -> int:
    """Gold BIO tag indices for every token; returns how many spans BIO had to drop."""
    index = {tag: i for i, tag in enumerate(maps.tags)}
    known = [s for s in enc.doc.spans if s.label in maps.entities]
    tagging = spans_to_bio(enc.offsets, known)
    enc.tags = [index[t] for t in tagging.tags]
    return len(tagging.dropped)


# --------------------------------------------------------------------------- candidates


def _close_pairs(lo: np.ndarray, hi: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    """Index pairs (i, j), i before j in (lo, hi, index) order, at most max_distance apart."""
    order = np.lexsort((np.arange(len(lo)), hi, lo))
    lo_s, hi_s = lo[order], hi[order]
    ends = np.searchsorted(lo_s, hi_s + max_distance, side="right")
    counts = np.maximum(ends - np.arange(1, len(lo) + 1), 0)
    first = np.repeat(np.arange(len(lo)), counts)
    step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    second = first + 1 + step
    return order[first], order[second]


def best_windows(windows: Sequence[Window], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For token ranges [lo, hi), the most central window holding all of it, else -1."""
    starts = np.array([w.start for w in windows])[None, :]
    ends = np.array([w.end for w in windows])[None, :]
    lo, hi = lo[:, None], hi[:, None]
    margin = np.minimum(lo - starts, ends - hi)
    margin = np.where((starts <= lo) & (ends >= hi), margin, -1)
    best = margin.argmax(axis=1)  # ties: the earlier window, as containing_window
    return np.where(margin.max(axis=1, initial=-1) >= 0, best, -1)


def candidate_pairs(
    enc: EncodedDoc, maps: LabelMaps, max_distance: int, max_candidates: int
) -> PairSet:
    """Every candidate pair over ``enc.spans`` (see the module docstring), by window."""
    if len(enc.spans) < 2 or not enc.windows:
        return PairSet.empty(maps.n_relation_classes)
    ranges = np.asarray(enc.ranges, dtype=np.int64)
    lo, hi = ranges[:, 0], ranges[:, 1]
    i, j = _close_pairs(lo, hi, max_distance)
    window = best_windows(enc.windows, lo[i], np.maximum(hi[i], hi[j]))
    gap = np.maximum(lo[j] - hi[i], 0)
    types = np.array([maps.entity_index(s.label) for s in enc.spans], dtype=np.int64)
    table = maps.allowed_table()
    head = np.concatenate([i, j])
    tail = np.concatenate([j, i])
    first = np.concatenate([np.ones(len(i), dtype=bool), np.zeros(len(j), dtype=bool)])
    mask = table[types[head], types[tail], first.astype(np.int64)]
    both = np.concatenate([window, window])
    keep = (both >= 0) & mask[:, 1:].any(axis=1)
    pairs = PairSet(head, tail, first, both, np.concatenate([gap, gap]), mask,
                    np.zeros(len(head), dtype=np.int64))
    return _cap_per_window(pairs.take(np.nonzero(keep)[0]), max_candidates)


def _cap_per_window(pairs: PairSet, cap: int) -> PairSet:
    """At most ``cap`` pairs per window, the closest first; ordered by window, then gap."""
    order = np.lexsort((np.arange(len(pairs)), pairs.gap, pairs.window))
    window = pairs.window[order]
    group_start = np.searchsorted(window, window, side="left")
    rank = np.arange(len(order)) - group_start
    return pairs.take(order[rank < cap])


def gold_targets(enc: EncodedDoc, maps: LabelMaps) -> tuple[dict[tuple[int, int], int], int]:
    """Relation class per (head, tail) span index pair of the gold relations.

    Symmetric relations are keyed in text order. Returns the targets and how many gold
    relations have no representable key (a span without tokens, or a second label on a
    pair that already has one: one class per pair).
    """
    index = {s.id: i for i, s in enumerate(enc.spans)}
    targets: dict[tuple[int, int], int] = {}
    lost = 0
    for rel in enc.doc.relations:
        if rel.label not in maps.relations or rel.head not in index or rel.tail not in index:
            lost += 1
            continue
        key = (index[rel.head], index[rel.tail])
        if rel.label in maps.symmetric and _later(enc, key[0], key[1]):
            key = (key[1], key[0])
        if key in targets:
            lost += 1
            continue
        targets[key] = maps.relations.index(rel.label) + 1
    return targets, lost


def _later(enc: EncodedDoc, i: int, j: int) -> bool:
    """Whether span ``i`` comes after span ``j`` in the order candidate_pairs uses."""
    return (*enc.ranges[i], i) > (*enc.ranges[j], j)


def label_pairs(pairs: PairSet, targets: Mapping[tuple[int, int], int]) -> PairSet:
    """The pairs with their gold class; a gold class the schema forbids there is dropped."""
    keys = zip(pairs.head.tolist(), pairs.tail.tolist(), strict=True)
    target = np.array([targets.get(k, NO_RELATION) for k in keys], dtype=np.int64)
    allowed = pairs.mask[np.arange(len(pairs)), target] if len(pairs) else np.zeros(0, bool)
    return pairs.with_target(np.where(allowed, target, NO_RELATION))


# --------------------------------------------------------------------------- span candidates


def word_edges(text: str, offsets: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Which tokens begin a word and which end one, from the text alone.

    A token continues the previous one when the two touch (no character between them)
    and both sides of the seam are letters or digits: ``hyper`` + ``##tension``, not
    ``mg`` + ``/``. Tokenizer-agnostic (WordPiece, BPE and SentencePiece alike). Gold spans
    nearly always start and end on these edges (MACCROBAT2020: all but 0.03% of 18,642),
    and candidates that cut a word in two are never worth a score.
    """
    n = len(offsets)
    starts = np.ones(n, dtype=bool)
    for i in range(1, n):
        seam = offsets[i][0]
        if seam == offsets[i - 1][1] and 0 < seam < len(text):
            starts[i] = not (text[seam - 1].isalnum() and text[seam].isalnum())
    ends = np.ones(n, dtype=bool)
    ends[:-1] = starts[1:]
    return starts, ends


@dataclass
class SpanCandidates:
    """Candidate spans of one note as parallel arrays (one row per candidate).

    ``lo``/``hi`` are the token range ``[lo, hi)`` in the note; ``window`` the window the
    candidate is read from; ``target`` its gold class (0: no span, ``i + 1``: entity ``i``);
    ``second`` a second gold class on the same range (0: none), as when a disorder is also
    marked as history.
    """

    lo: np.ndarray
    hi: np.ndarray
    window: np.ndarray
    target: np.ndarray
    second: np.ndarray

    def __len__(self) -> int:
        return len(self.lo)

    def take(self, rows: np.ndarray) -> SpanCandidates:
        return SpanCandidates(**{k: v[rows] for k, v in vars(self).items()})

    def by_window(self, n_windows: int) -> list[SpanCandidates]:
        return [self.take(np.nonzero(self.window == w)[0]) for w in range(n_windows)]


def _window_candidates(
    starts: np.ndarray, ends: np.ndarray, window: Window, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every word-aligned token range of at most ``width`` tokens inside ``window``."""
    first = np.nonzero(starts[window.start : window.end])[0] + window.start
    hi = first[:, None] + np.arange(1, width + 1)[None, :]
    ok = hi <= window.end
    ok[ok] = ends[hi[ok] - 1]
    lo = np.broadcast_to(first[:, None], hi.shape)
    return lo[ok], hi[ok]


def span_candidates(enc: EncodedDoc, width: int, *, every_window: bool) -> SpanCandidates:
    """The note's candidate spans: word-aligned, at most ``width`` tokens.

    With ``every_window`` (training) a candidate appears once per window that holds it,
    so every window learns from all of its spans; without (prediction) only once, in the
    window where it sits most centrally (the rule of :func:`best_windows`).
    """
    starts, ends = word_edges(enc.doc.text, enc.offsets)
    parts = []
    for w, window in enumerate(enc.windows):
        lo, hi = _window_candidates(starts, ends, window, width)
        parts.append((lo, hi, np.full(len(lo), w, dtype=np.int64)))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SpanCandidates(empty, empty, empty, empty, empty)
    lo, hi, window = (np.concatenate(p).astype(np.int64) for p in zip(*parts, strict=True))
    cands = SpanCandidates(lo, hi, window, np.zeros(len(lo), dtype=np.int64),
                           np.zeros(len(lo), dtype=np.int64))
    if every_window:
        return cands
    keep = best_windows(enc.windows, cands.lo, cands.hi) == cands.window
    return cands.take(np.nonzero(keep)[0])


def gold_span_targets(enc: EncodedDoc, cands: SpanCandidates, maps: LabelMaps) -> int:
    """Sets each candidate's gold classes from the note's spans (a second type on a range
    that has one goes to ``second``); returns how many gold spans (fragments of
    discontinuous ones counted one by one, as BIO tags them) match no candidate: cut
    inside a word, wider than the width, or a third type on one range."""
    rows_of = _range_index(cands, enc.n_tokens)
    lost = 0
    for span in enc.doc.spans:
        if span.label not in maps.entities:
            continue
        cls = maps.entity_index(span.label) + 1
        for start, end in span.fragments or ((span.start, span.end),):
            rng = char_to_tokens(enc.offsets, start, end)
            rows = rows_of(rng) if rng is not None else np.zeros(0, dtype=np.int64)
            lost += not _mark(cands, rows, cls)
    return lost


def _mark(cands: SpanCandidates, rows: np.ndarray, cls: int) -> bool:
    """Gives the candidate ``rows`` (one range, one row per window) the gold class ``cls``,
    as their first or second class; False when it cannot be expressed."""
    if not len(rows):
        return False
    held = {int(cands.target[rows[0]]), int(cands.second[rows[0]])}
    if cls in held:
        return True  # the same span twice
    if not cands.target[rows[0]]:
        cands.target[rows] = cls
    elif not cands.second[rows[0]]:
        cands.second[rows] = cls
    else:
        return False
    return True


def _range_index(cands: SpanCandidates, n_tokens: int
                 ) -> Callable[[tuple[int, int]], np.ndarray]:
    """A lookup from a token range to the candidate rows that have it (one per window)."""
    base = n_tokens + 1
    keys = cands.lo * base + cands.hi
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]

    def rows_of(rng: tuple[int, int]) -> np.ndarray:
        key = rng[0] * base + rng[1]
        return order[np.searchsorted(ordered, key) : np.searchsorted(ordered, key, "right")]

    return rows_of


def learnt_width(encoded: Sequence[EncodedDoc], quantile: float = 0.995, floor: int = 4,
                 ceiling: int = 32) -> int:
    """The widest candidate worth scoring, in tokens: the ``quantile`` of the gold spans'
    widths, within [floor, ceiling].

    Every extra token of width costs one more candidate per word of every window. On
    MACCROBAT2020 99% of the gold spans have at most 12 tokens and 99.5% at most 14; the
    rest (up to 81 tokens) are long descriptions that an annotator marks by hand anyway.
    """
    widths = [hi - lo for enc in encoded for lo, hi in enc.ranges]
    if not widths:
        return floor
    return int(min(ceiling, max(floor, math.ceil(np.quantile(widths, quantile)))))
