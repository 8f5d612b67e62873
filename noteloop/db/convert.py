"""Rows <-> the core vocabulary: the only place that knows how a Span sits in a table.

Spans, relations and suggestions go in as plain dicts (for bulk inserts) and come out
as the frozen dataclasses of :mod:`noteloop.core.schema`, which re-validate them. The
readers take any object with the columns as attributes: an ORM object or a Core row
(hundreds of spans load several times faster as Core rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from noteloop.core.schema import Document, Equivalence, Relation, Span, SpanSource, Suggestion
from noteloop.db import models

# The columns that make up a gold span's content, in one fixed order: saving compares
# stored and new spans as tuples of these, and the audit log writes them.
SPAN_COLUMNS = (
    "key", "label", "start", "end", "fragments", "attributes", "notes", "concept", "source",
    "suggestion_id",
)  # fmt: skip
span_tuple = itemgetter(*SPAN_COLUMNS)  # span_values(...) -> tuple in SPAN_COLUMNS order


def span_values(span: Span, annotation_id: int) -> dict[str, Any]:
    """The column values of ``span`` as a gold span of the annotation ``annotation_id``.

    Fragments, attributes and notes are NULL when they say nothing beyond the default
    (one fragment from start to end, none, none): see ``models.Span``.
    """
    return {
        "annotation_id": annotation_id,
        "key": span.id,
        "label": span.label,
        "start": span.start,
        "end": span.end,
        "fragments": _fragments(span),
        "attributes": [list(a) for a in span.attributes] or None,
        "notes": list(span.notes) or None,
        "concept": span.concept,
        "source": span.source.value,
        "suggestion_id": span.suggestion_id,
    }


def _fragments(span: Span) -> list[list[int]] | None:
    return [list(f) for f in span.fragments] if span.discontinuous else None


def span_from_tuple(values: Sequence[Any]) -> Span:
    """A Span from its column values in :data:`SPAN_COLUMNS` order."""
    key, label, start, end, fragments, attributes, notes, concept, source, suggestion_id = values
    return Span(
        id=key,
        label=label,
        start=start,
        end=end,
        fragments=tuple(map(tuple, fragments)) if fragments else (),
        attributes=tuple(map(tuple, attributes)) if attributes else (),
        notes=tuple(notes) if notes else (),
        concept=concept,
        source=_SOURCES[source],
        suggestion_id=suggestion_id,
    )


_SOURCES = {s.value: s for s in SpanSource}


def relation_values(
    relation: Relation, annotation_id: int, span_ids: Mapping[str, int]
) -> dict[str, Any]:
    """Column values of ``relation``; ``span_ids`` maps span keys to their row ids."""
    return {
        "annotation_id": annotation_id,
        "key": relation.id,
        "label": relation.label,
        "head_id": span_ids[relation.head],
        "tail_id": span_ids[relation.tail],
        "notes": list(relation.notes),
    }


def relation_from_row(row: Any, span_keys: Mapping[int, str]) -> Relation:
    """A Relation from a ``relations`` row; ``span_keys`` maps span row ids to span keys."""
    return Relation(
        id=row.key,
        label=row.label,
        head=span_keys[row.head_id],
        tail=span_keys[row.tail_id],
        notes=tuple(row.notes),
    )


def equivalence_values(eq: Equivalence, annotation_id: int) -> dict[str, Any]:
    return {"annotation_id": annotation_id, "label": eq.label, "members": list(eq.members)}


def equivalence_from_row(row: Any) -> Equivalence:
    return Equivalence(label=row.label, members=tuple(row.members))


def document_from_row(
    row: Any,
    spans: Iterable[Any] = (),
    relations: Iterable[Any] = (),
    equivalences: Iterable[Any] = (),
) -> Document:
    """The core Document of ``row`` (a ``models.Document``, or a row of its ``external_id``,
    ``text`` and ``meta`` columns; its id is the external id) with the given gold rows.

    Span rows are ``(id, annotation_id, *SPAN_COLUMNS)`` rows, as :mod:`~noteloop.db.gold`
    selects them.
    """
    span_rows = list(spans)
    keys = {s.id: s.key for s in span_rows}
    return Document(
        id=row.external_id,
        text=row.text,
        spans=tuple(span_from_tuple(s[2:]) for s in span_rows),
        relations=tuple(relation_from_row(r, keys) for r in relations),
        equivalences=tuple(equivalence_from_row(e) for e in equivalences),
        metadata=dict(row.meta),
    )


def suggestion_values(
    suggestion: Suggestion, document_id: int, model_version_id: int, span_ids: Mapping[str, int]
) -> dict[str, Any]:
    """Column values of a suggestion; a relation's head/tail go through ``span_ids``."""
    item = suggestion.item
    values: dict[str, Any] = {
        "document_id": document_id,
        "model_version_id": model_version_id,
        "key": item.id,
        "label": item.label,
        "score": float(suggestion.score),
    }
    if isinstance(item, Span):
        values.update(
            kind="span",
            start=item.start,
            end=item.end,
            fragments=_fragments(item),
            attributes=[list(a) for a in item.attributes] or None,
            concept=item.concept,
        )
    else:
        values.update(kind="relation", head_id=span_ids[item.head], tail_id=span_ids[item.tail])
    return values


