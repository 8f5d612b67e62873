"""PubTator: the title/abstract format of BioCreative corpora (BC5CDR, NCBI-disease...).

A document is a block of lines ended by a blank line::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>concept id[<TAB>extra column...]
    PMID<TAB>CID<TAB>chemical id<TAB>disease id

The document text is ``title + " " + abstract``, the string every offset counts over.
``metadata["title_length"]`` keeps where the title ends, so a writer can split it again.
A mention becomes a :class:`Span` (ids ``T1``, ``T2``... in file order) whose concept is the
id column verbatim (a composite ``D001|D002`` stays whole); ``-1``, BC5CDR's "no id", and a
missing column become ``""``. Columns after the sixth (BC5CDR lists the individual mentions
of a composite there) become the span's notes, one per column, so nothing is lost.

The CID rule
------------
A CID line relates two concept ids for the whole document, not two mentions. The pairs
themselves are kept losslessly, sorted, in ``metadata["cid"]`` (``"D1>D2;D3>D4"``), so a
pair whose ids no mention carries survives; ``metadata["cid_unmapped"]`` counts those pairs
(a count, not an error) and ``metadata["cid_rule"]`` names the rule used. The rule maps each
pair onto ``Relation(label="CID", head=chemical mention, tail=disease mention)``:

* A mention *matches* an id when its concept, split on ``|``, contains the id. Candidate
  pairs are every (chemical-matching mention, disease-matching mention) of two distinct
  spans, taken in span order (chemical first, then disease).
* ``"all-pairs"``: one relation per candidate pair.
* ``"sentence-or-closest"`` (the default): one relation per candidate pair whose two
  mentions start in the same sentence; if no candidate shares a sentence, one relation for
  the single closest candidate, by the number of characters between the two mentions (0
  when they overlap), ties going to the earliest candidate in the order above.
* Sentences: a sentence starts at offset 0, at each section start the format knows (the
  abstract's first character here; each BioC passage and sentence), at the first character
  after a ``.``, ``!`` or ``?`` followed by whitespace and then an ASCII capital letter or a
  digit (that capital or digit starts the sentence), and right after every line break. A
  mention belongs to the sentence that contains its first character.
* A mention pair reached by two CID pairs (a composite id) gives one relation, not two.
* A pair with no candidate is "unmapped": counted, kept in ``metadata["cid"]``.

:func:`attach_cid` is the rule's one implementation; the BioC reader uses it too.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from noteloop.core.errors import (
    InvalidDocumentError,
    InvalidRelationError,
    InvalidSpanError,
    LineError,
    SchemaError,
)
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Parsed, raise_if_errors, read_text_file
from noteloop.core.schema import Document, Relation, Span, SpanSource

CID = "CID"
CID_RULES = ("sentence-or-closest", "all-pairs")
DEFAULT_CID_RULE = "sentence-or-closest"
NO_CONCEPT = "-1"  # BC5CDR's id for a mention that has no MeSH id

Pair = tuple[str, str]  # (chemical concept id, disease concept id)

_TITLE_ABSTRACT = re.compile(r"([^|\t]+)\|([ta])\|")
_INT = re.compile(r"-?[0-9]+")
# An id inside a CID pair: the metadata encoding "C>D;C>D" must be able to hold it.
_PAIR_ID = re.compile(r"[^\s>;|]+")
_SENTENCE_START = re.compile(r"[.!?]\s+(?=[A-Z0-9])|\n")
# Errors that a Span, Relation or Document constructor raises for a bad value.
BUILD_ERRORS = (InvalidSpanError, InvalidRelationError, InvalidDocumentError, SchemaError)


# --------------------------------------------------------------------------- the CID rule


def check_cid_rule(rule: str) -> None:
    """Refuse an unknown rule before any file is read (a caller's mistake, not the file's)."""
    if rule not in CID_RULES:
        raise ValueError(f"cid_rule must be one of {', '.join(CID_RULES)}, got {rule!r}")


def pair_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be one id of a CID pair, or None when it can."""
    if _PAIR_ID.fullmatch(value):
        return None
    return f"CID concept id {value!r} must be non-empty without spaces, '>', ';' or '|'"


