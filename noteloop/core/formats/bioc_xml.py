"""BioC XML, through the ``bioc`` package's data model (``bioc.biocxml`` loads and dumps).

Reading, one :class:`Document` per BioC ``<document>``:

* Text: each passage's text (or, for a passage without text, its sentences' texts) placed
  at its offset, gaps filled with spaces, so every BioC offset indexes the document text.
  Offsets count characters (code points). Passages must come in offset order.
* Annotation -> :class:`Span`: label from infon ``type`` (else ``label``); each
  ``<location>`` a fragment (several = discontinuous); concept from the first of the infons
  ``MESH``, ``identifier``, ``concept`` (``-1`` = none); attributes from infons ``attr:NAME``
  and, so that nothing is lost, from any other infon (BC5CDR's ``CompositeRole``); notes
  from infons ``note``, ``note:1``, ``note:2``... An annotation's ``<text>``, when present,
  must equal the covered text (fragments joined by a space, or by nothing).
* Relation with nodes -> :class:`Relation`: label from infon ``type`` (else ``relation``,
  else ``label``); head/tail from roles ``head``/``tail`` or ``Arg1``/``Arg2``, else the
  node order; notes as for annotations. With infon ``equivalence=true`` -> an
  :class:`Equivalence` of all its nodes. Other infons of a relation are not kept.
* Relation without nodes carrying infons ``Chemical`` and ``Disease`` (BC5CDR's
  document-level CID) -> the CID rule of :mod:`noteloop.core.formats.pubtator`, with the
  same ``cid``/``cid_unmapped``/``cid_rule`` metadata; passage and sentence offsets start
  sentences for that rule.
* Document infons -> ``metadata``; a first passage of type ``title`` at offset 0 also gives
  ``metadata["title_length"]``, as PubTator does.

Writing is one passage per document (offset 0, the whole text); the metadata goes to
document infons, relations to nodes with roles head/tail, equivalences to relations with
nodes of role member. Passage and collection infons of a file read are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bioc
from bioc import biocxml
from bioc.biocxml.encoder import encode_document
from lxml import etree

from noteloop.core.errors import ImportFileError, InvalidDocumentError, LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    raise_if_errors,
    read_text_file,
)
from noteloop.core.formats.pubtator import (
    BUILD_ERRORS,
    CID,
    DEFAULT_CID_RULE,
    NO_CONCEPT,
    Pair,
    attach_cid,
    check_cid_rule,
    fresh_ids,
    pair_id_problem,
)
from noteloop.core.schema import (
    Document,
    Equivalence,
    Relation,
    Span,
    SpanSource,
    check_label,
)

_CONCEPT_KEYS = ("MESH", "identifier", "concept")
_NOTE = re.compile(r"note(?::([0-9]+))?")
_UINT = re.compile(r"\s*[0-9]+\s*")
# Characters XML 1.0 can hold at all, even as a character reference.
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UTF8_NAMES = {"utf-8", "utf8", "us-ascii", "ascii"}

# --------------------------------------------------------------------------- XML checks


def _parse_xml(xml: str, name: str) -> Any:
    """The lxml root, with the line of the first syntax error if there is one."""
    # No entity resolution, no network, no DTD loading: a file must not reach elsewhere.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(xml.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise ImportFileError.single(
            name, exc.lineno or 0, f"not well-formed XML: {exc.msg}"
        ) from None
    problem = _prolog_problem(root)
    if problem:
        raise ImportFileError.single(name, problem[0], problem[1])
    return root


def _prolog_problem(root: Any) -> tuple[int, str] | None:
    info = root.getroottree().docinfo
    dtd = info.internalDTD
    if dtd is not None and list(dtd.iterentities()):
        return 1, "entity declarations (<!ENTITY ...>) are not accepted in BioC files"
    if info.encoding and info.encoding.lower() not in _UTF8_NAMES:
        return 1, f"the XML declaration says encoding {info.encoding!r}; save the file as UTF-8"
    if root.tag != "collection":
        return root.sourceline or 0, f"root element is <{root.tag}>, expected <collection>"
    return None


def _element_problem(el: Any) -> str | None:
    """What ``bioc`` would choke on in this element, said so that a person can fix it."""
    tag = el.tag
    if tag == "document" and not (el.findtext("id") or "").strip():
        return "<document> has no <id>"
    if tag in ("passage", "sentence") and not _UINT.fullmatch(el.findtext("offset") or ""):
        return f"<{tag}> needs an <offset> holding a non-negative integer"
    if tag == "annotation" and not el.get("id"):
        return "<annotation> has no id attribute"
    if tag == "location" and not all(
        _UINT.fullmatch(el.get(a) or "") for a in ("offset", "length")
    ):
        return "<location> needs offset and length attributes holding non-negative integers"
    if tag == "node" and (el.get("refid") is None or el.get("role") is None):
        return "<node> needs refid and role attributes"
    if tag == "infon" and el.get("key") is None:
        return "<infon> has no key attribute"
    return None


def _structure_errors(root: Any, name: str) -> list[LineError]:
    tags = ("document", "passage", "sentence", "annotation", "location", "node", "infon")
    return [
        LineError(name, el.sourceline or 0, problem)
        for el in root.iter(*tags)
        if (problem := _element_problem(el))
    ]


def _line_map(bdoc: Any, el: Any) -> dict[int, int]:
    """``id(bioc object) -> line``, walking lxml in the order ``bioc``'s decoder does."""
    groups = [(bdoc.passages, el.findall("passage"))]
    containers = [(bdoc, el)]
    for passage, pel in zip(bdoc.passages, el.findall("passage"), strict=True):
        containers.append((passage, pel))
        groups.append((passage.sentences, pel.findall("sentence")))
        containers += zip(passage.sentences, pel.findall("sentence"), strict=True)
    for obj, oel in containers:
        groups += [(obj.annotations, oel.findall("annotation"))]
        groups += [(obj.relations, oel.findall("relation"))]
    lines = {id(bdoc): el.sourceline or 0}
    for objs, els in groups:
        lines.update((id(o), e.sourceline or 0) for o, e in zip(objs, els, strict=True))
    return lines


