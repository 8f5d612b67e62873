"""Agreement between two annotators, and the differences an adjudicator resolves.

Two measures, because each answers a different question:

* **Pairwise F1** (Hripcsak and Rothschild 2005): one annotator's spans scored against
  the other's with :mod:`noteloop.core.metrics`, strict and lenient, and relations with
  strictly matching arguments. F1 is symmetric (swapping the annotators swaps FP and FN),
  so it needs no reference annotator; it is also the number the model's curves use, so
  the lead can read "the model is at 0.80, the annotators agree at 0.86" directly.
* **Cohen's kappa on tokens**: agreement corrected for chance, which F1 is not. Kappa
  needs units that both annotators labelled, and spans are not such units (an annotator
  who marks nothing says "no concept" about an undefined number of spans). Tokens are:
  every token of the note (``\\w+`` or one other non-space character) gets, from each
  annotator, the set of labels of the spans covering it, or ``O``; ``κ = (p_o − p_e) /
  (1 − p_e)`` over these categories, pooled over all notes. Without overlapping spans
  the categories are just the label or ``O``, the usual token kappa; with nesting the
  label *set* keeps the measure well-defined instead of picking one label arbitrarily.
  Per label, kappa is binary (covered by a span of that label or not). The many ``O``
  tokens make token kappa read high; the F1 next to it does not have that bias. Kappa is
  ``None`` where it is undefined (``p_e = 1``: one category everywhere), not 0, because
  0 means "chance agreement", which nothing showed.

The diff of one note pairs the two versions as the adjudication view shows them: spans
in both (same label and fragments), label disagreements (same fragments, other label),
spans only in A and only in B; relations likewise (a label disagreement there is the
same head and tail offsets with another relation label); equivalence groups in both or
in one. :func:`merge` turns the adjudicator's choice for each difference into the final
gold; what both versions share is kept without asking.

Which notes two people annotate is :func:`chosen_for_double_annotation`: a share of the
pool picked by the note's text hash, so the pick is random with respect to content and
to the active-learning ranking (agreement measured on the notes the model found hardest
would understate it), and stable while the share stays the same.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from noteloop.core.errors import NoteloopError
from noteloop.core.metrics import PRF, TASKS, evaluate, match_relations, match_spans
from noteloop.core.metrics import pair_exact as _pair_exact
from noteloop.core.schema import Document, Equivalence, Relation, Span

TOKEN = re.compile(r"\w+|[^\w\s]")
OUTSIDE = "O"


class AdjudicationError(NoteloopError, ValueError):
    """Choices that cannot make a final gold: missing, not allowed, or leaving a relation
    without one of its spans."""


def chosen_for_double_annotation(sha256_hex: str, share: float) -> bool:
    """Whether the note whose text has this SHA-256 is one of the ``share`` of notes that
    a second annotator annotates too (its hash's first 32 bits, read as a fraction)."""
    if not 0 <= share <= 1:
        raise ValueError(f"the double-annotation share must be in [0, 1], got {share!r}")
    return int(sha256_hex[:8], 16) / 2**32 < share


# --------------------------------------------------------------------------- kappa


@dataclass(frozen=True, slots=True)
class Kappa:
    """Cohen's kappa from observed and chance agreement over ``n`` units."""

    observed: float
    expected: float
    n: int

    def __post_init__(self) -> None:
        for name in ("observed", "expected"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Kappa {name} must be in [0, 1], got {value!r}")
        if self.n < 0:
            raise ValueError(f"Kappa n must be >= 0, got {self.n!r}")

    @property
    def value(self) -> float | None:
        """κ, or None when chance agreement is certain (one category everywhere) or n = 0."""
        if self.n == 0 or self.expected >= 1.0:
            return None
        return (self.observed - self.expected) / (1.0 - self.expected)


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> Kappa:
    """Cohen's kappa of two raters from their (rating A, rating B) per unit."""
    both: Counter[tuple[Hashable, Hashable]] = Counter(pairs)
    n = sum(both.values())
    if n == 0:
        return Kappa(0.0, 0.0, 0)
    rows: Counter[Hashable] = Counter()
    cols: Counter[Hashable] = Counter()
    for (a, b), count in both.items():
        rows[a] += count
        cols[b] += count
    observed = sum(count for (a, b), count in both.items() if a == b) / n
    expected = sum(rows[c] * cols[c] for c in rows) / (n * n)
    return Kappa(observed, min(expected, 1.0), n)


def tokens(text: str) -> list[tuple[int, int]]:
    """(start, end) of each token: a run of word characters or one other non-space."""
    return [m.span() for m in TOKEN.finditer(text)]


def token_labels(spans: Iterable[Span], toks: Sequence[tuple[int, int]]) -> list[frozenset[str]]:
    """For each token, the labels of the spans sharing a character with it."""
    starts = [s for s, _ in toks]
    ends = [e for _, e in toks]
    labels: list[set[str]] = [set() for _ in toks]
    for span in spans:
        for start, end in span.fragments:
            # Tokens are ordered and disjoint: those ending after start and starting before end.
            for i in range(bisect_right(ends, start), bisect_left(starts, end)):
                labels[i].add(span.label)
    return [frozenset(s) for s in labels]


def _category(labels: frozenset[str]) -> str:
    return "+".join(sorted(labels)) if labels else OUTSIDE


def token_kappas(pairs: Sequence[tuple[Document, Document]]) -> tuple[Kappa, dict[str, Kappa]]:
    """Overall token kappa (label sets as categories) and binary kappa per label."""
    sets: list[tuple[frozenset[str], frozenset[str]]] = []
    for a, b in pairs:
        toks = tokens(a.text)
        sets.extend(zip(token_labels(a.spans, toks), token_labels(b.spans, toks), strict=True))
    overall = [(_category(x), _category(y)) for x, y in sets]
    labels = sorted({label for x, y in sets for label in x | y})
    per_label = {label: cohen_kappa((label in x, label in y) for x, y in sets) for label in labels}
    return cohen_kappa(overall), per_label


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Agreement:
    """Agreement of two annotators over the notes both annotated.

    ``per_label`` is keyed by task (``metrics.TASKS``) like ``Evaluation.per_label``;
    ``kappa_per_label`` by entity label.
    """

    n_docs: int
    entity_strict: PRF
    entity_lenient: PRF
    relation: PRF
    kappa: Kappa
    per_label: Mapping[str, Mapping[str, PRF]]
    kappa_per_label: Mapping[str, Kappa]

    def label_rows(self) -> list[dict[str, Any]]:
        """One row per label: F1 of each task where the label occurs, entity kappa."""
        labels = sorted({label for task in TASKS for label in self.per_label[task]})
        return [
            {
                "label": label,
                **{task: _f1_or_none(self.per_label[task].get(label)) for task in TASKS},
                "kappa": k.value if (k := self.kappa_per_label.get(label)) else None,
            }
            for label in labels
        ]


def _f1_or_none(prf: PRF | None) -> float | None:
    return None if prf is None else prf.f1


def _check_pair(a: Document, b: Document) -> None:
    if a.id != b.id:
        raise ValueError(f"cannot compare two different notes: {a.id} and {b.id}")
    if a.text != b.text:
        raise ValueError(f"note {a.id}: the two versions have different texts")


def agreement(
    pairs: Sequence[tuple[Document, Document]], *, symmetric: Set[str] = frozenset()
) -> Agreement:
    """Agreement of annotator A (first of each pair) and annotator B over their notes.

    Args:
        pairs: (A's version, B's version) of each note both annotated.
        symmetric: Relation labels that match in either direction.

    Raises:
        ValueError: no pairs, a pair of two notes or of two different texts, or a note
            given twice.
    """
    if not pairs:
        raise ValueError("no notes annotated by both annotators: nothing to compare")
    for a, b in pairs:
        _check_pair(a, b)
    # B scored against A: F1 is symmetric, so which one plays gold does not matter.
    scores = evaluate(
        [a for a, _ in pairs], [b for _, b in pairs], symmetric=symmetric, n_bootstrap=0
    )
    kappa, kappa_per_label = token_kappas(pairs)
    return Agreement(
        n_docs=scores.n_docs,
        entity_strict=scores.entity_strict,
        entity_lenient=scores.entity_lenient,
        relation=scores.relation,
        kappa=kappa,
        per_label=scores.per_label,
        kappa_per_label=kappa_per_label,
    )


# --------------------------------------------------------------------------- the diff


class Kind(StrEnum):
    """How the two versions relate on one item."""

    BOTH = "both"  # the same in A and B
    LABEL = "label"  # same offsets (span) or argument offsets (relation), another label
    ONLY_A = "only_a"
    ONLY_B = "only_b"


class Choice(StrEnum):
    """What the adjudicator keeps of one difference."""

    A = "a"  # A's version
    B = "b"  # B's version
    BOTH = "both"  # both versions (a label disagreement kept as two spans)
    DROP = "drop"  # neither


ALLOWED = {
    Kind.LABEL: (Choice.A, Choice.B, Choice.BOTH, Choice.DROP),
    Kind.ONLY_A: (Choice.A, Choice.DROP),
    Kind.ONLY_B: (Choice.B, Choice.DROP),
}

Item = Span | Relation | Equivalence


@dataclass(frozen=True)
class Difference:
    """One span, relation or equivalence group as A and B have it (None: absent there)."""

    kind: Kind
    a: Item | None
    b: Item | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        wants_a = self.kind in (Kind.BOTH, Kind.LABEL, Kind.ONLY_A)
        wants_b = self.kind in (Kind.BOTH, Kind.LABEL, Kind.ONLY_B)
        if (self.a is not None) != wants_a or (self.b is not None) != wants_b:
            raise ValueError(
                f"a {self.kind.value} difference needs "
                f"{'an' if wants_a else 'no'} A item and {'a' if wants_b else 'no'} B item"
            )
        if self.a is not None and self.b is not None and type(self.a) is not type(self.b):
            raise ValueError("a difference pairs two items of the same kind")

    @property
    def what(self) -> str:
        item = self.a if self.a is not None else self.b
        return {Span: "span", Relation: "relation", Equivalence: "equivalence"}[type(item)]

    @property
    def choices(self) -> tuple[Choice, ...]:
        """The choices an adjudicator may make; none for what both versions share."""
        return ALLOWED.get(self.kind, ())


@dataclass(frozen=True)
class NoteDiff:
    """Two versions of one note and their differences (spans, relations, equivalences)."""

    a: Document
    b: Document
    items: tuple[Difference, ...]

    def disagreements(self) -> list[tuple[int, Difference]]:
        """(index into ``items``, difference) of every item that needs a choice."""
        return [(i, d) for i, d in enumerate(self.items) if d.kind is not Kind.BOTH]

    def counts(self) -> dict[str, int]:
        """How many items of each kind."""
        found = Counter(d.kind.value for d in self.items)
        return {k.value: found.get(k.value, 0) for k in Kind}


def _split(pairs: Sequence[tuple[int, int]], n_a: int, n_b: int) -> tuple[list[int], list[int]]:
    """Indices of the A and B items that ``pairs`` leaves out."""
    used_a, used_b = {i for i, _ in pairs}, {j for _, j in pairs}
    return [i for i in range(n_a) if i not in used_a], [j for j in range(n_b) if j not in used_b]


KeyOf = Callable[[Any], Hashable]


def _classify(
    a_items: Sequence[Any],
    b_items: Sequence[Any],
    same: Sequence[tuple[int, int]],
    loose: tuple[KeyOf, KeyOf] | None = None,
) -> list[Difference]:
    """Pairs in ``same`` are BOTH; of the rest, pairs with equal ``loose`` keys (A's key
    function, B's) are LABEL disagreements; what is left is ONLY_A or ONLY_B."""
    out = [Difference(Kind.BOTH, a_items[i], b_items[j]) for i, j in same]
    rest_a, rest_b = _split(same, len(a_items), len(b_items))
    if loose is not None:
        key_a, key_b = loose
        paired = _pair_exact(
            [key_a(a_items[i]) for i in rest_a], [key_b(b_items[j]) for j in rest_b]
        )
        paired = [(rest_a[i], rest_b[j]) for i, j in paired]
        out += [Difference(Kind.LABEL, a_items[i], b_items[j]) for i, j in paired]
        rest_a = [i for i in rest_a if i not in {i for i, _ in paired}]
        rest_b = [j for j in rest_b if j not in {j for _, j in paired}]
    out += [Difference(Kind.ONLY_A, a_items[i], None) for i in rest_a]
    out += [Difference(Kind.ONLY_B, None, b_items[j]) for j in rest_b]
    return out


def _fragments(span: Span) -> Hashable:
    return span.fragments


def _relation_ends(doc: Document) -> KeyOf:
    """A relation's key without labels: the offsets of its head and its tail."""
    spans = {s.id: s for s in doc.spans}
    return lambda r: (spans[r.head].fragments, spans[r.tail].fragments)


def _equivalence_key(doc: Document) -> KeyOf:
    spans = {s.id: (s.label, s.fragments) for s in doc.spans}
    return lambda e: (e.label, tuple(sorted(spans[m] for m in e.members)))


def _position(d: Difference) -> tuple[int, int]:
    span = d.a if d.a is not None else d.b
    assert isinstance(span, Span)
    return (span.start, span.end)


def diff_annotations(a: Document, b: Document, *, symmetric: Set[str] = frozenset()) -> NoteDiff:
    """The differences between two versions of one note: spans in text order, then
    relations, then equivalence groups.

    Raises:
        ValueError: the versions belong to two notes or have different texts.
    """
    _check_pair(a, b)
    spans = _classify(a.spans, b.spans, match_spans(a.spans, b.spans), (_fragments, _fragments))
    relations = _classify(
        a.relations,
        b.relations,
        match_relations(a, b, symmetric=symmetric),
        (_relation_ends(a), _relation_ends(b)),
    )
    key_a, key_b = _equivalence_key(a), _equivalence_key(b)
    same = _pair_exact([key_a(e) for e in a.equivalences], [key_b(e) for e in b.equivalences])
    groups = _classify(a.equivalences, b.equivalences, same)
    return NoteDiff(a, b, tuple(sorted(spans, key=_position) + relations + groups))


# --------------------------------------------------------------------------- describing


def snippet(text: str, start: int, end: int, width: int = 30) -> str:
    """The span's text in brackets with ``width`` characters of context, on one line."""
    before = text[max(0, start - width) : start]
    after = text[end : end + width]
    lead = "…" if start > width else ""
    tail = "…" if end + width < len(text) else ""
    return " ".join(f"{lead}{before}[{text[start:end]}]{after}{tail}".split())


def describe(item: Item, doc: Document) -> str:
    """One line for a span, relation or equivalence group of ``doc`` (plain text)."""
    if isinstance(item, Span):
        shown = " ".join(item.text_in(doc.text).split())
        return f"{item.label} '{shown}' [{item.start}-{item.end}]"
    spans = {s.id: s for s in doc.spans}
    if isinstance(item, Relation):
        head, tail = describe(spans[item.head], doc), describe(spans[item.tail], doc)
        return f"{item.label}: {head} -> {tail}"
    return f"{item.label}: " + ", ".join(describe(spans[m], doc) for m in item.members)


# --------------------------------------------------------------------------- merging


def _check_choices(diff: NoteDiff, choices: Mapping[int, Choice | str]) -> dict[int, Choice]:
    open_items = dict(diff.disagreements())
    checked: dict[int, Choice] = {}
    for index, raw in choices.items():
        if index not in open_items:
            why = (
                "is the same in both versions" if 0 <= index < len(diff.items) else "does not exist"
            )
            raise AdjudicationError(f"difference #{index} {why}: there is nothing to choose")
        allowed = open_items[index].choices
        try:
            choice = Choice(raw)
        except ValueError:
            choice = None
        if choice not in allowed:
            names = ", ".join(c.value for c in allowed)
            raise AdjudicationError(f"difference #{index}: choose one of {names}, not {raw!r}")
        checked[index] = choice
    undecided = [f"#{i}" for i in open_items if i not in checked]
    if undecided:
        raise AdjudicationError(
            f"{len(undecided)} difference(s) without a choice: {', '.join(undecided)}"
        )
    return checked


def _kept(d: Difference, choice: Choice | None) -> list[tuple[str, Item]]:
    """The (side, item) pairs a choice keeps; BOTH-kind items keep A's copy."""
    if d.kind is Kind.BOTH or choice is Choice.A:
        return [("a", d.a)]  # type: ignore[list-item]
    if choice is Choice.B:
        return [("b", d.b)]  # type: ignore[list-item]
    if choice is Choice.BOTH:
        return [("a", d.a), ("b", d.b)]  # type: ignore[list-item]
    return []


@dataclass
class _Merger:
    """The final gold being built: new spans and where each source span went."""

    diff: NoteDiff
    spans: list[Span]
    span_ids: dict[tuple[str, str], str]  # (side, source span id) -> final span id
    relations: list[Relation]
    groups: list[Equivalence]

    def add_span(self, d: Difference, kept: list[tuple[str, Item]]) -> None:
        for side, span in kept:
            assert isinstance(span, Span)
            new = replace(span, id=f"T{len(self.spans) + 1}")
            self.spans.append(new)
            self.span_ids[(side, span.id)] = new.id
        if len(kept) == 1 and d.kind in (Kind.BOTH, Kind.LABEL):
            # One copy stands for both versions: the other side's relations point at it.
            other, item = ("b", d.b) if kept[0][0] == "a" else ("a", d.a)
            assert isinstance(item, Span)
            self.span_ids[(other, item.id)] = self.spans[-1].id

    def final_id(self, side: str, span_id: str, owner: str) -> str:
        try:
            return self.span_ids[(side, span_id)]
        except KeyError:
            doc = self.diff.a if side == "a" else self.diff.b
            raise AdjudicationError(
                f"{owner} needs span {describe(doc.span(span_id), doc)}, which the choices "
                "drop: keep the span or drop what needs it"
            ) from None

    def add_relation(self, side: str, rel: Relation) -> None:
        doc = self.diff.a if side == "a" else self.diff.b
        owner = f"relation {describe(rel, doc)}"
        head, tail = self.final_id(side, rel.head, owner), self.final_id(side, rel.tail, owner)
        if any((r.label, r.head, r.tail) == (rel.label, head, tail) for r in self.relations):
            return  # both versions said the same once their spans were merged
        self.relations.append(replace(rel, id=f"R{len(self.relations) + 1}", head=head, tail=tail))

    def add_group(self, side: str, group: Equivalence) -> None:
        doc = self.diff.a if side == "a" else self.diff.b
        owner = f"equivalence {describe(group, doc)}"
        members = tuple(self.final_id(side, m, owner) for m in group.members)
        if all((g.label, set(g.members)) != (group.label, set(members)) for g in self.groups):
            self.groups.append(replace(group, members=members))


def merge(diff: NoteDiff, choices: Mapping[int, Choice | str]) -> Document:
    """The final gold: everything both versions share, plus what ``choices`` keep.

    Args:
        diff: The two versions' differences (:func:`diff_annotations`).
        choices: A choice for every index of ``diff.disagreements()``: ``a`` or ``b`` keeps
            that version, ``both`` keeps the two spans of a label disagreement, ``drop``
            neither.

    Returns:
        The note with the final spans (ids ``T1``...), relations (``R1``...) and groups;
        each span keeps its source, attributes and suggestion link.

    Raises:
        AdjudicationError: a difference without a choice, a choice it does not allow, an
            index that is no disagreement, or a kept relation or group whose span is dropped.
    """
    checked = _check_choices(diff, choices)
    merger = _Merger(diff, [], {}, [], [])
    for index, d in enumerate(diff.items):
        kept = _kept(d, checked.get(index))
        if d.what == "span":
            merger.add_span(d, kept)
        elif d.what == "relation":
            for side, rel in kept:
                merger.add_relation(side, rel)  # type: ignore[arg-type]
        else:
            for side, group in kept:
                merger.add_group(side, group)  # type: ignore[arg-type]
    return diff.a.with_annotations(merger.spans, merger.relations, merger.groups)
