"""The generative backend's prompts and targets, chunk by chunk, in one vocabulary.

Pure Python. The instructions, inputs and answers are exactly those of the
instruction-tuning export (:mod:`noteloop.core.formats.instruct`): a chunk of a note is
turned into a small :class:`Document` of its own (its text, the spans that lie wholly
inside it, shifted, and the relations between those), and ``ce_example`` /
``re_example`` are called on it. Training, prediction and the exported JSONL therefore
never disagree about a prompt.

Chunks matter because a small model on a CPU cannot read a 5,000-word note at once, and
a large one should not have to: a note is cut into chunks of a few hundred tokens
(:func:`noteloop.core.align.sentence_chunks`), each is asked about on its own, and what
is found is shifted back by the chunk's start. Relations are asked for within a chunk:
two entities in different chunks are never related by this backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from noteloop.core.formats.instruct import (
    ce_example,
    entity_instruction,
    mentions,
    re_example,
    relation_input,
    relation_instruction,
)
from noteloop.core.schema import Document, LabelSchema, Span

SYSTEM = "You are a careful clinical annotator. Answer with JSON only."
TASKS = ("concept_extraction", "relation_extraction")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A stretch ``[start, end)`` of note ``doc`` (an index into the caller's list)."""

    doc: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Example:
    """One prompt (system, user) and, when training, the answer to learn."""

    task: str
    chunk: Chunk
    user: str
    answer: str = ""

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.user}]


def user_message(instruction: str, note_input: str) -> str:
    return f"{instruction}\n\nNote:\n{note_input}"


def chunk_document(doc: Document, chunk: Chunk, spans: Sequence[Span] | None = None
                   ) -> Document:
    """The chunk as a document: its text, the spans wholly inside it (shifted to chunk
    offsets, ids kept), and the relations between those spans.

    ``spans`` replaces the document's own spans (predicted mentions, for relations).
    """
    base, inside = chunk.start, []
    for span in doc.spans if spans is None else spans:
        if chunk.start <= span.start and span.end <= chunk.end:
            inside.append(_shifted(span, base))
    ids = {s.id for s in inside}
    relations = tuple(r for r in doc.relations if spans is None and {r.head, r.tail} <= ids)
    return Document(doc.id, doc.text[chunk.start : chunk.end], tuple(inside), relations)


def _shifted(span: Span, base: int) -> Span:
    frags = tuple((a - base, b - base) for a, b in span.fragments)
    return Span(span.id, span.label, span.start - base, span.end - base, frags)


def training_examples(doc: Document, chunks: Sequence[Chunk], schema: LabelSchema,
                      relations: bool) -> list[Example]:
    """Concept examples for every chunk and, with ``relations`` and a schema that has
    relation types, relation examples for the chunks holding two entities or more."""
    out = []
    for chunk in chunks:
        part = chunk_document(doc, chunk)
        ce = ce_example(part, schema)
        out.append(Example(TASKS[0], chunk, user_message(ce["instruction"], ce["input"]),
                           ce["output"]))
        if relations and schema.relation_types and len(mentions(part, schema)) >= 2:
            re_ = re_example(part, schema)
            out.append(Example(TASKS[1], chunk, user_message(re_["instruction"], re_["input"]),
                               re_["output"]))
    return out


def concept_prompt(doc: Document, chunk: Chunk, schema: LabelSchema) -> Example:
    text = doc.text[chunk.start : chunk.end]
    return Example(TASKS[0], chunk, user_message(entity_instruction(schema), text))


def relation_prompt(doc: Document, chunk: Chunk, schema: LabelSchema, spans: Sequence[Span]
                    ) -> tuple[Example, dict[str, str]]:
    """The relation prompt over ``spans`` (note offsets) of the chunk, and the numbering
    from prompt entity numbers (``"T1"``...) back to the span ids."""
    part = chunk_document(doc, chunk, spans=spans)
    listed = mentions(part, schema)
    text, numbers = relation_input(part.text, listed)
    example = Example(TASKS[1], chunk, user_message(relation_instruction(schema), text))
    return example, {number: span_id for span_id, number in numbers.items()}