# --------------------------------------------------------------------------- reading


@dataclass
class _Where:
    """Reports a problem at the line of the BioC object it concerns."""

    name: str
    lines: dict[int, int]
    errors: list[LineError]

    def line(self, obj: Any) -> int:
        return self.lines.get(id(obj), 0)

    def report(self, obj: Any, reason: str) -> None:
        self.errors.append(LineError(self.name, self.line(obj), reason))


def _infons(obj: Any) -> dict[str, str]:
    # An empty <infon/> reads as None; noteloop keeps strings.
    return {k: v or "" for k, v in obj.infons.items()}


def _containers(bdoc: Any) -> Iterator[Any]:
    for passage in bdoc.passages:
        yield passage
        yield from passage.sentences
    yield bdoc


def _pieces(passage: Any) -> list[tuple[Any, str]]:
    """A passage's text, or its sentences' texts when it has none (BioC allows either)."""
    if passage.text or not passage.sentences:
        return [(passage, passage.text or "")]
    return [(s, s.text or "") for s in passage.sentences]


def _text(bdoc: Any, where: _Where) -> tuple[str, list[int]]:
    """The document text and the offsets where passages and sentences start."""
    parts: list[str] = []
    end = 0
    for passage in bdoc.passages:
        for obj, piece in _pieces(passage):
            if obj.offset < end:
                where.report(obj, _overlap_reason(obj.offset, end))
                continue
            parts.append(" " * (obj.offset - end) + piece)
            end = obj.offset + len(piece)
    starts = [p.offset for p in bdoc.passages] + [
        s.offset for p in bdoc.passages for s in p.sentences
    ]
    return "".join(parts), starts


def _overlap_reason(offset: int, end: int) -> str:
    return (
        f"text at offset {offset} starts before the text before it ends (at {end}): "
        "passages and sentences must come in offset order without overlap"
    )


def _fragments(ann: Any, text: str, where: _Where) -> tuple[tuple[int, int], ...] | None:
    if not ann.locations:
        where.report(ann, f"annotation {ann.id} has no <location>")
        return None
    frags = tuple(sorted((loc.offset, loc.offset + loc.length) for loc in ann.locations))
    for a, b in frags:
        if b <= a or b > len(text):
            reason = f"location {a}-{b} is empty or beyond the document text (length {len(text)})"
            where.report(ann, f"annotation {ann.id}: {reason}")
            return None
    return frags


def _notes(infons: dict[str, str]) -> tuple[str, ...]:
    found = [(int(m.group(1) or 0), v) for k, v in infons.items() if (m := _NOTE.fullmatch(k))]
    return tuple(v for _, v in sorted(found))


