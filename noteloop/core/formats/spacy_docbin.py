"""spaCy ``DocBin`` files (``.spacy``): noteloop gold as spaCy trains on it, and back.

**Export**: one spaCy ``Doc`` per note, tokenised by a blank spaCy pipeline of ``lang``
(English by default), with

- ``doc.spans["sc"]``: every span, overlapping ones included (what spaCy's ``spancat``
  trains on; ``spacy train`` with ``--paths.train documents.spacy``);
- ``doc.ents``: the spans spaCy's ``ner`` can learn: contiguous ones that overlap no other
  (where spans overlap, the longest is kept, as the CoNLL export keeps it);
- token boundaries: a span whose offsets cut a token is widened to the tokens it touches
  (``alignment_mode="expand"``); a discontinuous span covers its first to last fragment;
- ``doc.user_data["noteloop"]``: the note exactly as noteloop holds it (the JSONL object:
  spans with fragments, attributes, notes and concepts; relations; equivalences), so an
  import of the file gives back exactly what was exported. spaCy has no relation layer of
  its own: the relations live there only (write with ``store_user_data``).

**Files**: ``documents.spacy``; an export of more than :data:`SHARD_NOTES` notes writes
``documents-0001.spacy`` and on instead, that many notes each (spaCy holds a DocBin whole
until it is written), which ``spacy train`` reads as one corpus when given the folder.

**Import**: a ``.spacy`` file, or every one of a folder. A file noteloop wrote comes back
exactly (from ``user_data``). A ``DocBin``
from elsewhere gives its documents' text and spans: every span group of ``doc.spans``, or
``doc.ents`` when it has none, at their character offsets, labels as they are; no
relations (spaCy has none to give). A document's id is ``user_data["id"]`` when set, else
``FILE-N``.

spaCy is imported only when this format is used (``pip install spacy``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    check_file,
    raise_if_errors,
)
from noteloop.core.formats.jsonl import document_json, read_document_json
from noteloop.core.schema import Document, Span, SpanSource

PAYLOAD = "noteloop"  # the user_data key of the exact note
SINGLE_FILE = "documents.spacy"
# Notes per DocBin file of a larger export: about 400 MB of memory while one is written.
SHARD_NOTES = 1_000
SPAN_GROUP = "sc"  # spaCy spancat's default key


@dataclass(frozen=True)
class DocBinReport:
    """What spaCy's own layers could not hold as noteloop holds it (the exact note is in
    ``user_data`` either way)."""

    documents: int = 0
    spans: int = 0
    not_in_ents: int = 0  # overlapping another span or discontinuous: in doc.spans only
    widened: int = 0  # offsets moved out to token boundaries in spaCy's layers
    discontinuous: int = 0  # a contiguous extent in spaCy's layers
    files: tuple[str, ...] = ()  # what was written

    def __add__(self, other: DocBinReport) -> DocBinReport:
        counts = [a + b for a, b in zip(astuple(self)[:-1], astuple(other)[:-1], strict=True)]
        return DocBinReport(*counts, files=self.files + other.files)


def _spacy() -> Any:
    try:
        import spacy
    except ImportError:
        raise ImportFileError.single(
            "spacy", 0, "the spacy format needs spaCy: pip install spacy"
        ) from None
    return spacy


# --------------------------------------------------------------------------- writing


def write_docbins(docs: Documents, out_dir: Path, *, lang: str = "en") -> DocBinReport:
    """Write ``docs`` under ``out_dir``: ``documents.spacy`` up to :data:`SHARD_NOTES`
    notes, else ``documents-0001.spacy`` and on, :data:`SHARD_NOTES` notes each (spaCy
    holds a DocBin whole until it is written; ``spacy train`` reads such a folder as one
    corpus)."""
    if len(docs) <= SHARD_NOTES:
        return write_docbin(docs, out_dir / SINGLE_FILE, lang=lang)
    report = DocBinReport()
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == SHARD_NOTES:
            report = report + write_docbin(batch, _shard(out_dir, report), lang=lang)
            batch = []
    if batch:
        report = report + write_docbin(batch, _shard(out_dir, report), lang=lang)
    return report


def _shard(out_dir: Path, report: DocBinReport) -> Path:
    return out_dir / f"documents-{len(report.files) + 1:04d}.spacy"


def write_docbin(docs: Iterable[Document], path: Path, *, lang: str = "en") -> DocBinReport:
    """Write ``docs`` to one ``.spacy`` file at ``path``; returns what spaCy's layers
    could not hold exactly."""
    spacy = _spacy()
    from spacy.tokens import DocBin

    nlp = spacy.blank(lang)
    out = DocBin(store_user_data=True)
    totals = [0, 0, 0, 0, 0]
    for doc in docs:
        spacy_doc, counts = _spacy_doc(nlp, doc)
        out.add(spacy_doc)
        totals = [a + b for a, b in zip(totals, (1, *counts), strict=True)]
    out.to_disk(path)
    return DocBinReport(*totals, files=(str(path),))


def _spacy_doc(nlp: Any, doc: Document) -> tuple[Any, tuple[int, int, int, int]]:
    spacy_doc = nlp.make_doc(doc.text)
    spans, widened = [], 0
    for span in doc.spans:
        chosen = spacy_doc.char_span(span.start, span.end, label=span.label,
                                     alignment_mode="expand")
        if chosen is None:  # only whitespace under it: no token to hold it
            continue
        widened += (chosen.start_char, chosen.end_char) != (span.start, span.end)
        spans.append((span, chosen))
    spacy_doc.spans[SPAN_GROUP] = [chosen for _, chosen in spans]
    ents = _entities(spans)
    spacy_doc.ents = ents
    spacy_doc.user_data[PAYLOAD] = json.dumps(document_json(doc), ensure_ascii=False)
    spacy_doc.user_data["id"] = doc.id
    discontinuous = sum(1 for s in doc.spans if s.discontinuous)
    return spacy_doc, (len(doc.spans), len(doc.spans) - len(ents), widened, discontinuous)


def _entities(spans: Sequence[tuple[Span, Any]]) -> list[Any]:
    """The spans ``ner`` can hold: contiguous, and where tokens overlap, the longest."""
    taken: set[int] = set()
    ents = []
    candidates = [c for s, c in spans if not s.discontinuous]
    for chosen in sorted(candidates, key=lambda c: (-(c.end - c.start), c.start)):
        tokens = set(range(chosen.start, chosen.end))
        if tokens & taken:
            continue
        taken |= tokens
        ents.append(chosen)
    return sorted(ents, key=lambda c: c.start)


# --------------------------------------------------------------------------- reading


def read_docbin(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """Every document of a ``.spacy`` file.

    Raises:
        ImportFileError: not a DocBin (or spaCy missing), or a note whose noteloop
            payload is broken (every such document listed, by its place in the file).
    """
    name = str(path)
    check_file(path, max_bytes)
    spacy = _spacy()
    from spacy.tokens import DocBin

    try:
        spacy_docs = list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
    except Exception as exc:  # spaCy and msgpack raise many kinds for a foreign file
        raise ImportFileError.single(name, 0, f"not a spaCy DocBin file ({exc})") from None
    errors: list[LineError] = []
    out: list[Parsed] = []
    for no, spacy_doc in enumerate(spacy_docs, start=1):
        problems, parsed = _document(spacy_doc, name, no, path.stem)
        errors += [LineError(name, no, f"document {no}: {p}") for p in problems]
        out += [parsed] if parsed else []
    raise_if_errors(errors, out)
    return out


def _document(spacy_doc: Any, name: str, no: int, stem: str) -> tuple[list[str], Parsed | None]:
    payload = spacy_doc.user_data.get(PAYLOAD)
    if payload is not None:
        return read_document_json(payload, name, no)
    doc_id = str(spacy_doc.user_data.get("id") or f"{stem}-{no}")
    groups = [span for group in spacy_doc.spans.values() for span in group]
    found = groups or list(spacy_doc.ents)
    seen: dict[tuple[int, int, str], None] = {}
    for span in found:  # the same span in two groups is one annotation
        seen.setdefault((span.start_char, span.end_char, span.label_), None)
    spans = tuple(
        Span(f"T{i}", label, start, end, source=SpanSource.IMPORTED)
        for i, (start, end, label) in enumerate(sorted(seen), start=1)
    )
    doc = Document(doc_id, spacy_doc.text, spans)
    return [], Parsed(doc, name, no, {s.id: no for s in spans})
