"""doccano JSONL: a sequence-labeling project's export, with or without relations, and back.

doccano (``backend/data_export``) exports a sequence-labeling project as one JSON object per
example: ``{"id": 1, "text": "...", <metadata keys>, "label": [[0, 7, "Drug"], ...],
"Comments": []}``, and, when the project has relation labeling on, the relation shape::

    {"id": 1, "text": "Aspirin for chest pain.", "ward": "ICU",
     "entities": [{"id": 10, "label": "Drug", "start_offset": 0, "end_offset": 7},
                  {"id": 11, "label": "Sign", "start_offset": 12, "end_offset": 22}],
     "relations": [{"id": 3, "from_id": 10, "to_id": 11, "type": "treats"}]}

**Export** (``documents.doccano.jsonl``) writes the relation shape, which doccano's importer
takes as "JSONL(Relation)" in a sequence-labeling project with relation labeling on
(``backend/data_import``: the text in ``text``, spans in ``entities``, relations in
``relations``; every other key of a line becomes the example's metadata):

- ``id`` is the document id (doccano keeps it as metadata, and its own export writes a
  metadata ``id`` over the example's number, so the id comes back); the document's metadata
  are further keys of the line;
- entity and relation ids run over the whole file, not per line, as in doccano's own
  export (database ids): doccano's first relation importer matched relation ends to
  entities by id across a batch of lines, so ids repeated in another line could join the
  wrong spans;
- a discontinuous span is written as one extent, first fragment to last; overlapping spans
  are written as they are, but doccano keeps them only in a project with "Allow overlapping
  entity" on: elsewhere its importer drops every span that starts inside an earlier one,
  and a relation to a dropped span fails the import;
- what doccano has no place for (fragments, attributes, notes, concepts, relation notes,
  equivalences, metadata named like one of doccano's own columns) travels in a ``noteloop``
  key, written only when a note has any: doccano keeps it as metadata and writes it back,
  and noteloop's import restores it for every span doccano left unchanged (see
  :func:`noteloop.core.formats.peer_json.with_payload`).

**Import** reads both shapes, one example per non-blank line:

- the text is ``text`` (doccano's default column), else ``data`` (what earlier doccano
  versions exported);
- spans are ``entities``, ``label`` or ``labels`` (earlier exports), one of them: each an
  ``[start, end, label]`` triple or an object with ``start_offset``, ``end_offset`` and
  ``label`` (doccano's ``SpanLabel.parse`` takes both), with an integer ``id`` where
  relations refer to it;
- relations need ``from_id``, ``to_id`` (entity ids of the same line) and ``type``;
- the document id is ``id`` (a string or an integer), else ``FILE-N`` (N: the line's place
  among the file's examples), unique in the file; every other key becomes metadata (strings
  as they are, other values as their JSON text; nulls and empty lists, such as an empty
  ``Comments``, left out).

Every bad line (not JSON, no text, offsets that are not integers, beyond the text or empty, a
relation to an unknown entity id, an entity id twice) is reported with its line, and the
file is refused whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Parsed, raise_if_errors
from noteloop.core.formats.peer_json import (
    PAYLOAD,
    Bad,
    ExportReport,
    attempt,
    document_id,
    each,
    integer,
    json_lines,
    kind,
    metadata_of,
    read_documents,
    span_within,
    string,
    with_payload,
    write_lines,
)
from noteloop.core.schema import Document, Relation, Span

__all__ = ["read_doccano", "write_doccano"]

_SPAN_KEYS = ("entities", "label", "labels")
_TEXT_KEYS = ("text", "data")
# Keys doccano reads or writes itself (its importer's internal columns included): a metadata
# key of one of these names could not be a line's own key.
_RESERVED = frozenset(
    {"id", *_TEXT_KEYS, *_SPAN_KEYS, "relations", "Comments", PAYLOAD, "filename",
     "upload_name", "example_uuid", "#line_number"}
)


# --------------------------------------------------------------------------- writing


def write_doccano(docs: Iterable[Document], path: Path) -> ExportReport:
    """Write one doccano example (the relation shape) per document to ``path``; returns what
    doccano's own fields could not hold as noteloop holds it."""
    example = partial(_example, entities=count(), relations=count())
    return write_lines(docs, path, example, reserved=_RESERVED)


