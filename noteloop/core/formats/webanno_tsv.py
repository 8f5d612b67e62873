"""WebAnno TSV 3.3: the tab-separated format of INCEpTION (and WebAnno), one file per note.

A file, as INCEpTION writes and reads it::

    #FORMAT=WebAnno TSV 3.3
    #T_SP=webanno.custom.Concept|label
    #T_RL=webanno.custom.Relation|label|BT_webanno.custom.Concept


    #Text=Aspirin 81mg for chest pain .
    1-1<TAB>0-7<TAB>Aspirin<TAB>Drug<TAB>_<TAB>_<TAB>
    1-2<TAB>8-12<TAB>81mg<TAB>_<TAB>_<TAB>_<TAB>
    1-2.1<TAB>8-10<TAB>81<TAB>Dosage<TAB>_<TAB>_<TAB>
    1-3<TAB>13-16<TAB>for<TAB>_<TAB>_<TAB>_<TAB>
    1-4<TAB>17-22<TAB>chest<TAB>Sign[1]<TAB>treats<TAB>1-1[0_1]<TAB>
    1-5<TAB>23-27<TAB>pain<TAB>Sign[1]<TAB>_<TAB>_<TAB>

Header: ``#T_SP=`` declares a span layer and its features, ``#T_RL=`` a relation layer, its
features and last ``BT_<base type>``, the span layer its ends lie on (``#T_CH=`` chain
layers are read past). Body: each sentence is one or more ``#Text=`` lines (a line break of
the sentence starts a new one) and one line per token, ``<sentence>-<token>``, its offsets
and text, then one column per feature. A token line ``1-2.1`` is a sub-token: a stretch of
token ``1-2`` that an annotation covers only in part. In a column ``_`` means no annotation
there, ``*`` an annotation without a value, ``A|B`` stacked annotations, ``Sign[1]`` an
annotation that spans several units or shares one (its disambiguation id). A relation stands
on the first unit of its dependent (its tail), with ``1-1[0_1]`` naming the unit of its
governor (its head) and the ids of governor and dependent (0 when unambiguous). Offsets
count UTF-16 code units, as Java does; the reader turns them into characters.

Values escape ``\\ [ ] | _ -> ; * TAB LF`` with a backslash; ``#Text=`` lines escape
backslash, tab, CR, form feed, backspace and other control characters.

**Text.** Importing rebuilds the note from the ``#Text=`` lines as INCEpTION does: the
sentences in order, a line break after each, and before a sentence spaces up to its first
token's offset. Export therefore cuts sentences only where that rebuilds the exact text: at
the first token of a line, the sentence ending at the line break when only spaces follow it,
and otherwise holding everything up to the next sentence (blank lines, tabs, CRs stay in its
``#Text=`` lines). The one thing the format cannot hold is a text that does not end with a
line break: it comes back with one (counted as ``line_break_added``; no offset moves).
Tokens are words (``81mg``, ``5.0``, ``don't``) and single punctuation marks; whitespace
becomes a token only where a span begins or ends inside it, and text before the first token
is one when it is not only spaces, so that every offset is kept.

**Export** (:func:`write_webanno_tsv`): ``<id>.tsv`` per document, span layer
``webanno.custom.Concept`` with feature ``label``, ``identifier`` (the span's concept) when a
span has one, and one feature per attribute name (a flag's value is ``true``; a CR in a
value becomes LF, since values cannot escape a CR); relation layer ``webanno.custom.Relation``
with feature ``label``, from head (governor) to tail (dependent). Every file of one export
declares the same columns, so one INCEpTION project takes them all once those layers and
features are defined in it. A discontinuous span is written as one extent, first to last
fragment; notes, equivalences and attribute names that cannot be feature names are not
written: :class:`TsvReport` counts each.

**Import** (:func:`read_webanno_tsv`): one file is one document, its id the file name less
``.tsv``; :func:`webanno_units` lists a folder's ``.tsv`` files (INCEpTION exports a file per
document, often zipped). Every span layer gives spans except DKPro Core's linguistic ones
(POS, lemma, tokens, syntax, coreference chains). A span's label is the value of the layer's
feature ``label``, else ``value`` (``NamedEntity|value``), else its first feature; with no
value (``*``) the label is the layer's short name (``webanno.custom.Span`` -> ``Span``).
Feature ``identifier`` becomes the span's concept, any other feature with a value an
attribute. Relation layers give relations when their base type is one of those span layers,
labelled the same way. Slot features are read past. Every bad line is reported at once.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from noteloop.core.errors import LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    raise_if_errors,
    read_text_file,
)
from noteloop.core.formats.peer_json import VOCAB_FAULTS, suffix_units
from noteloop.core.formats.plaintext import check_file_ids, write_exact
from noteloop.core.schema import Document, Relation, Span, SpanSource

__all__ = [
    "CONCEPT_FEATURE",
    "LABEL_FEATURE",
    "RELATION_LAYER",
    "SPAN_LAYER",
    "TsvReport",
    "document_tsv",
    "escape_text",
    "escape_value",
    "read_webanno_tsv",
    "unescape_text",
    "unescape_value",
    "webanno_units",
    "write_webanno_tsv",
]

FORMAT_LINE = "#FORMAT=WebAnno TSV 3.3"
SPAN_LAYER = "webanno.custom.Concept"
RELATION_LAYER = "webanno.custom.Relation"
LABEL_FEATURE = "label"
CONCEPT_FEATURE = "identifier"
# DKPro Core's linguistic layers: tokens, POS tags and dependencies are not concepts.
_LINGUISTIC = tuple(
    f"de.tudarmstadt.ukp.dkpro.core.api.{p}."
    for p in ("lexmorph", "segmentation", "syntax", "coref", "semantics")
)
# What INCEpTION accepts as a feature name, so an attribute can become one.
_FEATURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"\w+(?:[.,'’]\w+)*|[^\w\s]")
_UNIT_ID = re.compile(r"^([0-9]+)-([0-9]+)(?:\.([0-9]+))?$")
_OFFSETS = re.compile(r"^([0-9]+)-([0-9]+)$")
_VERSION = re.compile(r"^#FORMAT=WebAnno TSV 3\.([0-9]+)$")
_LINE_END = re.compile(r"\r\n|\r|\n")  # what Java's readLine ends a line at


# --------------------------------------------------------------------------- escaping

_VALUE_ESCAPES = {"\\": "\\\\", "[": "\\[", "]": "\\]", "|": "\\|", "_": "\\_", "->": "\\->",
                  ";": "\\;", "\t": "\\t", "\n": "\\n", "*": "\\*"}
_VALUE_SPECIAL = re.compile(r"->|[\\\[\]|_;\t\n*]")
_VALUE_ESCAPED = re.compile(r"\\(->|[\\\[\]|_;tn*])")
# Java escapes each control character but TAB..CR by a backslash before the raw character.
_TEXT_CONTROL = "".join(chr(i) for i in (*range(8), *range(14, 32)))
_TEXT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", "\b": "\\b", "\\": "\\\\"}
_TEXT_SPECIAL = re.compile(f"[{re.escape(_TEXT_CONTROL)}\t\n\f\r\b\\\\]")
_TEXT_ESCAPED = re.compile(f"\\\\([{re.escape(_TEXT_CONTROL)}tnfrb\\\\])")
_TEXT_UNESCAPES = {"t": "\t", "n": "\n", "f": "\f", "r": "\r", "b": "\b"}
_STACK = re.compile(r"(?<!\\)\|")


def escape_value(value: str) -> str:
    """A feature value as a TSV column holds it (INCEpTION's ``Escaping.escapeValue``)."""
    return _VALUE_SPECIAL.sub(lambda m: _VALUE_ESCAPES[m.group()], value)


def unescape_value(value: str) -> str:
    return _VALUE_ESCAPED.sub(lambda m: {"t": "\t", "n": "\n"}.get(m[1], m[1]), value)


def escape_text(text: str) -> str:
    """A ``#Text=`` line's text (INCEpTION's ``Escaping.escapeText``)."""
    return _TEXT_SPECIAL.sub(lambda m: _TEXT_ESCAPES.get(m.group(), "\\" + m.group()), text)


def unescape_text(text: str) -> str:
    return _TEXT_ESCAPED.sub(lambda m: _TEXT_UNESCAPES.get(m[1], m[1]), text)


# --------------------------------------------------------------------------- UTF-16


def _utf16_offsets(text: str) -> list[int]:
    """UTF-16 offset of every character position of ``text`` (one more than its length)."""
    out = [0]
    for ch in text:
        out.append(out[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return out


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class TsvReport:
    """What WebAnno TSV could not hold as noteloop holds it."""

    documents: int = 0
    spans: int = 0
    relations: int = 0
    discontinuous: int = 0  # written as one extent, first to last fragment
    line_break_added: int = 0  # texts not ending in a line break: import adds one
    notes: int = 0  # span and relation notes, not written
    equivalences: int = 0  # not written
    attributes_dropped: int = 0  # attribute values whose name cannot be a feature name


@dataclass
class _Unit:
    ident: str
    begin: int
    end: int
    spans: list[int] = field(default_factory=list)  # indexes of the sorted spans, stacked
    relations: list[Relation] = field(default_factory=list)


@dataclass(frozen=True)
class _Columns:
    """The span layer's features of one export, the same in every file."""

    concept: bool
    attributes: tuple[str, ...]

    def header(self) -> list[str]:
        concept = f"|{CONCEPT_FEATURE}" if self.concept else ""
        attrs = "".join(f"|{a}" for a in self.attributes)
        return [
            FORMAT_LINE,
            f"#T_SP={SPAN_LAYER}|{LABEL_FEATURE}{concept}{attrs}",
            f"#T_RL={RELATION_LAYER}|{LABEL_FEATURE}|BT_{SPAN_LAYER}",
            "",
        ]


def write_webanno_tsv(docs: Documents, out_dir: Path) -> TsvReport:
    """Write ``out_dir/<id>.tsv`` for each document; returns what TSV could not hold.
    ``docs`` is read three times (ids, the columns every file shares, the files), a
    document at a time.

    Raises:
        InvalidDocumentError: an id cannot be a file name, or two documents share one;
            nothing is written then.
    """
    check_file_ids(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = _export_columns(docs)
    counts = [0] * 8
    for doc in docs:
        write_exact(out_dir / f"{doc.id}.tsv", document_tsv(doc, columns))
        counts = [a + b for a, b in zip(counts, _losses(doc, columns), strict=True)]
    return TsvReport(*counts)


def _export_columns(docs: Iterable[Document]) -> _Columns:
    names: set[str] = set()
    concept = False
    for doc in docs:  # one pass: the documents may stream from the database
        names.update(n for s in doc.spans for n, _ in s.attributes)
        concept = concept or any(s.concept for s in doc.spans)
    usable = sorted(n for n in names if _FEATURE_NAME.match(n) and n not in
                    (LABEL_FEATURE, CONCEPT_FEATURE))
    return _Columns(concept, tuple(usable))


def _losses(doc: Document, columns: _Columns) -> tuple[int, ...]:
    return (
        1,
        len(doc.spans),
        len(doc.relations),
        sum(1 for s in doc.spans if s.discontinuous),
        0 if doc.text.endswith("\n") else 1,
        sum(len(s.notes) for s in doc.spans) + sum(len(r.notes) for r in doc.relations),
        len(doc.equivalences),
        sum(1 for s in doc.spans for n, _ in s.attributes if n not in columns.attributes),
    )


def document_tsv(doc: Document, columns: _Columns | None = None) -> str:
    """One document as the text of a WebAnno TSV 3.3 file."""
    columns = columns or _export_columns([doc])
    spans = sorted(doc.spans, key=lambda s: (s.start, s.end, s.label, s.id))
    tokens = _tokens(doc.text, spans)
    sentences = _sentences(doc.text, tokens)
    units, sub_units = _units(tokens, sentences)
    first_unit = _place_spans(spans, tokens, units, sub_units)
    ids = _disambiguation_ids(spans, first_unit, units, sub_units)
    index = {s.id: i for i, s in enumerate(spans)}
    for rel in doc.relations:
        first_unit[index[rel.tail]].relations.append(rel)
    u16 = _utf16_offsets(doc.text) if _utf16_len(doc.text) != len(doc.text) else None
    writer = _UnitWriter(doc.text, u16, spans, columns, ids, index, first_unit)
    lines = columns.header()
    for (start, end), token_range in sentences:
        lines.append("")
        lines += [f"#Text={escape_text(t)}" for t in doc.text[start:end].split("\n")]
        for i in token_range:
            lines.append(writer.line(units[i]))
            lines += [writer.line(u) for u in sorted(sub_units[i].values(),
                                                      key=lambda u: (u.begin, u.end))]
    return "\n".join(lines) + "\n"


def _tokens(text: str, spans: Sequence[Span]) -> list[tuple[int, int]]:
    """Word and punctuation tokens, plus the stretches between tokens where a span edge
    falls (a token boundary is the only place an offset can be written)."""
    tokens = [m.span() for m in _TOKEN.finditer(text)]
    if not tokens:  # only whitespace: it is the one token, the final line break apart
        if not text:
            return []
        tokens = [(0, max(len(text) - 1 if text.endswith("\n") else len(text), 1))]
    gaps = set()
    if text[: tokens[0][0]].strip(" "):  # leading text other than spaces: a token
        gaps.add((0, tokens[0][0]))
    starts = [b for b, _ in tokens]
    for span in spans:
        for pos, is_start in ((span.start, True), (span.end, False)):
            gap = _gap(tokens, starts, pos, is_start, len(text))
            if gap:
                gaps.add(gap)
    return sorted(set(tokens) | gaps)


def _gap(
    tokens: list[tuple[int, int]], starts: list[int], pos: int, is_start: bool, length: int
) -> tuple[int, int] | None:
    """The stretch between two tokens holding ``pos``, or None when a token holds it."""
    i = (bisect_right(starts, pos) if is_start else bisect_left(starts, pos)) - 1
    if i >= 0 and (pos < tokens[i][1] if is_start else pos <= tokens[i][1]):
        return None
    begin = tokens[i][1] if i >= 0 else 0
    return (begin, tokens[i + 1][0] if i + 1 < len(tokens) else length)


Sentence = tuple[tuple[int, int], range]


def _sentences(text: str, tokens: list[tuple[int, int]]) -> list[Sentence]:
    """Sentences as (text extent, token indexes), cut where the text rebuilds exactly."""
    if not tokens:
        return []
    starts = [0] + [j for j in range(1, len(tokens))
                    if "\n" in text[tokens[j - 1][1]:tokens[j][0]]]
    out = []
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else len(tokens)
        begin = tokens[first][0]
        if last < len(tokens):
            end = _sentence_end(text, tokens[last - 1][1], tokens[last][0])
        else:  # the reader adds a line break after the last sentence
            end = len(text) - 1 if text.endswith("\n") else len(text)
        out.append(((begin, end), range(first, last)))
    return out


def _sentence_end(text: str, last_token_end: int, next_begin: int) -> int:
    """Where a sentence ends so that the reader's line break and padding rebuild the
    text up to the next sentence: at a line break followed by spaces only, else at it."""
    q = text.rfind("\n", last_token_end, next_begin)
    if q >= 0 and not text[q + 1:next_begin].strip(" "):
        return q
    return next_begin


def _units(
    tokens: list[tuple[int, int]], sentences: list[Sentence]
) -> tuple[list[_Unit], list[dict[tuple[int, int], _Unit]]]:
    units: list[_Unit] = []
    for no, (_, token_range) in enumerate(sentences, start=1):
        units += [_Unit(f"{no}-{k}", *tokens[i]) for k, i in enumerate(token_range, start=1)]
    return units, [{} for _ in units]


def _place_spans(
    spans: Sequence[Span],
    tokens: list[tuple[int, int]],
    units: list[_Unit],
    sub_units: list[dict[tuple[int, int], _Unit]],
) -> list[_Unit]:
    """Put each span on every unit it covers (a whole token, or the part of one it covers
    as a sub-token); returns each span's first unit, the one relations name."""
    starts = [b for b, _ in tokens]
    first: list[_Unit] = []
    for index, span in enumerate(spans):
        placed = []
        for i in range(max(bisect_right(starts, span.start) - 1, 0), len(tokens)):
            b, e = tokens[i]
            if b >= span.end:
                break
            if e <= span.start:
                continue
            part = (max(b, span.start), min(e, span.end))
            unit = units[i] if part == (b, e) else _sub_unit(units[i], sub_units[i], part)
            unit.spans.append(index)
            placed.append(unit)
        first.append(placed[0])
    return first


def _sub_unit(token: _Unit, subs: dict[tuple[int, int], _Unit], part: tuple[int, int]) -> _Unit:
    if part not in subs:
        subs[part] = _Unit("", *part)
        ordered = sorted(subs.values(), key=lambda u: (u.begin, u.end))
        for k, unit in enumerate(ordered, start=1):
            unit.ident = f"{token.ident}.{k}"
    return subs[part]


def _disambiguation_ids(
    spans: Sequence[Span],
    first: list[_Unit],
    units: list[_Unit],
    sub_units: list[dict[tuple[int, int], _Unit]],
) -> dict[int, int]:
    """Ids for the spans that cover several units or share one with another span."""
    all_units = units + [u for subs in sub_units for u in subs.values()]
    seen: dict[int, int] = {}
    needs: set[int] = set()
    for unit in all_units:
        needs |= set(unit.spans) if len(unit.spans) > 1 else set()
        for i in unit.spans:
            seen[i] = seen.get(i, 0) + 1
    needs |= {i for i, n in seen.items() if n > 1}
    return {i: k for k, i in enumerate(sorted(needs), start=1)}


@dataclass(frozen=True)
class _UnitWriter:
    text: str
    u16: list[int] | None  # UTF-16 offsets, when the text has characters beyond 16 bits
    spans: Sequence[Span]
    columns: _Columns
    ids: dict[int, int]
    index: dict[str, int]
    first: list[_Unit]

    def line(self, unit: _Unit) -> str:
        u16 = self.u16
        begin, end = (u16[unit.begin], u16[unit.end]) if u16 else (unit.begin, unit.end)
        token = self.text[unit.begin:unit.end]
        if any(c in token for c in "\t\n\r"):  # would break the line; readers ignore it
            token = escape_text(token)
        cells = [unit.ident, f"{begin}-{end}", token, *self._span_cells(unit),
                 *self._relation_cells(unit)]
        return "\t".join(cells) + "\t"

    def _span_cells(self, unit: _Unit) -> list[str]:
        getters: list[Callable[[Span], str | None]] = [lambda s: s.label]
        if self.columns.concept:
            getters.append(lambda s: s.concept or None)
        getters += [partial(Span.attribute, name=a) for a in self.columns.attributes]
        return [self._stack(unit, get) for get in getters]

    def _stack(self, unit: _Unit, get: Callable[[Span], str | None]) -> str:
        if not unit.spans:
            return "_"
        cells = []
        for i in unit.spans:
            value = get(self.spans[i])
            # A CR would end the line for Java's readLine; escaping knows no CR.
            cell = "*" if value is None else escape_value(value.replace("\r", "\n"))
            cells.append(cell + (f"[{self.ids[i]}]" if i in self.ids else ""))
        return "|".join(cells)

    def _relation_cells(self, unit: _Unit) -> list[str]:
        if not unit.relations:
            return ["_", "_"]
        labels = "|".join(escape_value(r.label) for r in unit.relations)
        return [labels, "|".join(self._reference(r) for r in unit.relations)]

    def _reference(self, rel: Relation) -> str:
        head, tail = self.index[rel.head], self.index[rel.tail]
        ref = self.first[head].ident
        if head in self.ids or tail in self.ids:
            ref += f"[{self.ids.get(head, 0)}_{self.ids.get(tail, 0)}]"
        return ref


# --------------------------------------------------------------------------- units


def webanno_units(path: Path) -> list[Path]:
    """The ``.tsv`` files to import: the file itself, or a folder's (searched recursively).

    Raises:
        ImportFileError: the path is missing, or the folder holds no ``.tsv`` file.
    """
    return suffix_units(path, ".tsv")


# --------------------------------------------------------------------------- reading


class _Bad(Exception):
    """One line's problem; caught per line and collected, never leaves this module."""


@dataclass
class _Column:
    layer: str
    kind: str  # "feature", "ref" (a relation's base-type column) or "skip"
    feature: str = ""


@dataclass
class _Layer:
    name: str
    kind: str  # "span" or "relation"
    features: list[str] = field(default_factory=list)
    base: str = ""  # a relation layer's span layer

    @property
    def label_feature(self) -> str:
        for name in (LABEL_FEATURE, "value"):
            if name in self.features:
                return name
        return self.features[0] if self.features else ""

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass
class _Annotation:
    layer: str
    begin: int  # UTF-16 offsets until the text is known
    end: int
    line: int
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _RelDraft:
    layer: str
    label: str | None
    ref: str
    target_unit: str
    ids: tuple[int, int]  # governor's and dependent's disambiguation ids (-1: none)
    line: int


def read_webanno_tsv(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """The one document of a WebAnno TSV 3.2/3.3 file; its id is the file name less ``.tsv``.

    Raises:
        ImportFileError: with every bad line (header, token lines, values, references).
    """
    name = str(path)
    content = read_text_file(path, max_bytes=max_bytes, strip_bom=True)
    reader = _TsvReader(name)
    parsed = reader.read(_LINE_END.split(content), path.name.removesuffix(".tsv")
                         .removesuffix(".TSV"))
    raise_if_errors(reader.errors)
    assert parsed is not None  # no errors means a document
    return [parsed]


class _TsvReader:
    """Reads one file: header, then sentences, then resolves spans and relations."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[LineError] = []
        self.layers: dict[str, _Layer] = {}
        self.columns: list[_Column] = []
        self.text: list[str] = []
        self.text_len = 0  # UTF-16 length of the text so far
        self.sentence: list[str] | None = None  # its #Text lines, until its first token
        self.units: dict[str, tuple[int, int, int]] = {}  # id -> begin, end, line
        self.on_unit: dict[tuple[str, str], list[_Annotation]] = {}  # (unit, layer) -> stack
        self.by_id: dict[tuple[str, int], _Annotation] = {}
        self.annotations: list[_Annotation] = []
        self.relations: list[_RelDraft] = []
        self.on_unit_relations: dict[tuple[str, str], list[_RelDraft]] = {}

    def _error(self, line: int, reason: str) -> None:
        self.errors.append(LineError(self.path, line, reason))

    def read(self, lines: list[str], doc_id: str) -> Parsed | None:
        body = self._header(lines)
        if body is None:
            return None
        state = "between"
        for no in range(body, len(lines) + 1):
            line = lines[no - 1]
            try:
                state = self._line(no, line, state)
            except _Bad as exc:
                self._error(no, str(exc))
                state = "tokens" if state == "header" else state
        if self.sentence is not None:
            self._error(0, "the last sentence has #Text= lines but no tokens")
        elif not self.units and not self.errors:
            self._error(0, "no sentences: a WebAnno TSV file holds #Text= lines and tokens")
        return None if self.errors else self._document(doc_id)

    # ---- header

    def _header(self, lines: list[str]) -> int | None:
        match = _VERSION.match(lines[0].strip()) if lines else None
        if not match or int(match[1]) < 2:
            shown = lines[0][:60] if lines else ""
            self._error(1, f"expected '{FORMAT_LINE}' (or 3.2) as the first line, got {shown!r}")
            return None
        no = 2
        while no <= len(lines) and lines[no - 1].strip():
            try:
                self._layer(lines[no - 1].strip())
            except _Bad as exc:
                self._error(no, str(exc))
            no += 1
        return no

    def _layer(self, line: str) -> None:
        prefix, _, rest = line.partition("=")
        kinds = {"#T_SP": "span", "#T_RL": "relation", "#T_CH": "chain"}
        if prefix not in kinds:
            raise _Bad(f"expected a layer line (#T_SP=, #T_RL=, #T_CH=) or a blank line, "
                       f"got {line[:60]!r}")
        fields = [f for f in rest.split("|") if f]
        if not fields:
            raise _Bad(f"{prefix}= names no layer")
        layer = _Layer(fields[0], kinds[prefix])
        for decl in fields[1:] or [""]:  # a layer without features still has a column
            self.columns.append(self._column(layer, decl))
        if layer.kind == "relation" and not layer.base:
            raise _Bad(f"relation layer {layer.name} has no BT_<base type> column")
        self.layers[layer.name] = layer

    def _column(self, layer: _Layer, decl: str) -> _Column:
        if layer.kind == "relation" and decl.startswith("BT_"):
            layer.base = decl[3:]
            return _Column(layer.name, "ref")
        slot = layer.kind == "span" and (decl.startswith("ROLE_") or "." in decl)
        if layer.kind == "chain" or slot or not decl:
            return _Column(layer.name, "skip")
        layer.features.append(decl)
        return _Column(layer.name, "feature", decl)

    def _imported(self, layer_name: str) -> bool:
        layer = self.layers.get(layer_name)
        if layer is None or layer.kind == "chain":
            return False
        if layer.kind == "relation":
            return self._imported(layer.base) and self.layers[layer.base].kind == "span"
        return not layer.name.startswith(_LINGUISTIC)

    # ---- body

    def _line(self, no: int, line: str, state: str) -> str:
        if state in ("between", "header") and line.startswith("#"):
            self._sentence_header(line)
            return "header"
        if not line:
            return "between"
        if state == "tokens" and line.startswith("#"):
            raise _Bad("expected a token line, or a blank line before the next sentence")
        if state == "between":
            raise _Bad(f"expected a #Text= line or a blank line, got {line[:60]!r}")
        self._unit(no, line, starts_sentence=state == "header")
        return "tokens"

    def _sentence_header(self, line: str) -> None:
        if self.sentence is None:
            self.sentence = []
        if line.startswith("#Text="):
            self.sentence.append(unescape_text(line[len("#Text="):]))
        # #Sentence.id= and other header lines carry nothing noteloop keeps

    def _unit(self, no: int, line: str, *, starts_sentence: bool) -> None:
        fields = line.split("\t")
        if len(fields) < len(self.columns) + 3:
            raise _Bad(f"expected {len(self.columns) + 3} tab-separated fields (id, offsets, "
                       f"token, {len(self.columns)} column(s)), got {len(fields)}")
        ident, offsets = fields[0], _OFFSETS.match(fields[1])
        unit_id = _UNIT_ID.match(ident)
        if not unit_id or not offsets:
            raise _Bad(f"expected '<sentence>-<token>' and '<begin>-<end>', "
                       f"got {ident!r} and {fields[1]!r}")
        begin, end = int(offsets[1]), int(offsets[2])
        if starts_sentence:
            self._start_sentence(begin, unit_id[3] is not None)
        if begin > end:
            raise _Bad(f"{ident}: begin {begin} is after end {end}")
        if ident in self.units:
            raise _Bad(f"duplicate unit id {ident} (first on line {self.units[ident][2]})")
        self.units[ident] = (begin, end, no)
        for column, value in zip(self.columns, fields[3:], strict=False):
            self._cell(no, ident, column, value)

    def _start_sentence(self, begin: int, is_sub_token: bool) -> None:
        if is_sub_token:
            raise _Bad("a sentence must begin with a token, not a sub-token")
        text = "\n".join(self.sentence or []) + "\n"
        self.sentence = None
        if self.text_len > begin:  # no gap: drop the line break after the last sentence
            if self.text_len != begin + 1:
                raise _Bad(f"the sentence's first token begins at {begin}, inside the text "
                           f"of the sentences before it (which end at {self.text_len - 1})")
            self.text[-1] = self.text[-1][:-1]
            self.text_len -= 1
        pad = " " * (begin - self.text_len)
        self.text.append(pad + text)
        self.text_len += len(pad) + _utf16_len(text)

    def _cell(self, no: int, unit: str, column: _Column, value: str) -> None:
        if column.kind == "skip" or value == "_" or not self._imported(column.layer):
            return
        layer = self.layers[column.layer]
        for stack, raw in enumerate(_STACK.split(value)):
            if column.kind == "ref":
                self._relation_ref(no, unit, layer, stack, raw)
            elif layer.kind == "relation":
                self._relation_value(no, unit, layer, stack, column.feature, raw)
            else:
                self._span_value(no, unit, layer, stack, column.feature, raw)

    def _span_value(self, no: int, unit: str, layer: _Layer, stack: int, feature: str,
                    raw: str) -> None:
        value, ident = _split_id(raw)
        stacked = self.on_unit.setdefault((unit, layer.name), [])
        if stack < len(stacked):  # the same annotation, seen in another column
            ann = stacked[stack]
        elif ident is not None and (layer.name, _number(ident)) in self.by_id:
            ann = self.by_id[(layer.name, _number(ident))]
            ann.end = self.units[unit][1]  # a later unit of a multi-unit annotation
            stacked.append(ann)
        else:
            ann = _Annotation(layer.name, *self.units[unit][:2], no)
            self.annotations.append(ann)
            stacked.append(ann)
        if ident is not None:
            self.by_id[(layer.name, _number(ident))] = ann
        if value != "*":
            ann.values[feature] = unescape_value(value)

    def _relation_value(self, no: int, unit: str, layer: _Layer, stack: int, feature: str,
                        raw: str) -> None:
        draft = self._relation_draft(no, unit, layer, stack)
        if feature == layer.label_feature and raw != "*":
            draft.label = unescape_value(raw)

    def _relation_ref(self, no: int, unit: str, layer: _Layer, stack: int, raw: str) -> None:
        draft = self._relation_draft(no, unit, layer, stack)
        ref, ident = _split_id(raw)
        draft.ref = ref
        if ident is not None:
            governor, sep, dependent = ident.partition("_")
            if not sep:
                raise _Bad(f"relation reference {raw!r}: expected ids as [governor_dependent]")
            draft.ids = (_number(governor), _number(dependent))

    def _relation_draft(self, no: int, unit: str, layer: _Layer, stack: int) -> _RelDraft:
        mine = self.on_unit_relations.setdefault((unit, layer.name), [])
        if stack < len(mine):
            return mine[stack]
        draft = _RelDraft(layer.name, None, "", unit, (-1, -1), no)
        self.relations.append(draft)
        mine.append(draft)
        return draft

    # ---- the document

    def _document(self, doc_id: str) -> Parsed | None:
        text = "".join(self.text)
        chars = _utf16_positions(text)
        spans, lines, by_ann = self._spans(chars)
        relations = self._relations(by_ann, lines)
        if self.errors:
            return None
        try:
            doc = Document(doc_id, text, tuple(spans), tuple(relations))
        except VOCAB_FAULTS as exc:
            self._error(0, str(exc))
            return None
        return Parsed(doc, self.path, 0, lines)

    def _spans(
        self, chars: dict[int, int]
    ) -> tuple[list[Span], dict[str, int], dict[int, str]]:
        spans: list[Span] = []
        lines: dict[str, int] = {}
        by_ann: dict[int, str] = {}
        for ann in self.annotations:
            try:
                span = self._span(ann, f"T{len(spans) + 1}", chars)
            except (_Bad, *VOCAB_FAULTS) as exc:
                self._error(ann.line, str(exc))
                continue
            spans.append(span)
            lines[span.id] = ann.line
            by_ann[id(ann)] = span.id
        return spans, lines, by_ann

    def _span(self, ann: _Annotation, span_id: str, chars: dict[int, int]) -> Span:
        layer = self.layers[ann.layer]
        if ann.begin == ann.end:
            raise _Bad(f"zero-width {layer.short_name} annotation at {ann.begin}: noteloop "
                       "spans cover at least one character")
        start, end = _char(chars, ann.begin), _char(chars, ann.end)
        label = ann.values.get(layer.label_feature) or layer.short_name
        concept = ann.values.get(CONCEPT_FEATURE, "")
        attributes = tuple((k, v) for k, v in ann.values.items()
                           if k not in (layer.label_feature, CONCEPT_FEATURE))
        return Span(span_id, label, start, end, attributes=attributes, concept=concept,
                    source=SpanSource.IMPORTED)

    def _relations(self, by_ann: dict[int, str], lines: dict[str, int]) -> list[Relation]:
        out: list[Relation] = []
        for draft in self.relations:
            try:
                layer = self.layers[draft.layer]
                head = self._resolve(layer.base, draft.ref, draft.ids[0], by_ann)
                tail = self._resolve(layer.base, draft.target_unit, draft.ids[1], by_ann)
                rel = Relation(f"R{len(out) + 1}", draft.label or layer.short_name, head, tail)
            except (_Bad, *VOCAB_FAULTS) as exc:
                self._error(draft.line, str(exc))
                continue
            out.append(rel)
            lines[rel.id] = draft.line
        return out

    def _resolve(self, layer: str, unit: str, ident: int, by_ann: dict[int, str]) -> str:
        """The span a relation end means: by its id, else the first on its unit."""
        if ident > 0:
            ann = self.by_id.get((layer, ident))
            if ann is None:
                raise _Bad(f"relation names {layer} [{ident}], which no unit carries")
        else:
            if unit not in self.units:
                raise _Bad(f"relation names unit {unit!r}, which is not in the file")
            stacked = self.on_unit.get((unit, layer), [])
            if not stacked:
                raise _Bad(f"relation names unit {unit}, which has no {layer} annotation")
            ann = stacked[0]
        if id(ann) not in by_ann:
            raise _Bad(f"relation names the annotation of line {ann.line}, refused there")
        return by_ann[id(ann)]


def _split_id(raw: str) -> tuple[str, str | None]:
    """``'Sign[3]'`` -> ``('Sign', '3')``; a value without a bracketed id -> (raw, None)."""
    if raw.endswith("]") and not raw.endswith("\\]") and "[" in raw:
        value, _, ident = raw[:-1].rpartition("[")
        return value, ident
    return raw, None


def _number(ident: str) -> int:
    if not ident.isdigit():
        raise _Bad(f"disambiguation id [{ident}] is not a number")
    return int(ident)


def _utf16_positions(text: str) -> dict[int, int]:
    """Character position of every UTF-16 offset that starts a character (or ends the text)."""
    return {u: i for i, u in enumerate(_utf16_offsets(text))}


def _char(chars: dict[int, int], offset: int) -> int:
    if offset not in chars:
        last = max(chars)
        why = "beyond the text" if offset > last else "inside a character (a surrogate pair)"
        raise _Bad(f"offset {offset} is {why} (the text has {last} UTF-16 units)")
    return chars[offset]
