"""Instruction-tuning JSONL: the examples a generative model trains on.

One JSON object per line, two tasks per document:

``concept_extraction``
    ``{"id": doc id, "task": "concept_extraction", "instruction": ..., "input": the note,
    "output": JSON text}`` where the output lists ``{"text": mention, "type": label}`` in
    text order (by start, then end, then label); a mention that occurs twice appears twice.
    A discontinuous mention's text is its fragments joined by one space.
``relation_extraction`` (only when the schema has relation types)
    The input is the note, a blank line, ``Entities:`` and one line per entity in text
    order, numbered ``T1``, ``T2``... (``[T1] Drug: "aspirin"``, the mention as a JSON
    string). The output lists ``{"head": "T1", "type": label, "tail": "T3"}``, ordered by
    head number, then tail number, then type.

Only labels the schema knows appear: spans of other types, and relations of other types
or touching such spans, are left out, so the output never names a type the instruction
did not offer. Equivalence groups are not part of either task.

The prompt builders (:func:`entity_instruction`, :func:`relation_instruction`,
:func:`relation_input`) are deterministic and public: a generative backend builds its
prompts with them so that inference sees exactly what training saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from noteloop.core.schema import Document, LabelSchema, Relation, RelationType, Span

__all__ = [
    "ce_example",
    "entity_instruction",
    "mentions",
    "re_example",
    "relation_input",
    "relation_instruction",
    "write_instruct",
]


def entity_instruction(schema: LabelSchema) -> str:
    """The concept-extraction instruction: the entity types and how to answer."""
    types = [
        f"- {e.name}: {e.description}" if e.description else f"- {e.name}"
        for e in schema.entity_types
    ]
    return "\n".join([
        "Extract every mention of the following entity types from the clinical note.",
        "Entity types:",
        *types,
        'Answer with a JSON list of {"text": mention as written, "type": entity type} '
        "objects in the order the mentions appear in the note, repeating a mention each "
        "time it occurs. Answer [] if there is none.",
    ])  # fmt: skip


def relation_instruction(schema: LabelSchema) -> str:
    """The relation-extraction instruction: the relation types, their arguments, the answer."""
    return "\n".join([
        "The clinical note is followed by a numbered list of its entities. List every "
        "relation between two of these entities.",
        "Relation types (head -> tail):",
        *(_relation_line(rt) for rt in schema.relation_types),
        'Answer with a JSON list of {"head": entity number, "type": relation type, '
        '"tail": entity number} objects, such as {"head": "T1", "type": "...", "tail": "T2"}. '
        "Answer [] if there is none.",
    ])  # fmt: skip


def _relation_line(rt: RelationType) -> str:
    heads = " | ".join(rt.heads) or "any"
    tails = " | ".join(rt.tails) or "any"
    symmetric = ", either direction" if rt.symmetric else ""
    line = f"- {rt.name} ({heads} -> {tails}{symmetric})"
    return f"{line}: {rt.description}" if rt.description else line


def mentions(doc: Document, schema: LabelSchema) -> list[Span]:
    """The spans of schema types, in text order: the entities both tasks talk about."""
    known = set(schema.entity_names)
    spans = [s for s in doc.spans if s.label in known]
    return sorted(spans, key=lambda s: (s.start, s.end, s.label, s.id))


def ce_example(doc: Document, schema: LabelSchema) -> dict[str, str]:
    """One concept-extraction example; ``output`` is a JSON string."""
    output = [{"text": s.text_in(doc.text), "type": s.label} for s in mentions(doc, schema)]
    return {
        "id": doc.id,
        "task": "concept_extraction",
        "instruction": entity_instruction(schema),
        "input": doc.text,
        "output": _json(output),
    }


def relation_input(text: str, spans: Iterable[Span]) -> tuple[str, dict[str, str]]:
    """The relation-extraction input for ``spans`` (in the order given), and its numbering.

    Returns:
        The input text, and a map from each span id to its number in it (``"T1"``...),
        so a backend can turn the model's answer back into span ids.
    """
    spans = list(spans)
    numbers = {s.id: f"T{n}" for n, s in enumerate(spans, start=1)}
    listed = [f"[{numbers[s.id]}] {s.label}: {_json(s.text_in(text))}" for s in spans]
    return "\n".join([text, "", "Entities:", *listed]), numbers


def re_example(doc: Document, schema: LabelSchema) -> dict[str, str]:
    """One relation-extraction example; ``output`` is a JSON string."""
    text, numbers = relation_input(doc.text, mentions(doc, schema))
    known = set(schema.relation_names)
    kept = [r for r in doc.relations if r.label in known and {r.head, r.tail} <= numbers.keys()]
    output = [
        {"head": numbers[r.head], "type": r.label, "tail": numbers[r.tail]}
        for r in sorted(kept, key=lambda r: _relation_order(r, numbers))
    ]
    return {
        "id": doc.id,
        "task": "relation_extraction",
        "instruction": relation_instruction(schema),
        "input": text,
        "output": _json(output),
    }


def _relation_order(rel: Relation, numbers: dict[str, str]) -> tuple[int, int, str]:
    return (int(numbers[rel.head][1:]), int(numbers[rel.tail][1:]), rel.label)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_instruct(docs: Iterable[Document], schema: LabelSchema, path: Path) -> int:
    """Write both tasks' examples of every document to ``path``; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        for doc in docs:
            examples = [ce_example(doc, schema)]
            if schema.relation_types:
                examples.append(re_example(doc, schema))
            handle.write("".join(_json(e) + "\n" for e in examples))
            count += len(examples)
    return count