def _example(doc: Document, entities: Iterator[int], relations: Iterator[int]) -> dict[str, Any]:
    number = {s.id: next(entities) for s in doc.spans}
    row: dict[str, Any] = {"id": doc.id, "text": doc.text}
    row.update((k, v) for k, v in doc.metadata.items() if k not in _RESERVED)
    row["entities"] = [
        {"id": number[s.id], "label": s.label, "start_offset": s.start, "end_offset": s.end}
        for s in doc.spans
    ]
    row["relations"] = [
        {"id": next(relations), "from_id": number[r.head], "to_id": number[r.tail],
         "type": r.label}
        for r in doc.relations
    ]
    return row


# --------------------------------------------------------------------------- reading


def read_doccano(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """Every example of a doccano JSONL file (either shape), as a document.

    Raises:
        ImportFileError: with every bad line (and every bad span or relation within one).
    """
    objects, errors = json_lines(path, max_bytes)
    lines = ((place, no, row) for place, (no, row) in enumerate(objects, start=1))
    out, problems = read_documents(lines, path, _ExampleReader, "")
    raise_if_errors(sorted(errors + problems, key=lambda e: e.line), out)
    return out


class _ExampleReader:
    """Checks one example, collecting every problem rather than the first."""

    def __init__(self, row: dict[str, Any], fallback_id: str) -> None:
        self.row = row
        self.fallback_id = fallback_id
        self.problems: list[str] = []
        self.entity_ids: dict[int, str] = {}  # doccano entity id -> span id
        self.doc_id: str | None = None

    def document(self, name: str, no: int) -> tuple[list[str], Document | None]:
        text_key = next((k for k in _TEXT_KEYS if k in self.row), "text")
        text = attempt(self.problems, "text", lambda: string(self.row, text_key))
        doc_id = self.doc_id = attempt(self.problems, "id", self._doc_id)
        span_key = self._span_key()
        if text is None:
            return self.problems, None
        spans = self._spans(span_key, text) if span_key else []
        relations = self._relations()
        if self.problems or doc_id is None:
            return self.problems, None
        used = {text_key, span_key, "id", "relations", PAYLOAD}
        metadata = metadata_of((k, v) for k, v in self.row.items() if k not in used)
        doc = Document(doc_id, text, tuple(spans), tuple(relations), metadata=metadata)
        return with_payload(doc, self.row.get(PAYLOAD), name, no)

    def _doc_id(self) -> str:
        value = self.row.get("id")
        return self.fallback_id if value is None else document_id(value)

    def _span_key(self) -> str | None:
        present = [k for k in _SPAN_KEYS if self.row.get(k) is not None]
        if len(present) > 1:
            self.problems.append(
                f"spans: both {' and '.join(present)} are present; keep the one that holds them"
            )
        return present[0] if present else None

    def _spans(self, key: str, text: str) -> list[Span]:
        return each(self.row, key, self.problems, lambda item, n: self._span(item, f"T{n}", text))

    def _span(self, item: Any, span_id: str, text: str) -> Span:
        if isinstance(item, list):
            if len(item) != 3:
                raise Bad(f"expected [start_offset, end_offset, label], got {item!r}")
            item = dict(zip(("start_offset", "end_offset", "label"), item, strict=True))
        if not isinstance(item, dict):
            raise Bad(f"expected an object or a [start, end, label] list, got {kind(item)}")
        if "id" in item:  # first: a relation to a span with bad offsets is not also wrong
            self._entity_id(integer(item, "id"), span_id)
        start, end = integer(item, "start_offset"), integer(item, "end_offset")
        return span_within(span_id, string(item, "label"), start, end, text)

    def _entity_id(self, number: int, span_id: str) -> None:
        if number in self.entity_ids:
            raise Bad(f"entity id {number} is used twice in this line")
        self.entity_ids[number] = span_id

    def _relations(self) -> list[Relation]:
        return each(self.row, "relations", self.problems,
                    lambda item, n: self._relation(item, f"R{n}"))

    def _relation(self, item: Any, rel_id: str) -> Relation:
        if not isinstance(item, dict):
            raise Bad(f"expected an object, got {kind(item)}")
        label = string(item, "type")
        head, tail = self._end(item, "from_id"), self._end(item, "to_id")
        return Relation(rel_id, label, head, tail)

    def _end(self, item: Mapping[str, Any], key: str) -> str:
        number = integer(item, key)
        if number not in self.entity_ids:
            raise Bad(f"{key} {number} is not the id of an entity of this line")
        return self.entity_ids[number]
