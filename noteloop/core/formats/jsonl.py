"""JSON Lines: one document per line, annotations inline.

Each non-blank line is one JSON object::

    {"id": "note-001", "text": "Aspirin for pain.", "metadata": {"ward": "ICU"},
     "spans": [{"id": "T1", "start": 0, "end": 7, "label": "Drug", "text": "Aspirin",
                "fragments": [[0, 7]], "attributes": {"Negated": "true"}, "notes": ["..."],
                "concept": "MeSH:D001241", "score": 0.93}],
     "relations": [{"id": "R1", "label": "treats", "head": "T1", "tail": "T2",
                    "notes": ["..."], "score": 0.8}],
     "equivalences": [{"label": "OVERLAP", "members": ["T1", "T2"]}]}

Required: ``id`` (a non-empty string, unique in the file) and ``text`` (the exact note;
offsets count its characters, i.e. Unicode code points). Everything else is optional.

Spans need ``id``, ``start``, ``end`` (integers, ``start < end <= len(text)``) and
``label``. ``fragments`` (``[[start, end], ...]``, ordered, not overlapping, first start and
last end equal to ``start``/``end``) makes a discontinuous span. ``text``, when present, must
equal the covered text, fragments joined by one space. ``attributes`` maps names to string
values (``"true"`` for a flag; a list of ``[name, value]`` pairs is also read, and written
when a span holds one name twice); ``notes`` is a list of strings; ``concept`` a normalisation
id. ``score`` (a number in [0, 1]) marks model output: read into :attr:`Parsed.scores`.

Relations need ``id`` (unique among spans and relations), ``label``, ``head`` and ``tail``
(span ids of the same line); ``notes`` and ``score`` are optional. Equivalences need a
``label`` and two or more span ids in ``members``. Metadata values are strings (numbers
and booleans are read as their JSON text). Unknown keys are refused, so a misspelt
``"span"`` cannot silently drop annotations.

Writing uses UTF-8 without escaping (``ensure_ascii=False``), writes ``fragments`` only for
discontinuous spans and omits empty optional fields; ``with_text=False`` leaves out the
document and span texts (to share annotations without the notes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from noteloop.core.errors import (
    ImportFileError,
    InvalidRelationError,
    InvalidSpanError,
    LineError,
    SchemaError,
)
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Parsed,
    check_file,
    decode_utf8,
    nul_error,
    raise_if_errors,
)
from noteloop.core.schema import Document, Equivalence, Relation, Span, SpanSource

__all__ = ["document_json", "read_jsonl", "stream_jsonl", "write_jsonl"]

_DOC_KEYS = {"id", "text", "metadata", "spans", "relations", "equivalences"}
_SPAN_KEYS = {
    "id",
    "start",
    "end",
    "label",
    "text",
    "fragments",
    "attributes",
    "notes",
    "concept",
    "score",
}
_REL_KEYS = {"id", "label", "head", "tail", "notes", "score"}
_EQ_KEYS = {"label", "members"}
_VOCAB_FAULTS = (InvalidSpanError, InvalidRelationError, SchemaError)


class _Bad(Exception):
    """A problem of one line; collected by :func:`read_jsonl`, never raised beyond it."""


# --------------------------------------------------------------------------- reading


def read_jsonl(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """Every document of a JSONL file.

    Raises:
        ImportFileError: with every bad line (and every bad item within a line).
    """
    errors: list[LineError] = []
    out: list[Parsed] = []
    for item in stream_jsonl(path, max_bytes=max_bytes):
        if isinstance(item, LineError):
            errors.append(item)
        else:
            out.append(item)
    raise_if_errors(errors, out)
    return out


def stream_jsonl(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Parsed | LineError]:
    """The documents of a JSONL file one line at a time, and the problems of each line where
    they arise (in line order), so a file of 10,000 notes never sits in memory whole.

    A line that is not UTF-8 or holds NUL bytes ends the file: past it nothing can be
    trusted to be text. A file with no document is one problem, "file is empty".
    """
    name = str(path)
    check_file(path, max_bytes)
    seen: dict[str, int] = {}  # document id -> its first line, for duplicates
    empty = True
    with path.open("rb") as handle:
        # A binary file is told by NUL bytes near its start (as git tells one), before
        # its first "line" is judged as broken UTF-8.
        binary = nul_error(handle.read(_SNIFF_BYTES), name)
        if binary:
            yield binary
            return
        handle.seek(0)
        for no, raw in enumerate(handle, start=1):
            line = _decoded(raw, name, no)
            if isinstance(line, LineError):
                yield line
                return
            if not line.strip():
                continue
            empty = False
            # A last line without its line end is what a cut-off file looks like.
            yield from _line_items(line, name, no, seen, last=not raw.endswith(b"\n"))
    if empty:
        yield LineError(name, 0, "file is empty")


_SNIFF_BYTES = 8192


def _decoded(raw: bytes, name: str, no: int) -> str | LineError:
    """One line's text (a leading byte-order mark dropped), or why it is not text."""
    try:
        text = decode_utf8(raw, name, strip_bom=no == 1)
    except ImportFileError as exc:
        (error,) = exc.errors
        return LineError(name, no + error.line - 1, error.reason)
    return text.removesuffix("\n")