def concept_ids(concept: str) -> list[str]:
    """The ids of a concept column: ``D001|D002`` names two, ``""`` and ``-1`` none."""
    return [c for c in concept.split("|") if c and c != NO_CONCEPT]


def sentence_starts(text: str, starts: Iterable[int] = ()) -> list[int]:
    """Sorted offsets where sentences start, by the rule in the module docstring."""
    found = {m.end() for m in _SENTENCE_START.finditer(text)}
    return sorted(found | set(starts) | {0})


def _gap(a: Span, b: Span) -> int:
    return max(0, max(a.start, b.start) - min(a.end, b.end))


def _pair_links(
    spans: Sequence[tuple[Span, set[str]]], pair: Pair, starts: list[int], rule: str
) -> list[Pair]:
    chemicals = [s for s, ids in spans if pair[0] in ids]
    diseases = [s for s, ids in spans if pair[1] in ids]
    candidates = [(c, d) for c in chemicals for d in diseases if c.id != d.id]
    if rule == "all-pairs" or not candidates:
        return [(c.id, d.id) for c, d in candidates]
    same = [
        (c.id, d.id)
        for c, d in candidates
        if bisect_right(starts, c.start) == bisect_right(starts, d.start)
    ]
    # min() keeps the first of equal gaps: the earliest candidate in span order wins ties.
    closest = min(candidates, key=lambda cd: _gap(*cd))
    return same or [(closest[0].id, closest[1].id)]


def cid_links(
    spans: Sequence[Span],
    pairs: Iterable[Pair],
    *,
    text: str,
    starts: Iterable[int] = (),
    rule: str = DEFAULT_CID_RULE,
) -> tuple[list[tuple[Pair, str, str]], list[Pair]]:
    """Map document-level CID pairs onto mention pairs.

    Returns:
        ``(pair, head span id, tail span id)`` links, one per mention pair, in the order of
        ``pairs`` and then of the spans; and the pairs no mention pair could carry.
    """
    check_cid_rule(rule)
    bounds = sentence_starts(text, starts)
    with_ids = [(s, set(concept_ids(s.concept))) for s in spans]
    links: list[tuple[Pair, str, str]] = []
    unmapped: list[Pair] = []
    seen: set[Pair] = set()
    for pair in pairs:
        found = _pair_links(with_ids, pair, bounds, rule)
        if not found:
            unmapped.append(pair)
        for head, tail in found:
            if (head, tail) not in seen:
                seen.add((head, tail))
                links.append((pair, head, tail))
    return links, unmapped


def fresh_ids(taken: Iterable[str], prefix: str) -> Iterator[str]:
    """``prefix1``, ``prefix2``... skipping ids already used in the document."""
    used = set(taken)
    n = 0
    while True:
        n += 1
        if f"{prefix}{n}" not in used:
            yield f"{prefix}{n}"


def cid_metadata(pairs: Iterable[Pair], unmapped: int, rule: str) -> dict[str, str]:
    """The lossless document-level record of the CID pairs (see the module docstring)."""
    return {
        "cid": ";".join(f"{c}>{d}" for c, d in sorted(set(pairs))),
        "cid_unmapped": str(unmapped),
        "cid_rule": rule,
    }


def parse_cid_metadata(value: str, doc_id: str) -> list[Pair]:
    """The pairs of a ``metadata["cid"]`` value; raises naming the document if malformed."""
    pairs: list[Pair] = []
    for item in filter(None, value.split(";")):
        chem, sep, dis = item.partition(">")
        if not sep or pair_id_problem(chem) or pair_id_problem(dis):
            raise InvalidDocumentError(
                f"document {doc_id}: metadata cid entry {item!r} is not CHEMICAL>DISEASE"
            )
        pairs.append((chem, dis))
    return pairs


