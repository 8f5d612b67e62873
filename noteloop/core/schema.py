"""One vocabulary: the validated dataclasses that formats, model, database and UI all speak.

Every class refuses a bad value when it is built, with a message that names the field and
the value, so no layer downstream has to re-check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any

from noteloop.core.errors import (
    InvalidDocumentError,
    InvalidRelationError,
    InvalidSpanError,
    SchemaError,
)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Labels travel through BRAT lines, CoNLL tags and instruction prompts: no whitespace,
# no characters that those formats use as separators.
_LABEL = re.compile(r"^[^\s:=|,;\t]+$")
_WHITESPACE = re.compile(r"\s")

# Colours handed out to entity types that come without one (a colour-blind-safe ramp).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#2ca02c",
    "#d62728",
    "#9467bd",
)


class SpanSource(StrEnum):
    """Where a gold span came from: keeps acceptance rates and learning curves honest."""

    MANUAL = "manual"  # drawn by the annotator
    ACCEPTED = "accepted"  # a suggestion accepted unchanged
    EDITED = "edited"  # a suggestion accepted after changing offsets or label
    IMPORTED = "imported"  # gold that arrived in a file


class Split(StrEnum):
    """A document either feeds training (pool) or only ever measures it (test)."""

    POOL = "pool"
    TEST = "test"


class Role(StrEnum):
    ANNOTATOR = "annotator"
    LEAD = "lead"
    ADMIN = "admin"


class AnnotationStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"


def check_label(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _LABEL.match(name):
        raise SchemaError(
            f"{kind} name {name!r} is not valid: use a non-empty name without spaces, "
            "tabs or any of : = | , ;"
        )


# --------------------------------------------------------------------------- annotations


@dataclass(frozen=True, slots=True)
class Span:
    """A labelled stretch of a note, by character offsets into the exact stored text.

    ``fragments`` holds the pieces of a discontinuous span (BRAT ``0 5;9 12``); a
    contiguous span has one fragment equal to ``(start, end)``.
    """

    id: str
    label: str
    start: int
    end: int
    fragments: tuple[tuple[int, int], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    concept: str = ""  # a normalisation id (MeSH, UMLS CUI...), "" when none
    source: SpanSource = SpanSource.MANUAL
    suggestion_id: int | None = None

    def __post_init__(self) -> None:
        if not self.id or _WHITESPACE.search(self.id):
            raise InvalidSpanError(f"span id {self.id!r} must be non-empty without whitespace")
        check_label("entity type", self.label)
        if not isinstance(self.start, int) or not isinstance(self.end, int):
            raise InvalidSpanError(f"span {self.id}: offsets must be integers")
        if self.start < 0:
            raise InvalidSpanError(f"span {self.id}: start must be >= 0, got {self.start}")
        if self.start >= self.end:
            raise InvalidSpanError(
                f"span {self.id}: start must be less than end, got {self.start} >= {self.end}"
            )
        frags = self.fragments or ((self.start, self.end),)
        object.__setattr__(self, "fragments", tuple((int(a), int(b)) for a, b in frags))
        self._check_fragments()
        object.__setattr__(self, "attributes", tuple(sorted(self.attributes)))
        object.__setattr__(self, "source", SpanSource(self.source))

    def _check_fragments(self) -> None:
        frags = self.fragments
        if frags[0][0] != self.start or frags[-1][1] != self.end:
            raise InvalidSpanError(
                f"span {self.id}: fragments {list(frags)} must begin at start {self.start} "
                f"and end at end {self.end}"
            )
        for (a, b), (c, _) in pairwise(frags):
            if b <= a or c < b:
                raise InvalidSpanError(
                    f"span {self.id}: fragments {list(frags)} must be non-empty, ordered "
                    "and must not overlap"
                )
        if frags[-1][1] <= frags[-1][0]:
            raise InvalidSpanError(f"span {self.id}: fragment {frags[-1]} is empty")

    @property
    def discontinuous(self) -> bool:
        return len(self.fragments) > 1

    def text_in(self, text: str) -> str:
        """The covered text; fragments joined by a space, as BRAT writes them."""
        return " ".join(text[a:b] for a, b in self.fragments)

    def attribute(self, name: str) -> str | None:
        return next((v for k, v in self.attributes if k == name), None)

    def key(self) -> tuple[Any, ...]:
        """What makes two spans the same annotation, whatever their ids and provenance."""
        return (self.label, self.fragments, self.attributes, self.notes, self.concept)

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class Relation:
    """A directed, typed link from the ``head`` span to the ``tail`` span (span ids)."""

    id: str
    label: str
    head: str
    tail: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.id or _WHITESPACE.search(self.id):
            raise InvalidRelationError(
                f"relation id {self.id!r} must be non-empty without whitespace"
            )
        check_label("relation type", self.label)
        if not self.head or not self.tail:
            raise InvalidRelationError(f"relation {self.id}: head and tail must name spans")


@dataclass(frozen=True, slots=True)
class Equivalence:
    """A BRAT ``*`` line: a group of spans that are the same in some respect (symmetric)."""

    label: str
    members: tuple[str, ...]

    def __post_init__(self) -> None:
        check_label("equivalence type", self.label)
        if len(self.members) < 2:
            raise InvalidRelationError(
                f"equivalence {self.label} needs at least two spans, got {list(self.members)}"
            )


@dataclass(frozen=True)
class Document:
    """A note: its exact text and, when annotated, its spans, relations and equivalences.

    The text is immutable once stored: every offset in the project counts characters of it.
    """

    id: str
    text: str
    spans: tuple[Span, ...] = ()
    relations: tuple[Relation, ...] = ()
    equivalences: tuple[Equivalence, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise InvalidDocumentError(f"document id {self.id!r} must be a non-empty string")
        if not isinstance(self.text, str):
            raise InvalidDocumentError(f"document {self.id}: text must be a string")
        if "\x00" in self.text:
            raise InvalidDocumentError(
                f"document {self.id}: text contains NUL characters (a binary file?)"
            )
        object.__setattr__(self, "spans", tuple(self.spans))
        object.__setattr__(self, "relations", tuple(self.relations))
        object.__setattr__(self, "equivalences", tuple(self.equivalences))
        self._check_spans()
        self._check_relations()

    def _check_spans(self) -> None:
        seen: set[str] = set()
        for span in self.spans:
            if span.id in seen:
                raise InvalidSpanError(f"document {self.id}: duplicate span id {span.id}")
            seen.add(span.id)
            if span.end > len(self.text):
                raise InvalidSpanError(
                    f"document {self.id}: span {span.id} ends at {span.end}, beyond the "
                    f"text (length {len(self.text)})"
                )

    def _check_relations(self) -> None:
        span_ids = {s.id for s in self.spans}
        seen: set[str] = set()
        for rel in self.relations:
            if rel.id in seen or rel.id in span_ids:
                raise InvalidRelationError(f"document {self.id}: duplicate id {rel.id}")
            seen.add(rel.id)
            for role, ref in (("head", rel.head), ("tail", rel.tail)):
                if ref not in span_ids:
                    raise InvalidRelationError(
                        f"document {self.id}: relation {rel.id} {role} {ref} is not a span "
                        "of this document"
                    )
        for eq in self.equivalences:
            missing = [m for m in eq.members if m not in span_ids]
            if missing:
                raise InvalidRelationError(
                    f"document {self.id}: equivalence {eq.label} names unknown spans {missing}"
                )

    def span(self, span_id: str) -> Span:
        for s in self.spans:
            if s.id == span_id:
                return s
        raise KeyError(span_id)

    def with_annotations(
        self,
        spans: Iterable[Span] = (),
        relations: Iterable[Relation] = (),
        equivalences: Iterable[Equivalence] = (),
    ) -> Document:
        return replace(
            self, spans=tuple(spans), relations=tuple(relations), equivalences=tuple(equivalences)
        )

    def without_annotations(self) -> Document:
        return self.with_annotations()

    def annotation_set(self) -> tuple[frozenset[Any], frozenset[Any], frozenset[Any]]:
        """Spans, relations and equivalences as comparable sets, independent of ids.

        Two documents with the same annotation set say the same thing, whatever ids
        and order a format gave them: round-trip tests compare these.
        """
        by_id = {s.id: s.key() for s in self.spans}
        spans = frozenset((k, n) for k, n in _count(by_id.values()).items())
        rels = _count((r.label, by_id[r.head], by_id[r.tail], r.notes) for r in self.relations)
        eqs = _count(
            (e.label, tuple(sorted(by_id[m] for m in e.members))) for e in self.equivalences
        )
        return spans, frozenset(rels.items()), frozenset(eqs.items())


def _count(items: Iterable[Any]) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Model output for one span or relation, with the model's confidence in it."""

    item: Span | Relation
    score: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(
                f"suggestion {self.item.id}: score must be in [0, 1], got {self.score}"
            )


