"""UIMA CAS XMI (XML 1.0): INCEpTION's lossless exchange format, through dkpro-cassis.

**Export** (:func:`write_xmi`): ``<id>.xmi`` per document and one ``TypeSystem.xml`` beside
them (the layout of an INCEpTION document export, unzipped). The types, named as INCEpTION
names custom layers so that a project defining them shows the annotations:

``webanno.custom.Concept`` (a span layer, ``uima.tcas.Annotation``)
    ``label``; ``identifier`` (the concept id, as INCEpTION's concept features call it);
    ``attributes`` (a string array of ``name=value``); ``notes`` (a string array);
    ``fragments`` (an array of ``webanno.custom.ConceptFragment`` annotations, one per piece
    of a discontinuous span; the span's own offsets run from its first to its last piece).
``webanno.custom.Relation`` (a relation layer, offsets of its dependent)
    ``Governor`` (the head span), ``Dependent`` (the tail span), ``label``, ``notes``.
``webanno.custom.Equivalence``
    ``label`` and ``members`` (the spans of the group).
``webanno.custom.Metadata`` (a document metadata layer)
    one ``key``/``value`` pair of the note's metadata each.
``de.tudarmstadt.ukp.dkpro.core.api.metadata.type.DocumentMetaData``
    ``documentId`` and ``documentTitle``: the document id.

No sentences or tokens are written: INCEpTION segments a document that has none when it
imports it. XML 1.0 cannot hold most control characters: one in the text is written as a
space with a ``webanno.custom.ControlCharacter`` annotation holding its ``code``, and put
back on import, so the text still comes back exactly (:class:`XmiReport` counts them); one
in a label, note, attribute or metadata value becomes U+FFFD (counted: the only loss).
Offsets are written in UTF-16 code units, as UIMA counts them (cassis converts).

**Import** (:func:`read_xmi`): one ``.xmi`` file is one document, its id the file name less
``.xmi``, read with the ``TypeSystem.xml`` (any case) beside it, or with noteloop's own
types when there is none. :func:`xmi_units` lists a folder's ``.xmi`` files. A noteloop
export comes back exactly. From elsewhere (an INCEpTION export), every annotation type named
``webanno.custom.*`` that is not a relation gives spans, as does DKPro Core's
``NamedEntity``; the label is feature ``label``, else ``value``, else the first string
feature, else (no value) the type's short name; ``identifier`` becomes the concept and the
other primitive features with a value become attributes. Every such type with ``Governor``
and ``Dependent`` features gives relations between those spans. Sentences, tokens and
other DKPro Core layers are read past.

dkpro-cassis is imported only when this format is used (``pip install dkpro-cassis``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noteloop.core.errors import ImportFileError, InvalidDocumentError, LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    check_file,
    decode_utf8,
    raise_if_errors,
)
from noteloop.core.formats.peer_json import VOCAB_FAULTS, suffix_units
from noteloop.core.formats.plaintext import check_file_ids, write_exact
from noteloop.core.schema import Document, Equivalence, Relation, Span, SpanSource

__all__ = [
    "RELATION_TYPE",
    "SPAN_TYPE",
    "TYPESYSTEM_FILE",
    "XmiReport",
    "noteloop_typesystem",
    "read_xmi",
    "write_xmi",
    "xmi_units",
]

SPAN_TYPE = "webanno.custom.Concept"
FRAGMENT_TYPE = "webanno.custom.ConceptFragment"
RELATION_TYPE = "webanno.custom.Relation"
EQUIVALENCE_TYPE = "webanno.custom.Equivalence"
METADATA_TYPE = "webanno.custom.Metadata"
CONTROL_TYPE = "webanno.custom.ControlCharacter"
DOCUMENT_METADATA = "de.tudarmstadt.ukp.dkpro.core.api.metadata.type.DocumentMetaData"
NAMED_ENTITY = "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity"
TYPESYSTEM_FILE = "TypeSystem.xml"
_ANNOTATION = "uima.tcas.Annotation"
_STRING = "uima.cas.String"
_STRING_ARRAY = "uima.cas.StringArray"
_FS_ARRAY = "uima.cas.FSArray"
# noteloop's helper types: parts of another annotation, never spans of their own.
_HELPERS = {FRAGMENT_TYPE, CONTROL_TYPE}
# What XML 1.0 cannot hold (besides surrogates, which a decoded str has none of).
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XMI_ID = re.compile(r'xmi:id="([0-9]+)"')
_FAULTS = (*VOCAB_FAULTS, InvalidDocumentError)


def _cassis() -> Any:
    try:
        import cassis
    except ImportError:
        raise ImportFileError.single(
            "dkpro-cassis", 0, "the xmi format needs dkpro-cassis: pip install dkpro-cassis"
        ) from None
    return cassis


# --------------------------------------------------------------------------- type system


def noteloop_typesystem() -> Any:
    """The cassis ``TypeSystem`` of noteloop's export (see the module's docstring)."""
    ts = _cassis().TypeSystem()
    fragment = ts.create_type(FRAGMENT_TYPE, supertypeName=_ANNOTATION)
    concept = ts.create_type(SPAN_TYPE, supertypeName=_ANNOTATION)
    for name, range_ in (("label", _STRING), ("identifier", _STRING),
                         ("attributes", _STRING_ARRAY), ("notes", _STRING_ARRAY)):
        ts.create_feature(concept, name, range_)
    ts.create_feature(concept, "fragments", _FS_ARRAY, elementType=fragment)
    relation = ts.create_type(RELATION_TYPE, supertypeName=_ANNOTATION)
    ts.create_feature(relation, "Governor", concept)
    ts.create_feature(relation, "Dependent", concept)
    ts.create_feature(relation, "label", _STRING)
    ts.create_feature(relation, "notes", _STRING_ARRAY)
    equivalence = ts.create_type(EQUIVALENCE_TYPE, supertypeName="uima.cas.TOP")
    ts.create_feature(equivalence, "label", _STRING)
    ts.create_feature(equivalence, "members", _FS_ARRAY, elementType=concept)
    metadata = ts.create_type(METADATA_TYPE, supertypeName="uima.cas.AnnotationBase")
    ts.create_feature(metadata, "key", _STRING)
    ts.create_feature(metadata, "value", _STRING)
    control = ts.create_type(CONTROL_TYPE, supertypeName=_ANNOTATION)
    ts.create_feature(control, "code", "uima.cas.Integer")
    meta = ts.create_type(DOCUMENT_METADATA, supertypeName="uima.tcas.DocumentAnnotation")
    for name in ("documentTitle", "documentId", "documentUri", "documentBaseUri",
                 "collectionId"):
        ts.create_feature(meta, name, _STRING)
    ts.create_feature(meta, "isLastSegment", "uima.cas.Boolean")
    return ts


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class XmiReport:
    """What XMI could not hold exactly (everything else is carried)."""

    documents: int = 0
    spans: int = 0
    relations: int = 0
    control_characters: int = 0  # in texts: spaces in the XMI, put back on import
    replaced: int = 0  # XML-illegal characters in labels, notes and values: now U+FFFD


def write_xmi(docs: Documents, out_dir: Path) -> XmiReport:
    """Write ``out_dir/<id>.xmi`` per document and ``out_dir/TypeSystem.xml``; ``docs`` is
    read twice (every id checked first), a document at a time.

    Raises:
        InvalidDocumentError: an id cannot be a file name, or two documents share one;
            nothing is written then.
    """
    check_file_ids(docs)
    ts = noteloop_typesystem()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_exact(out_dir / TYPESYSTEM_FILE, ts.to_xml())
    totals = [0, 0, 0, 0, 0]
    for doc in docs:
        builder = _CasBuilder(ts)
        cas = builder.build(doc)
        write_exact(out_dir / f"{doc.id}.xmi", cas.to_xmi(pretty_print=True))
        counts = (1, len(doc.spans), len(doc.relations), builder.controls, builder.replaced)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    return XmiReport(*totals)


class _CasBuilder:
    """Builds the CAS of one document, counting what XML made it change."""

    def __init__(self, ts: Any) -> None:
        self.ts = ts
        self.controls = 0
        self.replaced = 0

    def _type(self, name: str) -> Any:
        return self.ts.get_type(name)

    def _clean(self, value: str) -> str:
        cleaned, n = _ILLEGAL_XML.subn("\ufffd", value)
        self.replaced += n
        return cleaned

    def _strings(self, values: Iterable[str]) -> Any:
        return self._type(_STRING_ARRAY)(elements=[self._clean(v) for v in values])

    def build(self, doc: Document) -> Any:
        cas = _cassis().Cas(typesystem=self.ts)
        cas.sofa_string = self._text(cas, doc.text)
        cas.add(self._type(DOCUMENT_METADATA)(
            begin=0, end=len(doc.text), documentId=self._clean(doc.id),
            documentTitle=self._clean(doc.id)))
        metadata = self._type(METADATA_TYPE)
        cas.add_all(metadata(key=self._clean(k), value=self._clean(v))
                    for k, v in doc.metadata.items())
        concepts = {s.id: self._concept(s) for s in doc.spans}
        cas.add_all(concepts.values())
        # Indexed like any annotation: UIMA (and cassis) read an annotation only with its view.
        cas.add_all(p for c in concepts.values() if c.fragments for p in c.fragments.elements)
        cas.add_all(self._relation(r, concepts) for r in doc.relations)
        equivalence = self._type(EQUIVALENCE_TYPE)
        members = self._type(_FS_ARRAY)
        cas.add_all(equivalence(label=self._clean(e.label),
                                members=members(elements=[concepts[m] for m in e.members]))
                    for e in doc.equivalences)
        return cas

    def _text(self, cas: Any, text: str) -> str:
        """The text XML can hold: each illegal character a space, its code kept beside."""
        control = self._type(CONTROL_TYPE)
        found = list(_ILLEGAL_XML.finditer(text))
        cas.add_all(control(begin=m.start(), end=m.end(), code=ord(m.group())) for m in found)
        self.controls += len(found)
        return _ILLEGAL_XML.sub(" ", text)

    def _concept(self, span: Span) -> Any:
        fragment = self._type(FRAGMENT_TYPE)
        pieces = [fragment(begin=a, end=b) for a, b in span.fragments]
        return self._type(SPAN_TYPE)(
            begin=span.start, end=span.end, label=self._clean(span.label),
            identifier=self._clean(span.concept) if span.concept else None,
            attributes=self._strings(f"{k}={v}" for k, v in span.attributes)
            if span.attributes else None,
            notes=self._strings(span.notes) if span.notes else None,
            fragments=self._type(_FS_ARRAY)(elements=pieces) if span.discontinuous else None,
        )

    def _relation(self, rel: Relation, concepts: Mapping[str, Any]) -> Any:
        tail = concepts[rel.tail]
        return self._type(RELATION_TYPE)(
            begin=tail.begin, end=tail.end, Governor=concepts[rel.head], Dependent=tail,
            label=self._clean(rel.label), notes=self._strings(rel.notes) if rel.notes else None,
        )


# --------------------------------------------------------------------------- units


def xmi_units(path: Path) -> list[Path]:
    """The ``.xmi`` files to import: the file itself, or a folder's (searched recursively).

    Raises:
        ImportFileError: the path is missing, or the folder holds no ``.xmi`` file.
    """
    return suffix_units(path, ".xmi")


# --------------------------------------------------------------------------- reading


def read_xmi(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """The one document of an ``.xmi`` file, read with the ``TypeSystem.xml`` beside it.

    Raises:
        ImportFileError: the file or its type system is not readable XML of UIMA, or
            annotations that noteloop cannot hold (each named with its line and xmi:id).
    """
    name = str(path)
    check_file(path, max_bytes)
    raw = decode_utf8(path.read_bytes(), name, strip_bom=True)
    cas = _load_cas(raw, name, _typesystem(path, max_bytes))
    reader = _CasReader(cas, name, _xmi_lines(raw))
    parsed = reader.read(path.name[: -len(path.suffix)] if path.suffix else path.name)
    raise_if_errors(reader.errors)
    assert parsed is not None  # no errors means a document
    return [parsed]


def _typesystem(path: Path, max_bytes: int) -> Any:
    cassis = _cassis()
    usual = [path.parent / n for n in (TYPESYSTEM_FILE, TYPESYSTEM_FILE.lower())]
    beside = [p for p in usual if p.is_file()] or [
        p for p in path.parent.iterdir() if p.name.lower() == TYPESYSTEM_FILE.lower()]
    if not beside:
        return noteloop_typesystem()
    check_file(beside[0], max_bytes)
    try:
        return cassis.load_typesystem(beside[0])
    except Exception as exc:  # lxml and cassis raise many kinds for a foreign file
        raise ImportFileError.single(str(beside[0]), _line_of(exc),
                                     f"not a UIMA type system ({exc})") from None


def _load_cas(raw: str, name: str, ts: Any) -> Any:
    try:
        return _cassis().load_cas_from_xmi(raw, typesystem=ts, lenient=True)
    except Exception as exc:  # lxml and cassis raise many kinds for a foreign file
        raise ImportFileError.single(name, _line_of(exc), f"not a UIMA CAS XMI file ({exc})"
                                     ) from None


def _line_of(exc: Exception) -> int:
    line = getattr(exc, "lineno", 0)
    return line if isinstance(line, int) else 0


def _xmi_lines(raw: str) -> dict[int, int]:
    """The line each ``xmi:id`` is on, so that a problem points where a person can look."""
    return {int(m[1]): raw.count("\n", 0, m.start()) + 1 for m in _XMI_ID.finditer(raw)}


class _Bad(Exception):
    """One annotation's problem; caught and collected, never leaves this module."""