def _span_fields(infons: dict[str, str]) -> tuple[str, str, list[tuple[str, str]]]:
    """Label, concept and attributes of an annotation's infons (notes are read apart)."""
    label_key = "type" if infons.get("type") else "label"
    concept_key = next((k for k in _CONCEPT_KEYS if k in infons), "")
    concept = infons.get(concept_key, "")
    attributes = [
        (k.removeprefix("attr:"), v)
        for k, v in infons.items()
        if k not in (label_key, concept_key) and not _NOTE.fullmatch(k)
    ]
    return infons.get(label_key, ""), "" if concept == NO_CONCEPT else concept, attributes


def _text_problem(ann: Any, span: Span, text: str) -> str | None:
    if ann.text is None:
        return None
    pieces = [text[a:b] for a, b in span.fragments]
    if ann.text in (" ".join(pieces), "".join(pieces)):
        return None
    return (
        f"annotation {ann.id} text {ann.text!r} does not match the document text at "
        f"{list(span.fragments)}: {span.text_in(text)!r}"
    )


def _build_span(ann: Any, frags: tuple[tuple[int, int], ...], infons: dict[str, str]) -> Span:
    label, concept, attributes = _span_fields(infons)
    for name, _ in attributes:
        check_label("attribute", name)  # the schema would refuse it later, without a line
    start, end = frags[0][0], frags[-1][1]
    notes = _notes(infons)
    return Span(
        ann.id,
        label,
        start,
        end,
        frags,
        tuple(attributes),
        notes,
        concept,
        source=SpanSource.IMPORTED,
    )


def _span(ann: Any, text: str, where: _Where) -> Span | None:
    """The annotation as a span, or None after reporting why it cannot be one."""
    infons = _infons(ann)
    if not _span_fields(infons)[0]:
        where.report(ann, f"annotation {ann.id} has no infon type")
        return None
    frags = _fragments(ann, text, where)
    if frags is None:
        return None
    try:
        span = _build_span(ann, frags, infons)
    except BUILD_ERRORS as exc:
        where.report(ann, f"annotation {ann.id}: {exc}")
        return None
    problem = _text_problem(ann, span, text)
    if problem:
        where.report(ann, problem)
        return None
    return span


def _spans(bdoc: Any, text: str, where: _Where) -> tuple[list[Span], dict[str, int]]:
    spans: list[Span] = []
    lines: dict[str, int] = {}
    for ann in (a for c in _containers(bdoc) for a in c.annotations):
        if ann.id in lines:
            where.report(ann, f"duplicate annotation id {ann.id} in document {bdoc.id}")
            continue
        span = _span(ann, text, where)
        lines[ann.id] = where.line(ann)
        if span is not None:
            spans.append(span)
    return spans, {s.id: lines[s.id] for s in spans}