def suggestion_from_row(row: models.Suggestion, span_keys: Mapping[int, str]) -> Suggestion:
    """A Suggestion; a span item carries the row id as ``suggestion_id`` so an accepted
    span can point back at the suggestion it came from."""
    item: Span | Relation
    if row.kind == "span":
        assert row.start is not None and row.end is not None  # the kind_fields constraint
        item = Span(
            id=row.key,
            label=row.label,
            start=row.start,
            end=row.end,
            fragments=tuple((a, b) for a, b in row.fragments or ()),
            attributes=tuple((k, v) for k, v in row.attributes or ()),
            concept=row.concept,
            suggestion_id=row.id,
        )
    else:
        assert row.head_id is not None and row.tail_id is not None
        item = Relation(
            id=row.key, label=row.label, head=span_keys[row.head_id], tail=span_keys[row.tail_id]
        )
    return Suggestion(item=item, score=row.score)


def audit_json(
    spans: Iterable[Sequence[Any]],
    relations: Iterable[Relation],
    equivalences: Iterable[Equivalence],
) -> dict[str, Any]:
    """The audit form of gold whose spans are :data:`SPAN_COLUMNS` tuples.

    Works on column values rather than Span objects: an audit row is written on every
    save, before and after, and building hundreds of Spans for it would cost more than
    the save itself.
    """
    return {
        "spans": [_span_json(s) for s in spans],
        "relations": [_relation_json(r) for r in relations],
        "equivalences": [[e.label, list(e.members)] for e in equivalences],
    }


def _relation_json(rel: Relation) -> list[Any]:
    out: list[Any] = [rel.id, rel.label, rel.head, rel.tail]
    return [*out, list(rel.notes)] if rel.notes else out


_OPTIONAL = tuple(enumerate(SPAN_COLUMNS))[4:]  # fragments ... suggestion_id
_DEFAULTS = (None, None, None, "", SpanSource.MANUAL.value, None)  # their plain values


def _span_json(values: Sequence[Any]) -> list[Any]:
    """``[key, label, start, end]`` plus a dict of the columns that are not defaults."""
    out = [values[0], values[1], values[2], values[3]]
    if tuple(values[4:]) == _DEFAULTS:  # most spans: no dict to build
        return out
    extra = {name: values[i] for i, name in _OPTIONAL if values[i] not in (None, "")}
    if extra.get("source") == SpanSource.MANUAL.value:
        del extra["source"]
    return [*out, extra]


def gold_from_audit(
    record: Mapping[str, Any],
) -> tuple[list[Span], list[Relation], list[Equivalence]]:
    """The gold an :func:`audit_json` record describes (a kept gold version, say)."""
    spans = [span_from_tuple(_span_columns(item)) for item in record.get("spans", [])]
    relations = [
        Relation(id=r[0], label=r[1], head=r[2], tail=r[3], notes=tuple(r[4] if len(r) > 4 else ()))
        for r in record.get("relations", [])
    ]
    equivalences = [
        Equivalence(label=label, members=tuple(members))
        for label, members in record.get("equivalences", [])
    ]
    return spans, relations, equivalences


def _span_columns(item: Sequence[Any]) -> tuple[Any, ...]:
    extra = item[4] if len(item) > 4 else {}
    defaults = dict(zip(SPAN_COLUMNS[4:], _DEFAULTS, strict=True))
    return (*item[:4], *({**defaults, **extra}[name] for name in SPAN_COLUMNS[4:]))