def attach_cid(
    doc: Document, pairs: Mapping[Pair, int], *, rule: str, starts: Iterable[int] = ()
) -> tuple[Document, dict[str, int]]:
    """``doc`` plus the CID relations and metadata that ``rule`` derives from ``pairs``.

    Args:
        pairs: each document-level pair and the file line that stated it.
        starts: section starts (abstract, passages) that also start a sentence.

    Returns:
        The new document and the file line of each new relation id.
    """
    if not pairs:
        return doc, {}
    links, unmapped = cid_links(doc.spans, sorted(pairs), text=doc.text, starts=starts, rule=rule)
    taken = [s.id for s in doc.spans] + [r.id for r in doc.relations]
    ids = fresh_ids(taken, "R")
    relations = [Relation(next(ids), CID, head, tail) for _, head, tail in links]
    lines = {rel.id: pairs[pair] for rel, (pair, _, _) in zip(relations, links, strict=True)}
    metadata = {**doc.metadata, **cid_metadata(pairs, len(unmapped), rule)}
    return replace(doc, relations=(*doc.relations, *relations), metadata=metadata), lines


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Mention:
    line: int
    start: int
    end: int
    text: str
    label: str
    concept: str
    extra: tuple[str, ...]


@dataclass
class _Draft:
    """A document block as read so far; checked once its text is complete."""

    pmid: str
    line: int
    title: str
    abstract: str | None = None
    mentions: list[_Mention] = field(default_factory=list)
    cids: dict[Pair, int] = field(default_factory=dict)