class _CasReader:
    """Turns one CAS into a document: spans first, then what refers to them."""

    def __init__(self, cas: Any, path: str, lines: dict[int, int]) -> None:
        self.cas, self.ts, self.path, self.xmi_lines = cas, cas.typesystem, path, lines
        self.errors: list[LineError] = []
        self.span_of: dict[int, str] = {}  # xmi id of an annotation -> span id
        self.lines: dict[str, int] = {}
        self.n_relations = 0

    def _line(self, fs: Any) -> int:
        return self.xmi_lines.get(fs.xmiID, 0)

    def _attempt(self, fs: Any, make: Any) -> Any:
        try:
            return make(fs)
        except (_Bad, *_FAULTS) as exc:
            self.errors.append(LineError(self.path, self._line(fs),
                                         f"{fs.type.name} xmi:id {fs.xmiID}: {exc}"))
            return None

    def read(self, doc_id: str) -> Parsed | None:
        text = self._text()
        if text is None:
            return None
        spans = [s for fs in self._span_annotations()
                 if (s := self._attempt(fs, lambda f: self._span(f, text))) is not None]
        relations = [r for fs in self._relation_annotations()
                     if (r := self._attempt(fs, self._relation)) is not None]
        equivalences = [e for fs in self._select(EQUIVALENCE_TYPE)
                        if (e := self._attempt(fs, self._equivalence)) is not None]
        if self.errors:
            return None
        try:
            doc = Document(doc_id, text, tuple(spans), tuple(relations), tuple(equivalences),
                           self._metadata())
        except _FAULTS as exc:
            self.errors.append(LineError(self.path, 0, str(exc)))
            return None
        return Parsed(doc, self.path, 0, self.lines)

    def _text(self) -> str | None:
        text = self.cas.sofa_string
        if text is None:
            self.errors.append(LineError(self.path, 0, "the CAS has no text (no sofaString)"))
            return None
        chars = list(text)
        for fs in self._select(CONTROL_TYPE):  # the characters XML could not hold
            if fs.code is not None and 0 <= fs.begin < len(chars):
                chars[fs.begin] = chr(fs.code)
        return "".join(chars)

    def _select(self, type_name: str) -> list[Any]:
        return list(self.cas.select(type_name)) if self.ts.contains_type(type_name) else []

    def _metadata(self) -> dict[str, str]:
        return {fs.key: fs.value or "" for fs in self._select(METADATA_TYPE) if fs.key}

    # ---- spans

    def _span_annotations(self) -> list[Any]:
        out = []
        for type_ in self.ts.get_types():
            name = type_.name
            custom = name.startswith("webanno.custom.") and name not in _HELPERS
            if (custom or name == NAMED_ENTITY) and not _is_relation(type_) and \
                    self.ts.subsumes(_ANNOTATION, type_):
                out += self.cas.select(type_)  # subtypes come with their supertype
        unique = {fs.xmiID: fs for fs in out}
        return sorted(unique.values(), key=lambda fs: (fs.begin, fs.end, fs.xmiID))

    def _span(self, fs: Any, text: str) -> Span:
        if fs.begin >= fs.end:
            raise _Bad(f"zero-width annotation at {fs.begin}: noteloop spans cover at least "
                       "one character")
        span_id = f"T{len(self.span_of) + 1}"
        values = _values(fs)
        label_feature = _label_feature(fs.type)
        concept = values.pop("identifier", "")
        label = values.pop(label_feature, "") or _short(fs.type.name)
        attributes = _attributes(fs) if fs.type.name == SPAN_TYPE else tuple(values.items())
        span = Span(span_id, label, fs.begin, fs.end, _fragments(fs), attributes,
                    _notes(fs), concept, SpanSource.IMPORTED)
        if span.end > len(text):
            raise _Bad(f"ends at {span.end}, beyond the text ({len(text)} characters)")
        self.span_of[fs.xmiID] = span_id
        self.lines[span_id] = self._line(fs)
        return span

    # ---- what refers to spans

    def _relation_annotations(self) -> list[Any]:
        out = []
        for type_ in self.ts.get_types():
            if _is_relation(type_) and type_.name.startswith("webanno.custom.") and \
                    _between_spans(type_):
                out += self.cas.select(type_)
        return sorted({fs.xmiID: fs for fs in out}.values(), key=lambda fs: fs.xmiID)

    def _end(self, fs: Any, role: str) -> str:
        target = fs.get(role)
        if target is None:
            raise _Bad(f"has no {role}")
        if target.xmiID not in self.span_of:
            raise _Bad(f"{role} xmi:id {target.xmiID} is not a span that was read")
        return self.span_of[target.xmiID]

    def _relation(self, fs: Any) -> Relation:
        rel_id = f"R{self.n_relations + 1}"
        label = _values(fs).get(_label_feature(fs.type), "") or _short(fs.type.name)
        rel = Relation(rel_id, label, self._end(fs, "Governor"), self._end(fs, "Dependent"),
                       _notes(fs))
        self.lines[rel_id] = self._line(fs)
        self.n_relations += 1
        return rel

    def _equivalence(self, fs: Any) -> Equivalence:
        members = fs.members.elements if fs.members is not None else []
        missing = [m.xmiID for m in members if m.xmiID not in self.span_of]
        if missing:
            raise _Bad(f"members {missing} are not spans that were read")
        return Equivalence(fs.label or "", tuple(self.span_of[m.xmiID] for m in members))