@dataclass
class _Links:
    """What a document's relations become, and the line of each relation id."""

    relations: list[Relation] = field(default_factory=list)
    equivalences: list[Equivalence] = field(default_factory=list)
    cids: dict[Pair, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def _is_equivalence(infons: dict[str, str]) -> bool:
    return infons.get("equivalence", "").strip().lower() == "true"


def _head_tail(nodes: list[Any]) -> tuple[str, str]:
    by_role = {n.role.lower(): n.refid for n in nodes}
    for head, tail in (("head", "tail"), ("arg1", "arg2")):
        if head in by_role and tail in by_role:
            return by_role[head], by_role[tail]
    return nodes[0].refid, nodes[1].refid


def _node_problem(rel: Any, rid: str, label: str, known: set[str]) -> str | None:
    if not label:
        return f"relation {rid} has no infon type"
    missing = [n.refid for n in rel.nodes if n.refid not in known]
    if missing:
        return f"relation {rid} names {missing}, which are not annotations of this document"
    if not _is_equivalence(_infons(rel)) and len(rel.nodes) != 2:
        return (
            f"relation {rid} has {len(rel.nodes)} nodes: a relation links two annotations "
            "(mark a group of annotations with infon equivalence=true)"
        )
    return None


def _cid(rel: Any, infons: dict[str, str], where: _Where, links: _Links) -> None:
    chem, dis = infons.get("Chemical", ""), infons.get("Disease", "")
    if (infons.get("relation") or infons.get("type") or CID) != CID or not chem or not dis:
        where.report(
            rel,
            f"relation {rel.id} has no nodes: only BC5CDR's document-level CID relations "
            "(infons relation=CID, Chemical, Disease) may omit them",
        )
        return
    problem = pair_id_problem(chem) or pair_id_problem(dis)
    if problem:
        where.report(rel, problem)
        return
    links.cids.setdefault((chem, dis), where.line(rel))


def _relation(rel: Any, rid: str, known: set[str], where: _Where, links: _Links) -> None:
    infons = _infons(rel)
    if not rel.nodes:
        _cid(rel, infons, where, links)
        return
    label = infons.get("type") or infons.get("relation") or infons.get("label", "")
    problem = _node_problem(rel, rid, label, known)
    if problem:
        where.report(rel, problem)
        return
    try:
        if _is_equivalence(infons):
            links.equivalences.append(Equivalence(label, tuple(n.refid for n in rel.nodes)))
        else:
            head, tail = _head_tail(rel.nodes)
            links.relations.append(Relation(rid, label, head, tail, _notes(infons)))
            links.lines[rid] = where.line(rel)
    except BUILD_ERRORS as exc:
        where.report(rel, f"relation {rid}: {exc}")


def _relations(bdoc: Any, known: set[str], where: _Where) -> _Links:
    links = _Links()
    rels = [r for c in _containers(bdoc) for r in c.relations]
    # A relation without an id gets a fresh one; ids share one namespace with annotations.
    new_ids = fresh_ids(known | {r.id for r in rels}, "R")
    taken = set(known)
    for rel in rels:
        rid = rel.id or next(new_ids)
        if rid in taken:
            where.report(rel, f"relation id {rid} is already used in document {bdoc.id}")
            continue
        taken.add(rid)
        _relation(rel, rid, known, where, links)
    return links


def _metadata(bdoc: Any) -> dict[str, str]:
    metadata = _infons(bdoc)
    first = bdoc.passages[0] if bdoc.passages else None
    # BC5CDR's title passage: keep where it ends, so the document can be written as PubTator.
    if first is not None and first.offset == 0 and first.infons.get("type") == "title":
        metadata.setdefault("title_length", str(len(first.text)))
    return metadata


def _document(bdoc: Any, el: Any, name: str, rule: str, errors: list[LineError]) -> Parsed | None:
    where = _Where(name, _line_map(bdoc, el), errors)
    before = len(errors)
    text, starts = _text(bdoc, where)
    spans, span_lines = _spans(bdoc, text, where)
    links = _relations(bdoc, {a.id for c in _containers(bdoc) for a in c.annotations}, where)
    if len(errors) > before:
        return None
    try:
        doc = Document(
            bdoc.id,
            text,
            tuple(spans),
            tuple(links.relations),
            tuple(links.equivalences),
            _metadata(bdoc),
        )
    except BUILD_ERRORS as exc:
        where.report(bdoc, str(exc))
        return None
    doc, cid_lines = attach_cid(doc, links.cids, rule=rule, starts=starts)
    return Parsed(doc, name, where.line(bdoc), {**span_lines, **links.lines, **cid_lines})


def _duplicate_ids(documents: list[Any], elements: list[Any], name: str) -> list[LineError]:
    first: dict[str, int] = {}
    errors: list[LineError] = []
    for bdoc, el in zip(documents, elements, strict=True):
        line = el.sourceline or 0
        if bdoc.id in first:
            reason = f"duplicate document id {bdoc.id}: also starts at line {first[bdoc.id]}"
            errors.append(LineError(name, line, reason))
        first.setdefault(bdoc.id, line)
    return errors


def read_bioc(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, cid_rule: str = DEFAULT_CID_RULE
) -> list[Parsed]:
    """Read a BioC XML collection: one :class:`Parsed` per ``<document>``.

    Raises:
        ValueError: ``cid_rule`` is not one of the CID rules.
        ImportFileError: the file cannot be read, is not well-formed XML (with the line the
            parser reports), or has bad elements; it lists every one.
    """
    check_cid_rule(cid_rule)
    name = str(path)
    xml = read_text_file(Path(path), max_bytes=max_bytes, strip_bom=True)
    root = _parse_xml(xml, name)
    # bioc's decoder would stop at the first bad element with a bare KeyError: check first.
    raise_if_errors(_structure_errors(root, name))
    documents = biocxml.loads(xml).documents
    elements = root.findall("document")
    errors = _duplicate_ids(documents, elements, name)
    parsed = [
        p
        for bdoc, el in zip(documents, elements, strict=True)
        if (p := _document(bdoc, el, name, cid_rule, errors))
    ]
    raise_if_errors(sorted(errors, key=lambda e: e.line))
    return parsed


# --------------------------------------------------------------------------- writing


def _strings(doc: Document) -> Iterator[tuple[str, str]]:
    """Every string of ``doc`` that goes into the XML, with what it is."""
    yield "text", doc.text
    yield "id", doc.id
    for key, value in doc.metadata.items():
        yield f"metadata {key!r}", key + value
    for s in doc.spans:
        values = [s.id, s.label, s.concept, *s.notes, *(x for kv in s.attributes for x in kv)]
        yield f"span {s.id}", "".join(values)
    for r in doc.relations:
        yield f"relation {r.id}", "".join([r.id, r.label, *r.notes])
    for e in doc.equivalences:
        yield f"equivalence {e.label}", e.label


def check_xml_safe(doc: Document) -> None:
    """Refuse characters XML 1.0 cannot hold at all (most C0 controls, U+FFFE, U+FFFF).

    Raises:
        InvalidDocumentError: naming the document, the field and the character.
    """
    for what, value in _strings(doc):
        m = _XML_UNSAFE.search(value)
        if m:
            at = f" at offset {m.start()}" if what == "text" else ""
            raise InvalidDocumentError(
                f"document {doc.id!r}: {what} holds U+{ord(m.group()):04X}{at}, which XML 1.0 "
                "cannot hold; remove it before writing BioC"
            )


def _note_infons(notes: Iterable[str]) -> dict[str, str]:
    return {("note" if i == 0 else f"note:{i}"): note for i, note in enumerate(notes)}


def _annotation(span: Span, text: str) -> Any:
    ann = bioc.BioCAnnotation()
    ann.id, ann.text = span.id, span.text_in(text)
    ann.infons = {
        "type": span.label,
        **({"identifier": span.concept} if span.concept else {}),
        **{f"attr:{name}": value for name, value in span.attributes},
        **_note_infons(span.notes),
    }
    for a, b in span.fragments:
        ann.add_location(bioc.BioCLocation(a, b - a))
    return ann


def _relation_out(rid: str, infons: dict[str, str], nodes: Iterable[tuple[str, str]]) -> Any:
    rel = bioc.BioCRelation()
    rel.id, rel.infons = rid, infons
    for refid, role in nodes:
        rel.add_node(bioc.BioCNode(refid, role))
    return rel


def _bioc_document(doc: Document) -> Any:
    bdoc = bioc.BioCDocument()
    bdoc.id, bdoc.infons = doc.id, dict(doc.metadata)
    passage = bioc.BioCPassage()
    passage.offset, passage.text = 0, doc.text
    for span in doc.spans:
        passage.add_annotation(_annotation(span, doc.text))
    bdoc.add_passage(passage)
    for r in doc.relations:
        infons = {"type": r.label, **_note_infons(r.notes)}
        bdoc.add_relation(_relation_out(r.id, infons, [(r.head, "head"), (r.tail, "tail")]))
    eq_ids = fresh_ids([s.id for s in doc.spans] + [r.id for r in doc.relations], "E")
    for eq in doc.equivalences:
        infons = {"type": eq.label, "equivalence": "true"}
        bdoc.add_relation(_relation_out(next(eq_ids), infons, [(m, "member") for m in eq.members]))
    return bdoc


def write_bioc(docs: Documents, path: str | Path) -> None:
    """Write ``docs`` as a BioC XML collection, the lossless inverse of :func:`read_bioc`.

    ``docs`` is read twice: every document is checked first, then written one at a time
    (a collection of 10,000 notes built whole would take gigabytes).

    Raises:
        InvalidDocumentError: a document holds a character XML 1.0 cannot carry; nothing
            is written then.
    """
    for doc in docs:
        check_xml_safe(doc)
    collection = bioc.BioCCollection()
    collection.source, collection.date, collection.key = "noteloop", "", ""
    head, _, tail = biocxml.dumps(collection).rpartition("</collection>")
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        out.write(head)
        for doc in docs:
            element = encode_document(_bioc_document(doc))
            etree.indent(element, space="  ", level=1)
            xml = etree.tostring(element, encoding="unicode")
            # A raw \r would read back as \n (XML normalises line ends), so it must travel
            # as &#13;. lxml already writes it so; replacing any left keeps that true
            # whatever lxml does.
            out.write(f"  {xml.replace(chr(13), '&#13;')}\n")
        out.write(f"</collection>{tail}")
