"""What the JSON formats of other annotation tools share: noteloop's extras kept in a
``noteloop`` key and restored for unchanged spans, the line reading and checks.

Prodigy (:mod:`~noteloop.core.formats.prodigy`) and doccano
(:mod:`~noteloop.core.formats.doccano`) carry the same extras the same way: a peer tool's
own fields hold span extents and labels and the relations between them; what they have no
place for (fragments, attributes, notes, concepts, relation notes, equivalences, metadata the
tool reserves) travels in a :data:`PAYLOAD` key, the note as noteloop's JSONL holds it less
its text, written by :func:`write_lines` only when a note has any. The tool keeps that key
through annotation and export, and :func:`with_payload` puts it back onto whatever the tool
left unchanged.

Label Studio keeps the same note in a task's ``meta.noteloop`` but restores it its own way
(a region keeps its span's id, and what was edited there wins); its relations come back
through :func:`restored_relations` all the same. The checks of one value (:func:`kind`,
:func:`attempt`, :class:`Bad`) also serve the Hugging Face Parquet reader; WebAnno TSV and
UIMA XMI take :data:`VOCAB_FAULTS` and :func:`suffix_units`, a folder's files of one format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from noteloop.core.errors import (
    ImportFileError,
    InvalidRelationError,
    InvalidSpanError,
    LineError,
    SchemaError,
)
from noteloop.core.formats.common import Parsed, read_text_file
from noteloop.core.formats.jsonl import document_json, read_document_json
from noteloop.core.schema import Document, Relation, Span, SpanSource

__all__ = [
    "PAYLOAD",
    "VOCAB_FAULTS",
    "Bad",
    "ExportReport",
    "FreshIds",
    "attempt",
    "document_id",
    "each",
    "integer",
    "json_lines",
    "kind",
    "metadata_of",
    "parsed_of",
    "read_documents",
    "repeated",
    "restored_relations",
    "span_within",
    "string",
    "suffix_units",
    "with_payload",
    "write_lines",
]

PAYLOAD = "noteloop"  # the key holding what the peer tool has no place for
# What the vocabulary raises for a bad span, relation or label: a problem of the item read.
VOCAB_FAULTS = (InvalidSpanError, InvalidRelationError, SchemaError)

_T = TypeVar("_T")


class Bad(Exception):
    """A problem of one item being read; collected by the readers, never raised beyond them."""


# --------------------------------------------------------------------------- the noteloop key


@dataclass(frozen=True)
class ExportReport:
    """What a peer tool's own fields could not hold as noteloop holds it (the ``noteloop``
    key carries it back to noteloop either way)."""

    documents: int = 0
    spans: int = 0
    relations: int = 0
    discontinuous: int = 0  # written as one extent, first fragment to last
    overlapping: int = 0  # spans that overlap another span of their note
    kept_aside: int = 0  # spans with attributes/notes/concept, noted relations, equivalences

    def __add__(self, other: ExportReport) -> ExportReport:
        return ExportReport(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def _export_report(docs: Sequence[Document]) -> ExportReport:
    """Count, over ``docs``, what a span-and-relation tool cannot show as noteloop holds it."""
    spans = [s for d in docs for s in d.spans]
    aside = sum(1 for s in spans if s.attributes or s.notes or s.concept)
    aside += sum(1 for d in docs for r in d.relations if r.notes)
    aside += sum(len(d.equivalences) for d in docs)
    return ExportReport(
        documents=len(docs),
        spans=len(spans),
        relations=sum(len(d.relations) for d in docs),
        discontinuous=sum(1 for s in spans if s.discontinuous),
        overlapping=sum(_overlapping(d.spans) for d in docs),
        kept_aside=aside,
    )


def _overlapping(spans: Sequence[Span]) -> int:
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    hit: set[int] = set()
    for i, span in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            if ordered[j].start >= span.end:
                break  # sorted by start: no later span reaches back into this one
            hit.update((i, j))
    return len(hit)


def _payload(doc: Document, reserved: Collection[str] = ()) -> dict[str, Any] | None:
    """The note as noteloop's JSONL holds it, less its text, when the peer tool's own fields
    would lose something of it (``reserved``: metadata keys the tool has no place for);
    None when they hold it all."""
    lossy = (
        bool(doc.equivalences)
        or any(r.notes for r in doc.relations)
        or any(s.discontinuous or s.attributes or s.notes or s.concept for s in doc.spans)
        or any(key in reserved for key in doc.metadata)
    )
    return document_json(doc, with_text=False) if lossy else None


def with_payload(
    doc: Document, value: Any, name: str, no: int
) -> tuple[list[str], Document | None]:
    """``doc``, as the peer tool held it, with what ``value`` (a line's :data:`PAYLOAD`)
    held beyond it: see :func:`_restored`. A None ``value`` leaves ``doc`` as it is: the
    line had no such key, or doccano wrote null for it.

    Returns:
        The problems of ``value`` and None, or no problems and the document.
    """
    if value is None:
        return [], doc
    problems, saved = _read_payload(value, doc.text, name, no)
    return (problems, None) if saved is None else ([], _restored(doc, saved))


def _read_payload(value: Any, text: str, name: str, no: int) -> tuple[list[str], Document | None]:
    """The note a ``noteloop`` key holds (its text is the line's): its problems, or it."""
    if not isinstance(value, dict):
        return [f"{PAYLOAD}: expected an object, got {kind(value)}"], None
    problems, parsed = read_document_json(json.dumps({**value, "text": text}), name, no)
    return [f"{PAYLOAD}: {p}" for p in problems], parsed.doc if parsed else None


def _restored(peer: Document, saved: Document) -> Document:
    """``peer``'s annotations with what ``saved`` (the note as noteloop wrote it) held beyond
    them: the id, fragments, attributes, notes and concept of every span whose extent and
    label are unchanged, the id and notes of every unchanged relation, the equivalences
    whose members all remain, and the metadata."""
    fresh = FreshIds({s.id for s in saved.spans} | {r.id for r in saved.relations})
    spans = _restored_spans(peer.spans, saved.spans, fresh)
    relations = restored_relations(peer.relations, saved.relations, spans, fresh)
    kept = {s.id for s in spans.values()}
    equivalences = tuple(e for e in saved.equivalences if set(e.members) <= kept)
    metadata = {**peer.metadata, **saved.metadata}
    return Document(peer.id, peer.text, tuple(spans.values()), relations, equivalences, metadata)


class FreshIds:
    """Ids for items the saved note did not have (``T1``, ``R2``...: one count whatever the
    prefix), clear of every id in ``taken`` and of every id given before."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)
        self.count = 0

    def next(self, prefix: str) -> str:
        """The next id of ``prefix`` that is free, now taken."""
        while True:
            self.count += 1
            candidate = f"{prefix}{self.count}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate


def _restored_spans(
    peer: Sequence[Span], saved: Sequence[Span], fresh: FreshIds
) -> dict[str, Span]:
    """Each peer span id -> the saved span of the same extent and label, else the peer's."""
    pool: dict[tuple[int, int, str], list[Span]] = {}
    for span in saved:
        pool.setdefault((span.start, span.end, span.label), []).append(span)
    out: dict[str, Span] = {}
    for span in peer:
        same = pool.get((span.start, span.end, span.label))
        out[span.id] = same.pop(0) if same else replace(span, id=fresh.next("T"))
    return out


def restored_relations(
    peer: Sequence[Relation], saved: Sequence[Relation], spans: Mapping[str, Span],
    fresh: FreshIds,
) -> tuple[Relation, ...]:
    """The ``peer`` relations, each the ``saved`` one of the same label and ends (its id and
    notes back) where there is one, else with a fresh id; ``spans`` maps each peer span id
    to the span it became."""
    pool: dict[tuple[str, str, str], list[Relation]] = {}
    for rel in saved:
        pool.setdefault((rel.label, rel.head, rel.tail), []).append(rel)
    out = []
    for rel in peer:
        head, tail = spans[rel.head].id, spans[rel.tail].id
        same = pool.get((rel.label, head, tail))
        out.append(same.pop(0) if same else Relation(fresh.next("R"), rel.label, head, tail))
    return tuple(out)


# --------------------------------------------------------------------------- lines


def json_lines(
    path: Path, max_bytes: int
) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """The JSON object of every non-blank line of ``path`` with its line number, and a
    problem for every line that is not one."""
    name = str(path)
    # split on "\n" only: a JSON string may hold U+2028 and other characters that
    # str.splitlines() would treat as line ends.
    lines = read_text_file(path, max_bytes=max_bytes, strip_bom=True).split("\n")
    objects: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    for no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            hint = " (the file looks truncated)" if no == len(lines) else ""
            errors.append(LineError(name, no, f"invalid JSON: {exc.msg}: column {exc.colno}{hint}"))
            continue
        if isinstance(obj, dict):
            objects.append((no, obj))
        else:
            errors.append(LineError(name, no, f"expected a JSON object, got {kind(obj)}"))
    return objects, errors


def write_lines(
    docs: Iterable[Document],
    path: Path,
    line: Callable[[Document], dict[str, Any]],
    reserved: Collection[str] = (),
) -> ExportReport:
    """Write ``line(doc)`` of every document to ``path``, one JSON object per line (UTF-8
    unescaped, ``\\n`` line ends), each with a :data:`PAYLOAD` key where the tool's own fields
    lose something of its note (``reserved``: metadata keys the tool has no place for).

    Returns:
        What the tool's own fields could not hold as noteloop holds it.
    """
    report = ExportReport()
    with path.open("w", encoding="utf-8", newline="") as handle:
        for doc in docs:  # one at a time: the documents may stream from the database
            obj = line(doc)
            saved = _payload(doc, reserved)
            if saved is not None:
                obj[PAYLOAD] = saved
            handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
            report = report + _export_report([doc])
    return report


class LineReader(Protocol):
    """Checks the object of one line: a fresh one per line, given the object and the id
    its document takes when the line names none."""

    doc_id: str | None  # the id the line claims, set by document() even when refused

    def document(self, name: str, no: int) -> tuple[list[str], Document | None]:
        """The line's problems, or its document."""
        ...


def read_documents(
    lines: Iterable[tuple[int, int, dict[str, Any]]],
    path: Path,
    reader: Callable[[dict[str, Any], str], LineReader],
    hint: str,
) -> tuple[list[Parsed], list[LineError]]:
    """The document of every ``(place, line number, object)`` of ``path``, checked by
    ``reader(object, "<file stem>-<place>")``, and the problems: every line's, then every
    document id a line repeats (``hint`` ends that message)."""
    name = str(path)
    out: list[Parsed] = []
    errors: list[LineError] = []
    ids: list[tuple[int, Any]] = []
    for place, no, obj in lines:
        line = reader(obj, f"{path.stem}-{place}")
        problems, doc = line.document(name, no)
        errors += [LineError(name, no, p) for p in problems]
        out += [parsed_of(doc, name, no)] if doc else []
        ids.append((no, line.doc_id))  # a refused line's id still counts as taken
    return out, errors + repeated(ids, name, "document id", hint)


def repeated(keys: Iterable[tuple[int, Any]], name: str, what: str, hint: str) -> list[LineError]:
    """A problem for every line whose key (not None) an earlier line already had."""
    first: dict[Any, int] = {}
    errors = []
    for no, key in keys:
        if key is None:
            continue
        line = first.setdefault(key, no)
        if line != no:
            errors.append(LineError(name, no, f"{what} {key!r} again (first on line {line}){hint}"))
    return errors


def parsed_of(doc: Document, name: str, no: int) -> Parsed:
    """``doc``, read from line ``no`` of ``name``, all its spans and relations on that line."""
    ids = [s.id for s in doc.spans] + [r.id for r in doc.relations]
    return Parsed(doc, name, no, dict.fromkeys(ids, no))


# --------------------------------------------------------------------------- checks of a value


def attempt(problems: list[str], where: str, action: Callable[[], _T]) -> _T | None:
    """``action()``, or None with its problem recorded under ``where``."""
    try:
        return action()
    except (Bad, *VOCAB_FAULTS) as exc:
        problems.append(f"{where}: {exc}")
        return None


def each(
    obj: Mapping[str, Any], key: str, problems: list[str], build: Callable[[Any, int], _T]
) -> list[_T]:
    """``build(item, n)`` of every item of the list at ``key`` (``n`` counts from 1); a bad
    item is a problem under ``key[i]``, left out."""
    built = [attempt(problems, f"{key}[{i}]", partial(build, item, i + 1))
             for i, item in enumerate(_listed(obj, key, problems))]
    return [b for b in built if b is not None]


def _listed(obj: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: expected a list, got {kind(value)}")
        return []
    return value


def document_id(value: Any) -> str:
    """A document id from a JSON value: a non-empty string, or an integer as its digits."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Bad(f"must be a non-empty string or an integer, got {value!r}")


def metadata_of(items: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Metadata from JSON key/values: strings as they are, other values as their JSON text.
    Nulls and empty lists are left out: doccano fills a key some rows lack with null and
    writes an empty ``Comments`` list on every row."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in items
        if value is not None and value != []
    }


def integer(item: Mapping[str, Any], key: str) -> int:
    """The integer at ``key`` (a bool is not one)."""
    if key not in item:
        raise Bad(f"missing field {key}")
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"{key} must be an integer, got {value!r}")
    return value


def string(item: Mapping[str, Any], key: str) -> str:
    """The string at ``key``."""
    if key not in item:
        raise Bad(f"missing field {key}")
    value = item[key]
    if not isinstance(value, str):
        raise Bad(f"{key} must be a string, got {kind(value)}")
    return value


def span_within(span_id: str, label: str, start: int, end: int, text: str) -> Span:
    """An imported contiguous span, refused when it ends beyond ``text``."""
    if end > len(text):
        raise Bad(f"end {end} is beyond the text ({len(text)} characters)")
    return Span(span_id, label, start, end, source=SpanSource.IMPORTED)


def kind(value: Any) -> str:
    """The JSON-ish name of a value's type, for messages: ``null``, ``str``, ``list``..."""
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------- folders


def suffix_units(path: Path, suffix: str) -> list[Path]:
    """The files to import: ``path`` itself, or a folder's files ending in ``suffix`` (any
    case), searched recursively and sorted.

    Raises:
        ImportFileError: the path is missing, or the folder holds no such file.
    """
    if not path.exists():
        raise ImportFileError.single(str(path), 0, "no such file or folder")
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == suffix)
    if not found:
        raise ImportFileError.single(str(path), 0, f"folder holds no {suffix} files")
    return found