def _is_relation(type_: Any) -> bool:
    names = {f.name for f in type_.all_features}
    return {"Governor", "Dependent"} <= names


def _between_spans(type_: Any) -> bool:
    """Whether a relation type links span layers (not tokens, POS tags...)."""
    governor = next(f for f in type_.all_features if f.name == "Governor").rangeType.name
    return governor.startswith("webanno.custom.") or governor in (NAMED_ENTITY, _ANNOTATION)


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


def _label_feature(type_: Any) -> str:
    strings = [f.name for f in type_.all_features if f.rangeType.name == _STRING]
    for name in ("label", "value"):
        if name in strings:
            return name
    rest = [n for n in strings if n not in ("identifier", "sofa")]
    return rest[0] if rest else ""


# The features every annotation has, and noteloop's own that are not plain values.
_NOT_VALUES = {"sofa", "begin", "end", "attributes", "notes", "fragments"}


def _values(fs: Any) -> dict[str, str]:
    """The annotation's primitive features that have a value, as strings."""
    out = {}
    for feature in fs.type.all_features:
        if feature.name in _NOT_VALUES or not _primitive(feature):
            continue
        value = fs.get(feature.name)
        if value is not None:
            out[feature.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _primitive(feature: Any) -> bool:
    return feature.rangeType.name in {
        _STRING, "uima.cas.Boolean", "uima.cas.Integer", "uima.cas.Float", "uima.cas.Double",
        "uima.cas.Long", "uima.cas.Short", "uima.cas.Byte",
    }


def _strings_of(fs: Any, name: str) -> list[str]:
    if not any(f.name == name for f in fs.type.all_features):
        return []
    array = fs.get(name)
    return list(array.elements) if array is not None and array.elements else []


def _attributes(fs: Any) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in _strings_of(fs, "attributes"):
        name, sep, value = item.partition("=")
        if not sep:
            raise _Bad(f"attribute {item!r} is not name=value")
        pairs.append((name, value))
    return tuple(pairs)


def _notes(fs: Any) -> tuple[str, ...]:
    return tuple(_strings_of(fs, "notes"))


def _fragments(fs: Any) -> tuple[tuple[int, int], ...]:
    if not any(f.name == "fragments" for f in fs.type.all_features) or fs.fragments is None:
        return ()
    return tuple(sorted((p.begin, p.end) for p in fs.fragments.elements))
