"""What the columns can hold, checked before a write, so that no database refuses a value
half-way through a unit of work (PostgreSQL refuses a label longer than its column; SQLite
would store it silently, and the two would disagree).

The lengths are read from :mod:`noteloop.db.models`, the one place that declares them. The
checks name the item (a span, a relation) so an importer can point at its file line.
:func:`check_name` checks a name (a project's, a user's, an annotator's, a model version's)
against the 200 characters its column holds. :func:`chunks` slices a list of ids so that
each ``IN`` list stays under SQLite's bound-parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from noteloop.core.schema import Document, LabelSchema
from noteloop.db import models
from noteloop.db.errors import StoreError

# A problem: the id of the span or relation it is in (None: the document itself), and why.
Problem = tuple[str | None, str]


# Column attribute (by identity: SQLAlchemy's attributes overload ``==``) -> length. Reading
# ``column.type`` through the instrumented attribute costs microseconds, and an import of
# 10,000 notes asks it for every span's id, label and concept.
_LENGTHS: dict[int, int] = {}


def length(column: Any) -> int:
    """The declared length of a ``String(n)`` model column, e.g. ``models.Span.label``."""
    found = _LENGTHS.get(id(column))
    if found is None:
        found = _LENGTHS[id(column)] = int(column.type.length)
    return found


def value_problem(what: str, value: str, column: Any = None) -> str:
    """Why ``value`` cannot be stored as ``what`` ("" when it can): too long for
    ``column``, or holding a NUL character (PostgreSQL text refuses those)."""
    if column is not None and len(value) > length(column):
        return (
            f"{what} is {len(value)} characters long, more than the {length(column)} "
            f"the database holds: {value[:40]!r}..."
        )
    if "\x00" in value:
        return f"{what} contains a NUL character: {value[:40]!r}"
    return ""


def document_id_problem(doc_id: str) -> str:
    """Why ``doc_id`` cannot be a stored document's id ("" when it can)."""
    return value_problem(f"document id {doc_id[:40]!r}", doc_id, models.Document.external_id)


def document_problems(doc: Document) -> list[Problem]:
    """Every value of ``doc`` that a text column cannot store, in document order: its id
    and its items' ids, labels and concepts. (Metadata, attributes and notes are JSON,
    which holds any string.)"""
    return [(item, message) for item, message in _document_values(doc) if message]


def _document_values(doc: Document) -> Iterator[Problem]:
    yield None, document_id_problem(doc.id)
    for span in doc.spans:
        where = f"document {doc.id}: span {span.id[:40]}"
        yield span.id, value_problem(f"{where}: id", span.id, models.Span.key)
        yield span.id, value_problem(f"{where}: label", span.label, models.Span.label)
        yield span.id, value_problem(f"{where}: concept", span.concept, models.Span.concept)
    for rel in doc.relations:
        where = f"document {doc.id}: relation {rel.id[:40]}"
        yield rel.id, value_problem(f"{where}: id", rel.id, models.Relation.key)
        yield rel.id, value_problem(f"{where}: label", rel.label, models.Relation.label)
    for eq in doc.equivalences:
        yield None, value_problem(
            f"document {doc.id}: equivalence label", eq.label, models.Equivalence.label
        )


def schema_problems(schema: LabelSchema) -> list[str]:
    """Why names of ``schema`` could label no span or relation (empty: they all can)."""
    names = [
        *(("entity type", n, models.Span.label) for n in schema.entity_names),
        *(("relation type", n, models.Relation.label) for n in schema.relation_names),
    ]
    found = (value_problem(f"{kind} {name[:40]!r}", name, column) for kind, name, column in names)
    return [message for message in found if message]


def check_name(kind: str, name: str) -> str:
    """``name`` when it can name a ``kind`` (a project, a user, an annotator, a model
    version): non-empty, at most the 200 characters a name column holds, unpadded.

    Raises:
        StoreError: it cannot.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise StoreError(f"{kind} name {name!r} must be non-empty and at most 200 characters")
    if name != name.strip():
        raise StoreError(f"{kind} name {name!r} must not begin or end with spaces")
    return name


def chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    """``items`` in slices of ``size``: an ``IN`` list per slice stays under SQLite's
    bound-parameter limit."""
    return [items[i : i + size] for i in range(0, len(items), size)]
