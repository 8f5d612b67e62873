"""Prodigy JSONL: the task format of ``ner.manual``, ``spans.manual`` and ``rel.manual``, as
``prodigy db-out`` writes it and as a recipe reads its source, spans and relations both.

**Export** (``documents.prodigy.jsonl``, for ``prodigy db-in`` or as a recipe's source):
one task per note, answered ``accept``::

    {"text": "Aspirin for chest pain.", "meta": {"id": "n1", "ward": "ICU"},
     "tokens": [{"text": "Aspirin", "start": 0, "end": 7, "id": 0, "ws": true}, ...],
     "spans": [{"start": 0, "end": 7, "token_start": 0, "token_end": 0, "label": "Drug"},
               {"start": 12, "end": 22, "token_start": 2, "token_end": 3, "label": "Sign"}],
     "relations": [{"head": 0, "child": 3, "label": "treats",
                    "head_span": {"start": 0, "end": 7, "token_start": 0, "token_end": 0,
                                  "label": "Drug"},
                    "child_span": {"start": 12, "end": 22, "token_start": 2, "token_end": 3,
                                   "label": "Sign"}}],
     "answer": "accept"}

- ``tokens``: words and punctuation, also cut at every span boundary, so each span covers
  whole tokens exactly (nothing is widened). A single space after a token is its ``ws``;
  other whitespace is a token of its own, as spaCy tokenises it, so the tokens and their
  ``ws`` rebuild the text exactly.
- ``token_end`` is inclusive, and a relation's ``head``/``child`` is the index of the last
  token of its span: what Prodigy's relations interface saves (the ``rel_component``
  tutorial of explosion/projects reads ``head``/``child`` as "the end token in the span").
- A discontinuous span is written as one extent, first fragment to last. Overlapping spans
  are written as they are: ``spans.manual`` shows them, ``ner.manual`` and ``rel.manual``
  cannot.
- ``_input_hash``/``_task_hash`` are left out: Prodigy sets them with its own hash function
  when it loads the file.
- What Prodigy has no place for (fragments, attributes, notes, concepts, relation notes,
  equivalences, a metadata key named ``id``) travels in a ``noteloop`` key, written only
  when a note has any: the note as noteloop's JSONL holds it, without its text. Prodigy
  keeps a task's unknown keys through annotation and ``db-out``.

**Import** reads a ``db-out`` file or a task file, one task per non-blank line:

- ``text`` is required. Tasks answered ``reject`` or ``ignore`` are not gold: each is
  skipped with a note. A task without ``answer`` (a recipe's source) is read as it stands.
- Spans need ``start``, ``end`` and ``label``; character offsets rule, tokens are not needed.
- A relation's ends are found by ``head_span``/``child_span`` (offsets, and the label when
  given) among the task's spans, else by ``head``/``child`` as a span's ``token_end``. A
  relation to a token that is no span is refused: noteloop's relations join spans.
- The document id is ``meta.id``, else a top-level ``id``, else ``FILE-N`` (N: the task's
  place in the file). The other keys of ``meta`` become metadata (strings as they are, other
  values as their JSON text, nulls left out). Other keys of a task are ignored (Prodigy adds
  ``_view_id``, ``_session_id``, ``_timestamp``...).
- The same id twice, or the same ``_input_hash`` twice among accepted tasks, is refused:
  several annotations of one text (binary ``ner.teach`` decisions, several annotators) must
  be merged first, e.g. with ``prodigy review``.
- A ``noteloop`` key (a file noteloop wrote) gives back, for every span whose extent and
  label are unchanged in Prodigy, its id, fragments, attributes, notes and concept; for every
  unchanged relation its id and notes; the equivalences whose members all remain; the
  metadata. A span drawn or moved in Prodigy comes back as Prodigy holds it.

What Prodigy shares with doccano (the ``noteloop`` key, the line reading and checks) is in
:mod:`noteloop.core.formats.peer_json`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from noteloop.core.errors import LineError
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
    repeated,
    span_within,
    string,
    with_payload,
    write_lines,
)
from noteloop.core.schema import Document, Relation, Span

__all__ = ["read_prodigy", "write_prodigy"]

_NOT_GOLD = ("reject", "ignore")
_ANSWERS = ("accept", *_NOT_GOLD)


# =========================================================================== writing

_PIECE = re.compile(r"\w+|[^\w\s]|\s+")


def write_prodigy(docs: Iterable[Document], path: Path) -> ExportReport:
    """Write one Prodigy task per document to ``path``; returns what Prodigy's own fields
    could not hold as noteloop holds it."""
    # meta's "id" is the document id: a metadata key of that name travels in the noteloop key
    return write_lines(docs, path, _task, reserved=("id",))


def _task(doc: Document) -> dict[str, Any]:
    tokens = _tokenise(doc.text, doc.spans)
    first = {t["start"]: t["id"] for t in tokens}
    last = {t["end"]: t["id"] for t in tokens}
    boxes = {
        s.id: {"start": s.start, "end": s.end, "token_start": first[s.start],
               "token_end": last[s.end], "label": s.label}
        for s in doc.spans
    }
    meta = {"id": doc.id, **{k: v for k, v in doc.metadata.items() if k != "id"}}
    task: dict[str, Any] = {"text": doc.text, "meta": meta, "tokens": tokens,
                            "spans": list(boxes.values())}
    task["relations"] = [_relation_json(r, boxes) for r in doc.relations]
    task["answer"] = "accept"
    return task


def _relation_json(rel: Relation, boxes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    head, child = boxes[rel.head], boxes[rel.tail]
    return {"head": head["token_end"], "child": child["token_end"], "label": rel.label,
            "head_span": head, "child_span": child}


def _tokenise(text: str, spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Prodigy tokens of ``text``: words, punctuation and whitespace other than one space
    after a token, cut at every span start and end so that spans cover whole tokens."""
    starts, ends = {s.start for s in spans}, {s.end for s in spans}
    cuts = sorted(starts | ends)
    tokens: list[dict[str, Any]] = []
    for match in _PIECE.finditer(text):
        a, b = match.span()
        # one space after a token is its ``ws``, unless a span starts on it or ends after it
        if text[a] == " " and tokens and a not in starts and a + 1 not in ends:
            tokens[-1]["ws"] = True
            a += 1
        for x, y in _cut(a, b, cuts):
            tokens.append({"text": text[x:y], "start": x, "end": y, "id": len(tokens),
                           "ws": False})
    return tokens