# --------------------------------------------------------------------------- label schema


@dataclass(frozen=True, slots=True)
class EntityType:
    name: str
    color: str = ""
    hotkey: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        check_label("entity type", self.name)
        if self.color and not _COLOR.match(self.color):
            raise SchemaError(
                f"entity type {self.name}: color must look like #a1b2c3, got {self.color!r}"
            )
        if self.hotkey and (len(self.hotkey) != 1 or not self.hotkey.isalnum()):
            raise SchemaError(
                f"entity type {self.name}: hotkey must be one letter or digit, got {self.hotkey!r}"
            )


@dataclass(frozen=True, slots=True)
class RelationType:
    """A directed relation type; empty ``heads``/``tails`` allow any entity type there."""

    name: str
    heads: tuple[str, ...] = ()
    tails: tuple[str, ...] = ()
    symmetric: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        check_label("relation type", self.name)
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "tails", tuple(self.tails))

    def allows(self, head_label: str, tail_label: str) -> bool:
        ok = (not self.heads or head_label in self.heads) and (
            not self.tails or tail_label in self.tails
        )
        if not ok and self.symmetric:
            return (not self.heads or tail_label in self.heads) and (
                not self.tails or head_label in self.tails
            )
        return ok


@dataclass(frozen=True, slots=True)
class AttributeType:
    """A span attribute: a flag when ``values`` is empty (stored as "true"), else a choice."""

    name: str
    values: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check_label("attribute", self.name)
        object.__setattr__(self, "values", tuple(self.values))

    def accepts(self, value: str) -> bool:
        return value == "true" if not self.values else value in self.values


