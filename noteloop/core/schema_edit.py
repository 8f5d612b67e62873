"""Editing a label schema one type at a time, and what stored gold forbids changing.

Each edit returns a new :class:`LabelSchema`, so the schema's own checks (unique names
and hotkeys, relation arguments that exist) refuse a bad edit with their message. Gold
annotations never silently lose their labels: :func:`usage_conflicts` says, with counts,
what of a new schema the project's gold still uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from noteloop.core.errors import SchemaError
from noteloop.core.schema import AttributeType, EntityType, LabelSchema, RelationType

T = TypeVar("T", EntityType, RelationType, AttributeType)


def _put(items: tuple[T, ...], item: T, replacing: str | None, kind: str) -> tuple[T, ...]:
    """``items`` with ``item`` in place of the one named ``replacing`` (or appended)."""
    out = list(items)
    if replacing is None:
        out.append(item)
        return tuple(out)
    names = [i.name for i in items]
    if replacing not in names:
        raise SchemaError(f"{kind} {replacing!r} is not in the schema")
    out[names.index(replacing)] = item
    return tuple(out)


def _without(items: tuple[T, ...], name: str, kind: str) -> tuple[T, ...]:
    if name not in [i.name for i in items]:
        raise SchemaError(f"{kind} {name!r} is not in the schema")
    return tuple(i for i in items if i.name != name)


def put_entity(
    schema: LabelSchema, entity: EntityType, replacing: str | None = None
) -> LabelSchema:
    """Add ``entity``, or replace the type named ``replacing`` with it.

    A rename carries over to the relation types that allow the old name as head or tail.
    """
    relations = schema.relation_types
    if replacing is not None and replacing != entity.name:
        relations = tuple(
            replace(
                r,
                heads=tuple(entity.name if h == replacing else h for h in r.heads),
                tails=tuple(entity.name if t == replacing else t for t in r.tails),
            )
            for r in relations
        )
    entities = _put(schema.entity_types, entity, replacing, "entity type")
    return LabelSchema(entities, relations, schema.attributes)


def remove_entity(schema: LabelSchema, name: str) -> LabelSchema:
    """Remove an entity type; relation types stop allowing it as head or tail.

    Raises:
        SchemaError: a relation type allows only this type on one side: removing it
            would leave that side empty, which means *any* type.
    """
    relations = []
    for r in schema.relation_types:
        heads = tuple(h for h in r.heads if h != name)
        tails = tuple(t for t in r.tails if t != name)
        if (r.heads and not heads) or (r.tails and not tails):
            raise SchemaError(
                f"entity type {name} is the only allowed {'head' if not heads else 'tail'} "
                f"of relation type {r.name}: change or remove {r.name} first"
            )
        relations.append(replace(r, heads=heads, tails=tails))
    entities = _without(schema.entity_types, name, "entity type")
    return LabelSchema(entities, tuple(relations), schema.attributes)


def put_relation(
    schema: LabelSchema, relation: RelationType, replacing: str | None = None
) -> LabelSchema:
    relations = _put(schema.relation_types, relation, replacing, "relation type")
    return LabelSchema(schema.entity_types, relations, schema.attributes)


def remove_relation(schema: LabelSchema, name: str) -> LabelSchema:
    relations = _without(schema.relation_types, name, "relation type")
    return LabelSchema(schema.entity_types, relations, schema.attributes)


def put_attribute(
    schema: LabelSchema, attribute: AttributeType, replacing: str | None = None
) -> LabelSchema:
    attributes = _put(schema.attributes, attribute, replacing, "attribute")
    return LabelSchema(schema.entity_types, schema.relation_types, attributes)


def remove_attribute(schema: LabelSchema, name: str) -> LabelSchema:
    attributes = _without(schema.attributes, name, "attribute")
    return LabelSchema(schema.entity_types, schema.relation_types, attributes)


@dataclass(frozen=True)
class LabelUsage:
    """How a project's gold uses its labels (every annotation, submitted or in progress).

    ``spans``: entity type -> (spans, notes); ``relations``: (relation type, head type,
    tail type) -> relations; ``attributes``: (attribute, value) -> spans.
    """

    spans: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    relations: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], int] = field(default_factory=dict)


def usage_conflicts(schema: LabelSchema, usage: LabelUsage) -> list[str]:
    """Every way stored gold would break ``schema``, one sentence each, with counts.

    Empty when the schema can be saved without orphaning any gold annotation.
    """
    out = [
        f"entity type {label} is used by {n_spans} gold span(s) in {n_notes} note(s)"
        for label, (n_spans, n_notes) in sorted(usage.spans.items())
        if label not in schema.entity_names
    ]
    out += _relation_conflicts(schema, usage.relations)
    out += _attribute_conflicts(schema, usage.attributes)
    return out


def _relation_conflicts(
    schema: LabelSchema, relations: Mapping[tuple[str, str, str], int]
) -> list[str]:
    missing: dict[str, int] = {}
    out = []
    for (label, head, tail), n in sorted(relations.items()):
        if label not in schema.relation_names:
            missing[label] = missing.get(label, 0) + n
        elif not schema.relation(label).allows(head, tail):
            out.append(f"{n} gold {label} relation(s) go from {head} to {tail}, no longer allowed")
    return [f"relation type {k} is used by {n} gold relation(s)" for k, n in missing.items()] + out


def _attribute_conflicts(
    schema: LabelSchema, attributes: Mapping[tuple[str, str], int]
) -> list[str]:
    known = {a.name: a for a in schema.attributes}
    missing: dict[str, int] = {}
    out = []
    for (name, value), n in sorted(attributes.items()):
        if name not in known:
            missing[name] = missing.get(name, 0) + n
        elif not known[name].accepts(value):
            out.append(f"{n} gold span(s) have {name}={value}, a value it no longer accepts")
    return [f"attribute {k} is set on {n} gold span(s)" for k, n in missing.items()] + out


def parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated names (attribute values, say) as a tuple, blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