class _LineReader:
    """Feeds lines into document drafts, collecting a reason for every bad line."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[LineError] = []
        self.drafts: list[_Draft] = []
        self.current: _Draft | None = None
        self.started: dict[str, int] = {}

    def feed(self, no: int, line: str) -> None:
        if not line.strip():
            self.current = None  # a blank line ends the document
            return
        problem = self._classify(no, line)
        if problem:
            self.errors.append(LineError(self.name, no, problem))

    def _classify(self, no: int, line: str) -> str | None:
        m = _TITLE_ABSTRACT.match(line)
        if m and m.group(2) == "t":
            return self._title(no, m.group(1), line[m.end() :])
        if m:
            return self._abstract(m.group(1), line[m.end() :])
        if "\t" in line:
            return self._annotation(no, line.split("\t"))
        if "|" in line:
            return (
                f"malformed title/abstract line {_clip(line)!r}: expected PMID|t|... or PMID|a|..."
            )
        return (
            f"unknown line shape {_clip(line)!r}: expected PMID|t|title, PMID|a|abstract, "
            "a tab-separated mention line or a CID line"
        )

    def _title(self, no: int, pmid: str, title: str) -> str | None:
        self.current = _Draft(pmid, no, title)
        first = self.started.get(pmid)
        if first is not None:
            # Its lines still attach to this draft, so they do not add "outside" errors.
            return f"duplicate document id {pmid}: a document with this PMID starts at line {first}"
        self.started[pmid] = no
        self.drafts.append(self.current)
        return None

    def _abstract(self, pmid: str, abstract: str) -> str | None:
        cur = self.current
        if cur is None or cur.abstract is not None or cur.mentions or cur.cids:
            return "abstract line (PMID|a|...) must come right after its title line (PMID|t|...)"
        if pmid != cur.pmid:
            return f"PMID {pmid} differs from its document's PMID {cur.pmid} (line {cur.line})"
        cur.abstract = abstract
        return None

    def _annotation(self, no: int, fields: list[str]) -> str | None:
        cur = self.current
        if cur is None:
            return "annotation line outside a document: no PMID|t| line above it since a blank line"
        if fields[0] != cur.pmid:
            return f"PMID {fields[0]} differs from its document's PMID {cur.pmid} (line {cur.line})"
        if fields[1:2] == [CID]:
            return _cid_line(cur, no, fields)
        return _mention_line(cur, no, fields)


def _clip(line: str, limit: int = 60) -> str:
    return line if len(line) <= limit else line[:limit] + "..."


def _cid_line(draft: _Draft, no: int, fields: list[str]) -> str | None:
    if len(fields) != 4:
        return (
            f"CID line has {len(fields)} tab-separated fields, expected 4: "
            "PMID, CID, chemical id, disease id"
        )
    problem = pair_id_problem(fields[2]) or pair_id_problem(fields[3])
    if problem:
        return problem
    draft.cids.setdefault((fields[2], fields[3]), no)
    return None


def _mention_line(draft: _Draft, no: int, fields: list[str]) -> str | None:
    if len(fields) == 4 and not _INT.fullmatch(fields[1]):
        return f"relation line of type {fields[1]!r} is not supported: only CID relations are read"
    if len(fields) < 5:
        return (
            f"mention line has {len(fields)} tab-separated fields, expected at least 5: "
            "PMID, start, end, text, type[, concept id, ...]"
        )
    if not (_INT.fullmatch(fields[1]) and _INT.fullmatch(fields[2])):
        return f"mention offsets must be integers, got start {fields[1]!r} and end {fields[2]!r}"
    concept = fields[5] if len(fields) > 5 else ""
    concept = "" if concept == NO_CONCEPT else concept
    start, end = int(fields[1]), int(fields[2])
    draft.mentions.append(
        _Mention(no, start, end, fields[3], fields[4], concept, tuple(fields[6:]))
    )
    return None


def _mention_problem(m: _Mention, text: str) -> str | None:
    if m.start < 0 or m.start >= m.end:
        return f"mention offsets {m.start}-{m.end}: start must be >= 0 and less than end"
    if m.end > len(text):
        return f"mention ends at {m.end}, beyond the document text (length {len(text)})"
    found = text[m.start : m.end]
    if found != m.text:
        return (
            f"mention text {m.text!r} does not match the document text at "
            f"{m.start}-{m.end}: {found!r}"
        )
    return None


def _span(span_id: str, m: _Mention, text: str) -> Span | str:
    """The mention as a span, or the reason it cannot be one."""
    problem = _mention_problem(m, text)
    if problem:
        return problem
    try:
        return Span(
            span_id,
            m.label,
            m.start,
            m.end,
            notes=m.extra,
            concept=m.concept,
            source=SpanSource.IMPORTED,
        )
    except BUILD_ERRORS as exc:
        return str(exc)


def _to_parsed(draft: _Draft, name: str, rule: str, errors: list[LineError]) -> Parsed | None:
    if draft.abstract is None:
        reason = f"document {draft.pmid} has no abstract line ({draft.pmid}|a|...) after its title"
        errors.append(LineError(name, draft.line, reason))
        return None
    text = f"{draft.title} {draft.abstract}"
    spans: list[Span] = []
    for i, m in enumerate(draft.mentions, start=1):
        span = _span(f"T{i}", m, text)
        if isinstance(span, str):
            errors.append(LineError(name, m.line, span))
        else:
            spans.append(span)
    if len(spans) < len(draft.mentions):
        return None
    return _build(draft, text, spans, name, rule, errors)


def _build(
    draft: _Draft, text: str, spans: list[Span], name: str, rule: str, errors: list[LineError]
) -> Parsed | None:
    lines = {s.id: m.line for s, m in zip(spans, draft.mentions, strict=True)}
    try:
        metadata = {"title_length": str(len(draft.title))}
        doc = Document(draft.pmid, text, tuple(spans), metadata=metadata)
    except BUILD_ERRORS as exc:
        errors.append(LineError(name, draft.line, str(exc)))
        return None
    # The abstract's first character starts a sentence even when the title has no full stop.
    doc, rel_lines = attach_cid(doc, draft.cids, rule=rule, starts=(len(draft.title) + 1,))
    return Parsed(doc, name, draft.line, {**lines, **rel_lines})


def read_pubtator(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, cid_rule: str = DEFAULT_CID_RULE
) -> list[Parsed]:
    """Read a PubTator file: one :class:`Parsed` per document, CID mapped by ``cid_rule``.

    Raises:
        ValueError: ``cid_rule`` is not one of :data:`CID_RULES`.
        ImportFileError: the file cannot be read, or has bad lines; it lists every one.
    """
    check_cid_rule(cid_rule)
    name = str(path)
    reader = _LineReader(name)
    # split("\n"), not splitlines(): an abstract may hold U+2028 or \x1c, which are not
    # line breaks in PubTator and must stay in the text.
    text = read_text_file(Path(path), max_bytes=max_bytes, strip_bom=True)
    for no, raw in enumerate(text.split("\n"), start=1):
        reader.feed(no, raw.removesuffix("\r"))
    errors = reader.errors
    parsed = [p for d in reader.drafts if (p := _to_parsed(d, name, cid_rule, errors))]
    raise_if_errors(sorted(errors, key=lambda e: e.line), parsed)
    return parsed


# --------------------------------------------------------------------------- writing


def _flat(value: str) -> str:
    """PubTator has no escapes: line breaks and tabs become spaces, keeping every offset."""
    return value.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def title_length(doc: Document) -> int:
    """Where the title ends: ``metadata["title_length"]``, else the first line break.

    Without either, the whole text is the title (reading it back adds the separating space).
    """
    stored = doc.metadata.get("title_length", "")
    if stored.isdigit() and int(stored) < len(doc.text):
        return int(stored)
    newline = doc.text.find("\n")
    return newline if newline >= 0 else len(doc.text)


def cid_pairs(doc: Document) -> list[Pair]:
    """The document's CID pairs: ``metadata["cid"]``, else its CID relations' concept ids."""
    if "cid" in doc.metadata:
        return parse_cid_metadata(doc.metadata["cid"], doc.id)
    spans = {s.id: s for s in doc.spans}
    pairs = {
        (chem, dis)
        for rel in doc.relations
        if rel.label == CID
        for chem in concept_ids(spans[rel.head].concept)
        for dis in concept_ids(spans[rel.tail].concept)
    }
    return sorted(pairs)


def _pubtator_line(pmid: str, span: Span, text: str) -> str:
    concept = _flat(span.concept) or NO_CONCEPT
    fields = [pmid, str(span.start), str(span.end), text[span.start : span.end], span.label]
    return "\t".join([*fields, concept, *map(_flat, span.notes)])


def _block(doc: Document) -> str:
    if any(c in doc.id for c in "|\t\r\n"):
        raise InvalidDocumentError(
            f"document {doc.id!r}: a PubTator id cannot contain '|', tabs or line breaks"
        )
    text = _flat(doc.text)
    k = title_length(doc)
    lines = [f"{doc.id}|t|{text[:k]}", f"{doc.id}|a|{text[k + 1 :]}"]
    lines += [_pubtator_line(doc.id, s, text) for s in doc.spans]
    lines += [f"{doc.id}\t{CID}\t{chem}\t{dis}" for chem, dis in cid_pairs(doc)]
    return "\n".join(lines) + "\n\n"


def write_pubtator(docs: Iterable[Document], path: str | Path) -> None:
    """Write ``docs`` as PubTator, the inverse of :func:`read_pubtator`.

    What PubTator cannot say is flattened or left out, so only read -> write -> read is
    lossless: line breaks and tabs in the text, notes and concepts become spaces (offsets
    stay valid); a discontinuous span is written as its whole extent; attributes,
    equivalences and relations other than CID are not written. CID lines come from
    ``metadata["cid"]`` when present, else from the CID relations (see :func:`cid_pairs`).

    Raises:
        InvalidDocumentError: a document id PubTator cannot hold, or a malformed
            ``metadata["cid"]``; nothing is written then.
    """
    blocks = [_block(doc) for doc in docs]
    Path(path).write_text("".join(blocks), encoding="utf-8", newline="")