@dataclass(frozen=True)
class LabelSchema:
    """The project's labels: entity types, relation types (with allowed arguments), attributes."""

    entity_types: tuple[EntityType, ...] = ()
    relation_types: tuple[RelationType, ...] = ()
    attributes: tuple[AttributeType, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_types", tuple(self.entity_types))
        object.__setattr__(self, "relation_types", tuple(self.relation_types))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        for kind, names in (
            ("entity type", [e.name for e in self.entity_types]),
            ("relation type", [r.name for r in self.relation_types]),
            ("attribute", [a.name for a in self.attributes]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise SchemaError(f"duplicate {kind} name(s): {', '.join(dupes)}")
        self._check_hotkeys()
        self._check_relation_arguments()

    def _check_hotkeys(self) -> None:
        keys = [e.hotkey.lower() for e in self.entity_types if e.hotkey]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise SchemaError(f"hotkey(s) used by more than one entity type: {', '.join(dupes)}")

    def _check_relation_arguments(self) -> None:
        known = set(self.entity_names)
        for rt in self.relation_types:
            unknown = sorted(set(rt.heads + rt.tails) - known)
            if unknown:
                raise SchemaError(
                    f"relation type {rt.name} names unknown entity type(s): {', '.join(unknown)}"
                )

    @property
    def entity_names(self) -> list[str]:
        return [e.name for e in self.entity_types]

    @property
    def relation_names(self) -> list[str]:
        return [r.name for r in self.relation_types]

    def entity(self, name: str) -> EntityType:
        for e in self.entity_types:
            if e.name == name:
                return e
        raise SchemaError(f"entity type {name!r} is not in the schema")

    def relation(self, name: str) -> RelationType:
        for r in self.relation_types:
            if r.name == name:
                return r
        raise SchemaError(f"relation type {name!r} is not in the schema")

    def color(self, name: str) -> str:
        names = self.entity_names
        color = self.entity(name).color
        return color or PALETTE[names.index(name) % len(PALETTE)]

    def problems(self, doc: Document) -> list[tuple[str, str]]:
        """Every way ``doc`` breaks this schema: (id of the span or relation, sentence).

        The id lets an importer point at the file line that holds the offending item.
        """
        out: list[tuple[str, str]] = []
        known_e = set(self.entity_names)
        attrs = {a.name: a for a in self.attributes}
        for s in doc.spans:
            if s.label not in known_e:
                out.append((s.id, f"span {s.id}: entity type {s.label!r} is not in the schema"))
            for name, value in s.attributes:
                if name not in attrs:
                    out.append((s.id, f"span {s.id}: attribute {name!r} is not in the schema"))
                elif not attrs[name].accepts(value):
                    out.append(
                        (s.id, f"span {s.id}: attribute {name} does not accept value {value!r}")
                    )
        out.extend(self._relation_problems(doc))
        return out

    def _relation_problems(self, doc: Document) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        labels = {s.id: s.label for s in doc.spans}
        types = {r.name: r for r in self.relation_types}
        for rel in doc.relations:
            rt = types.get(rel.label)
            if rt is None:
                msg = f"relation {rel.id}: relation type {rel.label!r} is not in the schema"
                out.append((rel.id, msg))
            elif not rt.allows(labels[rel.head], labels[rel.tail]):
                msg = (
                    f"relation {rel.id}: {rel.label} is not allowed from "
                    f"{labels[rel.head]} to {labels[rel.tail]}"
                )
                out.append((rel.id, msg))
        for eq in doc.equivalences:
            if eq.label not in types:
                msg = f"equivalence {eq.label!r} is not a relation type of the schema"
                out.append((eq.members[0], msg))
        return out

    def extended_with(self, docs: Iterable[Document]) -> LabelSchema:
        """This schema plus every label the documents use that it lacks (``--extend-schema``).

        New relation types allow any arguments; existing relation types widen their
        allowed heads/tails to what the documents use, so the documents then validate.
        """
        entities = list(self.entity_types)
        relations = {r.name: r for r in self.relation_types}
        attributes = {a.name: a for a in self.attributes}
        for doc in docs:
            _extend_entities(entities, doc)
            _extend_relations(relations, doc)
            _extend_attributes(attributes, doc)
        return LabelSchema(tuple(entities), tuple(relations.values()), tuple(attributes.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity_types": [
                {"name": e.name, "color": e.color, "hotkey": e.hotkey, "description": e.description}
                for e in self.entity_types
            ],
            "relation_types": [
                {
                    "name": r.name,
                    "heads": list(r.heads),
                    "tails": list(r.tails),
                    "symmetric": r.symmetric,
                    "description": r.description,
                }
                for r in self.relation_types
            ],
            "attributes": [
                {"name": a.name, "values": list(a.values), "description": a.description}
                for a in self.attributes
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSchema:
        if not isinstance(data, Mapping):
            raise SchemaError(
                "a schema must be a JSON object with entity_types, relation_types, attributes"
            )
        unknown = set(data) - {"entity_types", "relation_types", "attributes"}
        if unknown:
            raise SchemaError(f"unknown schema key(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                tuple(
                    EntityType(**_fields(e, "entity_types")) for e in data.get("entity_types", [])
                ),
                tuple(
                    RelationType(**_fields(r, "relation_types"))
                    for r in data.get("relation_types", [])
                ),
                tuple(
                    AttributeType(**_fields(a, "attributes")) for a in data.get("attributes", [])
                ),
            )
        except TypeError as exc:
            raise SchemaError(f"schema entry has an unexpected field: {exc}") from exc


def _fields(entry: Any, section: str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry}
    if not isinstance(entry, Mapping):
        raise SchemaError(f"{section}: each entry must be an object or a name, got {entry!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}


def _extend_entities(entities: list[EntityType], doc: Document) -> None:
    names = {e.name for e in entities}
    for s in doc.spans:
        if s.label not in names:
            names.add(s.label)
            entities.append(EntityType(s.label, color=PALETTE[len(entities) % len(PALETTE)]))


def _extend_relations(relations: dict[str, RelationType], doc: Document) -> None:
    labels = {s.id: s.label for s in doc.spans}
    for rel in doc.relations:
        head, tail = labels[rel.head], labels[rel.tail]
        rt = relations.get(rel.label)
        if rt is None:
            relations[rel.label] = RelationType(rel.label)
        elif not rt.allows(head, tail):
            heads = rt.heads + ((head,) if rt.heads and head not in rt.heads else ())
            tails = rt.tails + ((tail,) if rt.tails and tail not in rt.tails else ())
            relations[rel.label] = replace(rt, heads=heads, tails=tails)
    for eq in doc.equivalences:
        relations.setdefault(eq.label, RelationType(eq.label, symmetric=True))


def _extend_attributes(attributes: dict[str, AttributeType], doc: Document) -> None:
    for s in doc.spans:
        for name, value in s.attributes:
            at = attributes.get(name)
            if at is None:
                attributes[name] = AttributeType(name, () if value == "true" else (value,))
            elif not at.accepts(value):
                # A flag that gains a value keeps "true" among its values: the documents
                # that used it as a flag must still validate.
                kept = at.values or ("true",)
                attributes[name] = replace(at, values=(*kept, value))


def label_uses(doc: Document) -> set[tuple[str, ...]]:
    """What :meth:`LabelSchema.extended_with` reads of ``doc``: its entity labels, each
    relation's label with the labels of its ends, its attribute values and equivalence
    labels. Extending a schema with the first document of each use, in order, gives what
    extending it with every document gives, so a large import need not keep them all."""
    labels = {s.id: s.label for s in doc.spans}
    return {
        *(("entity", s.label) for s in doc.spans),
        *(("relation", r.label, labels[r.head], labels[r.tail]) for r in doc.relations),
        *(("attribute", name, value) for s in doc.spans for name, value in s.attributes),
        *(("equivalence", e.label) for e in doc.equivalences),
    }


def schema_from_documents(docs: Sequence[Document]) -> LabelSchema:
    """The smallest schema under which every one of ``docs`` validates."""
    return LabelSchema().extended_with(docs)