def _line_items(
    line: str, name: str, no: int, seen: dict[str, int], *, last: bool
) -> Iterator[Parsed | LineError]:
    problems, parsed, doc_id = _read_line(line, name, no, last=last)
    yield from (LineError(name, no, p) for p in problems)
    if isinstance(doc_id, str):
        first = seen.setdefault(doc_id, no)
        if first != no:
            yield LineError(name, no, f"duplicate document id {doc_id!r} (first on line {first})")
            return
    if parsed is not None:
        yield parsed


def read_document_json(raw: str, name: str, no: int) -> tuple[list[str], Parsed | None]:
    """One document from its JSON object as :func:`document_json` writes it (another
    format's container holds it at place ``no`` of ``name``): its problems, or it."""
    problems, parsed, _ = _read_line(raw, name, no, last=False)
    return problems, parsed


def _read_line(raw: str, name: str, no: int, *, last: bool) -> tuple[list[str], Parsed | None, Any]:
    """The problems of one line, its document when it has none, and its ``id`` value."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if last else ""
        return [f"invalid JSON: {exc.msg}: column {exc.colno}{hint}"], None, None
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {_kind(obj)}"], None, None
    builder = _LineReader(obj)
    doc = builder.document()
    if builder.problems or doc is None:
        return builder.problems, None, obj.get("id")
    lines = dict.fromkeys([s.id for s in doc.spans] + [r.id for r in doc.relations], no)
    return [], Parsed(doc, name, no, lines, builder.scores), doc.id


class _LineReader:
    """Checks one document object, collecting every problem rather than the first."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.problems: list[str] = []
        self.scores: dict[str, float] = {}
        self.text: str | None = None

    def document(self) -> Document | None:
        self._attempt("document", lambda: _check_keys(self.obj, _DOC_KEYS, set()))
        doc_id = self._attempt("id", lambda: _string(self.obj, "id", required=True))
        text = self._attempt("text", lambda: _string(self.obj, "text", required=True, blank=True))
        self.text = text if isinstance(text, str) else None
        metadata = self._attempt("metadata", lambda: _metadata(self.obj.get("metadata", {})))
        spans = self._items("spans", self._span)
        relations = self._items("relations", self._relation)
        equivalences = self._items("equivalences", _equivalence)
        self._check_references(spans, relations, equivalences)
        if self.problems or text is None:
            return None
        return Document(
            doc_id, text, tuple(spans), tuple(relations), tuple(equivalences), metadata or {}
        )

    def _attempt(self, where: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (_Bad, *_VOCAB_FAULTS) as exc:
            self.problems.append(f"{where}: {exc}")
            return None

    def _items(self, key: str, build: Callable[[Any], Any]) -> list[Any]:
        value = self.obj.get(key, [])
        if not isinstance(value, list):
            self.problems.append(f"{key}: expected a list, got {_kind(value)}")
            return []
        built = [
            self._attempt(_where(key, i, item), partial(build, item))
            for i, item in enumerate(value)
        ]
        return [b for b in built if b is not None]

    def _span(self, item: Any) -> Span:
        _check_keys(item, _SPAN_KEYS, {"id", "start", "end", "label"})
        start, end = _integer(item, "start"), _integer(item, "end")
        frags = _fragments(item.get("fragments")) or ((start, end),)
        span = Span(
            _string(item, "id", required=True),
            _string(item, "label", required=True),
            start,
            end,
            frags,
            attributes=_attributes(item.get("attributes", {})),
            notes=_strings(item, "notes"),
            concept=_string(item, "concept") or "",
            source=SpanSource.IMPORTED,
        )
        self._check_span_text(span, item.get("text"))
        self._score(span.id, item)
        return span

    def _check_span_text(self, span: Span, shown: Any) -> None:
        if self.text is None:  # the missing text is reported once, not once per span
            return
        if span.end > len(self.text):
            raise _Bad(f"end {span.end} is beyond the text ({len(self.text)} characters)")
        if shown is None:
            return
        covered = span.text_in(self.text)
        if shown != covered:
            raise _Bad(f"text {shown!r} does not match the offsets, which cover {covered!r}")

    def _relation(self, item: Any) -> Relation:
        _check_keys(item, _REL_KEYS, {"id", "label", "head", "tail"})
        head, tail = _string(item, "head", required=True), _string(item, "tail", required=True)
        rel = Relation(
            _string(item, "id", required=True),
            _string(item, "label", required=True),
            head,
            tail,
            notes=_strings(item, "notes"),
        )
        self._score(rel.id, item)
        return rel

    def _score(self, item_id: str, item: Mapping[str, Any]) -> None:
        if "score" not in item:
            return
        score = item["score"]
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise _Bad(f"score must be a number in [0, 1], got {score!r}")
        self.scores[item_id] = float(score)

    def _check_references(
        self, spans: list[Span], relations: list[Relation], equivalences: list[Equivalence]
    ) -> None:
        span_ids = _unique_ids(spans, "span", self.problems)
        _unique_ids(relations, "relation", self.problems, taken=span_ids)
        for rel in relations:
            missing = [r for r in (rel.head, rel.tail) if r not in span_ids]
            self.problems += [
                f"relation {rel.id}: {r} is not a span id of this line" for r in missing
            ]
        for eq in equivalences:
            missing = [m for m in eq.members if m not in span_ids]
            if missing:
                self.problems.append(f"equivalence {eq.label}: unknown span ids {missing}")


def _unique_ids(
    items: list[Any], kind: str, problems: list[str], taken: frozenset[str] = frozenset()
) -> frozenset[str]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen or item.id in taken:
            problems.append(f"duplicate {kind} id {item.id}")
        seen.add(item.id)
    return frozenset(seen)


def _equivalence(item: Any) -> Equivalence:
    _check_keys(item, _EQ_KEYS, _EQ_KEYS)
    members = item["members"]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise _Bad(f"members must be a list of span ids, got {members!r}")
    return Equivalence(_string(item, "label", required=True), tuple(members))


def _where(key: str, index: int, item: Any) -> str:
    ident = item.get("id") if isinstance(item, dict) else None
    return f"{key}[{index}]" + (f" (id {ident})" if isinstance(ident, str) else "")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_keys(item: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(item, dict):
        raise _Bad(f"expected an object, got {_kind(item)}")
    missing = sorted(required - item.keys())
    if missing:
        raise _Bad(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(item.keys() - allowed)
    if unknown:
        raise _Bad(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _string(
    item: Mapping[str, Any], key: str, *, required: bool = False, blank: bool = False
) -> Any:
    """The string at ``key``; None when absent and optional."""
    if key not in item:
        if required:
            raise _Bad(f"missing field {key}")
        return None
    value = item[key]
    if not isinstance(value, str):
        raise _Bad(f"{key} must be a string, got {_kind(value)}")
    if required and not blank and not value.strip():
        raise _Bad(f"{key} must not be empty")
    return value


def _integer(item: Mapping[str, Any], key: str) -> int:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{key} must be an integer, got {value!r}")
    return value


def _fragments(value: Any) -> tuple[tuple[int, int], ...]:
    if value is None:
        return ()
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(f, list)
            and len(f) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in f)
            for f in value
        )
    )
    if not ok:
        raise _Bad(
            f"fragments must be a non-empty list of [start, end] integer pairs, got {value!r}"
        )
    return tuple((f[0], f[1]) for f in value)


def _attributes(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = list(value.items()) if isinstance(value, dict) else value
    ok = isinstance(pairs, list) and all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
        for p in pairs
    )
    if not ok:
        raise _Bad(
            f"attributes must be an object of string values (or a list of [name, value] "
            f"pairs), got {value!r}"
        )
    return tuple((name, val) for name, val in pairs)


def _strings(item: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f"{key} must be a list of strings, got {value!r}")
    return tuple(value)


def _metadata(value: Any) -> dict[str, str]:
    scalar = (str, int, float, bool)
    if not isinstance(value, dict) or not all(isinstance(v, scalar) for v in value.values()):
        raise _Bad(f"must be an object of strings, numbers or booleans, got {value!r}")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


# --------------------------------------------------------------------------- writing


def write_jsonl(
    docs: Iterable[Document],
    path: Path,
    *,
    with_text: bool = True,
    scores: Mapping[tuple[str, str], float] | None = None,
) -> None:
    """Write one JSON object per document to ``path`` (UTF-8, ``\\n`` line ends).

    Args:
        with_text: False leaves out document and span texts.
        scores: ``(document id, span or relation id) -> score`` to write with the items.
    """
    with path.open("w", encoding="utf-8", newline="") as handle:
        for doc in docs:
            obj = document_json(doc, with_text=with_text, scores=scores or {})
            handle.write(json.dumps(obj, ensure_ascii=False) + "\n")


def document_json(
    doc: Document,
    *,
    with_text: bool = True,
    scores: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, Any]:
    """The JSON object of one document, as :func:`write_jsonl` writes it."""
    scores = scores or {}
    obj: dict[str, Any] = {"id": doc.id}
    if with_text:
        obj["text"] = doc.text
    if doc.metadata:
        obj["metadata"] = dict(doc.metadata)
    obj["spans"] = [_span_json(s, doc, with_text, scores) for s in doc.spans]
    obj["relations"] = [_relation_json(r, doc.id, scores) for r in doc.relations]
    if doc.equivalences:
        obj["equivalences"] = [
            {"label": e.label, "members": list(e.members)} for e in doc.equivalences
        ]
    return obj


def _span_json(
    span: Span, doc: Document, with_text: bool, scores: Mapping[tuple[str, str], float]
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": span.id, "start": span.start, "end": span.end}
    out["label"] = span.label
    if with_text:
        out["text"] = span.text_in(doc.text)
    if span.discontinuous:
        out["fragments"] = [list(f) for f in span.fragments]
    if span.attributes:
        out["attributes"] = _attributes_json(span.attributes)
    if span.notes:
        out["notes"] = list(span.notes)
    if span.concept:
        out["concept"] = span.concept
    score = _finite(scores.get((doc.id, span.id)))
    if score is not None:
        out["score"] = score
    return out


def _attributes_json(attributes: tuple[tuple[str, str], ...]) -> dict[str, str] | list[list[str]]:
    names = [name for name, _ in attributes]
    # An object cannot hold one name twice; pairs keep such (rare, BRAT-born) spans lossless.
    if len(set(names)) < len(names):
        return [[name, value] for name, value in attributes]
    return dict(attributes)


def _relation_json(
    rel: Relation, doc_id: str, scores: Mapping[tuple[str, str], float]
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rel.id, "label": rel.label, "head": rel.head, "tail": rel.tail}
    if rel.notes:
        out["notes"] = list(rel.notes)
    score = _finite(scores.get((doc_id, rel.id)))
    if score is not None:
        out["score"] = score
    return out


def _finite(score: float | None) -> float | None:
    # JSON has no NaN; a NaN score would make the file unreadable by strict parsers.
    return None if score is None or math.isnan(score) else float(score)