def _cut(a: int, b: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    inner = cuts[bisect.bisect_right(cuts, a): bisect.bisect_left(cuts, b)]
    bounds = [a, *inner, b]
    return [(x, y) for x, y in pairwise(bounds) if x < y]


# =========================================================================== reading


def read_prodigy(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    repair: bool = False,
    notes: list[LineError] | None = None,
) -> list[Parsed]:
    """Every accepted task of a Prodigy JSONL file, as a document.

    ``notes`` collects the tasks skipped as not gold (answered ``reject`` or ``ignore``).
    ``repair`` is accepted for the registry's uniform call: a Prodigy file has nothing a
    repair would mend.

    Raises:
        ImportFileError: with every bad line (and every bad span or relation within one).
    """
    del repair
    name = str(path)
    objects, errors = json_lines(path, max_bytes)
    gold = [(place, no, task) for place, (no, task) in enumerate(objects, start=1)
            if _gold(task, name, no, notes)]
    hint = ": several annotations of one text; merge them first (prodigy review)"
    out, problems = read_documents(gold, path, _TaskReader, hint)
    errors += problems
    errors += repeated([(no, task.get("_input_hash")) for _, no, task in gold], name,
                       "_input_hash", hint)
    raise_if_errors(sorted(errors, key=lambda e: e.line), out)
    return out


def _gold(task: dict[str, Any], name: str, no: int, notes: list[LineError] | None) -> bool:
    """Whether ``task`` is gold; one answered ``reject`` or ``ignore`` is skipped, noted."""
    answer = task.get("answer")
    if answer not in _NOT_GOLD:
        return True
    if notes is not None:
        notes.append(LineError(name, no, f"skipped: task answered {answer!r}, not gold"))
    return False


class _TaskReader:
    """Checks one task, collecting every problem rather than the first."""

    def __init__(self, task: dict[str, Any], fallback_id: str) -> None:
        self.task = task
        self.fallback_id = fallback_id
        self.problems: list[str] = []
        self.token_ends: dict[str, Any] = {}  # span id -> its token_end as written
        self.doc_id: str | None = None

    def document(self, name: str, no: int) -> tuple[list[str], Document | None]:
        answer = self.task.get("answer")
        if answer is not None and answer not in _ANSWERS:
            self.problems.append(f"answer must be one of {', '.join(_ANSWERS)}, got {answer!r}")
        text = attempt(self.problems, "text", lambda: string(self.task, "text"))
        doc_id = self.doc_id = attempt(self.problems, "id", self._doc_id)
        metadata = attempt(self.problems, "meta", self._metadata)
        if text is None:
            return self.problems, None
        spans = self._spans(text)
        relations = self._relations(spans)
        if self.problems or doc_id is None:
            return self.problems, None
        doc = Document(doc_id, text, tuple(spans), tuple(relations), metadata=metadata or {})
        return with_payload(doc, self.task.get(PAYLOAD), name, no)

    def _doc_id(self) -> str:
        meta = self.task.get("meta")
        if isinstance(meta, dict) and meta.get("id") is not None:
            return document_id(meta["id"])
        if self.task.get("id") is not None:
            return document_id(self.task["id"])
        return self.fallback_id

    def _metadata(self) -> dict[str, str]:
        meta = self.task.get("meta", {})
        if meta is None:
            return {}
        if not isinstance(meta, dict):
            raise Bad(f"expected an object, got {kind(meta)}")
        return metadata_of((k, v) for k, v in meta.items() if k != "id")

    def _spans(self, text: str) -> list[Span]:
        return each(self.task, "spans", self.problems,
                    lambda item, n: self._span(item, f"T{n}", text))

    def _span(self, item: Any, span_id: str, text: str) -> Span:
        if not isinstance(item, dict):
            raise Bad(f"expected an object, got {kind(item)}")
        start, end, label = integer(item, "start"), integer(item, "end"), string(item, "label")
        self.token_ends[span_id] = item.get("token_end")
        return span_within(span_id, label, start, end, text)

    def _relations(self, spans: list[Span]) -> list[Relation]:
        ends = _SpanIndex(spans, self.token_ends)
        return each(self.task, "relations", self.problems,
                    lambda item, n: _relation(item, f"R{n}", ends))


class _SpanIndex:
    """A task's spans by extent and by the token they end on: where relations point."""

    def __init__(self, spans: list[Span], token_ends: Mapping[str, Any]) -> None:
        self.by_extent: dict[tuple[int, int], list[Span]] = {}
        self.by_token: dict[Any, list[Span]] = {}
        for span in spans:
            self.by_extent.setdefault((span.start, span.end), []).append(span)
            self.by_token.setdefault(token_ends.get(span.id), []).append(span)

    def at(self, item: dict[str, Any], role: str) -> Span:
        """The span at the ``role`` end (``head`` or ``child``) of relation ``item``."""
        box = item.get(f"{role}_span")
        if box is None:
            token = integer(item, role)
            found = self.by_token.get(token, [])
            if len(found) > 1:
                raise Bad(f"{role} (token {token}) ends {len(found)} spans; give {role}_span")
            where = f"token {token}"
        elif isinstance(box, dict):
            start, end, label = integer(box, "start"), integer(box, "end"), box.get("label")
            found = [s for s in self.by_extent.get((start, end), []) if label in (None, s.label)]
            where = f"characters {start}-{end}" + (f" {label}" if label else "")
        else:
            raise Bad(f"{role}_span must be an object, got {kind(box)}")
        if not found:
            raise Bad(f"{role} ({where}) is not one of the task's spans: noteloop's "
                      "relations join spans")
        return found[0]


def _relation(item: Any, rel_id: str, ends: _SpanIndex) -> Relation:
    if not isinstance(item, dict):
        raise Bad(f"expected an object, got {kind(item)}")
    label = string(item, "label")
    return Relation(rel_id, label, ends.at(item, "head").id, ends.at(item, "child").id)
