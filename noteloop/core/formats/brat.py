"""BRAT standoff: ``<id>.txt`` (the note) beside ``<id>.ann`` (its annotations).

The ``.txt`` is read as UTF-8 exactly as stored (``newline=''``): offsets in the ``.ann``
count characters, every ``\\r`` included. A ``.txt`` without an ``.ann`` is a document
without annotations. The document id is the file name without extension.

``.ann`` lines (``<TAB>`` is a tab; blank lines are ignored):

``T1<TAB>Label 0 5<TAB>text``
    A span. Discontinuous spans list their fragments: ``T5<TAB>Label 0 5;9 12<TAB>text``.
    The text column must equal the covered text, fragments joined by one space (tabs and
    line breaks count as spaces, since a line cannot hold them). A further tab-separated
    field after a matching text column is ignored.
``E1<TAB>Type:T4 Role:T7 Role2:E2``
    An event. It becomes its trigger span ``T4``: every reference to ``E1`` anywhere in the
    file means ``T4``. Each argument becomes a relation from the trigger to the argument,
    labelled with the role name less trailing digits (``Role2`` -> ``Role``).
``R1<TAB>Label Arg1:T1 Arg2:T2``
    A relation from head ``Arg1`` to tail ``Arg2`` (other role names: first is head).
``*<TAB>Label T1 T2 ...``
    An equivalence group (BRAT's symmetric-transitive relation, e.g. ``OVERLAP``).
``A1<TAB>Name T1`` / ``A2<TAB>Name T1 Value`` (also ``M`` lines)
    A span attribute: a flag (stored as value ``"true"``) or a named value.
``N1<TAB>Reference T1 db:id<TAB>name``
    Normalisation: the span's concept becomes ``db:id`` (the name is not kept).
``#1<TAB>AnnotatorNotes T1<TAB>text``
    A note appended to a span's (or a relation's) notes.

Reading collects every bad line (unknown line type, malformed fields, offsets that are not
integers, beyond the text or empty, duplicate ids, references to unknown ids, a text column
that disagrees with the offsets) and refuses the file once with all of them.

Writing produces ``<id>.txt`` (byte-identical), ``<id>.ann`` with ``T``, ``R``, ``*``,
``A``, ``N`` and ``#`` lines (no events: they were resolved to their triggers), and
``annotation.conf`` for the schema extended with every label the documents use, so BRAT
can open the export. Span ids of the form ``T<n>`` (relations ``R<n>``) are kept; other ids
are renumbered. Tabs and line breaks inside notes become spaces.

``annotation.conf`` is read back by :func:`read_annotation_conf`, which also takes real BRAT
configurations: ``#`` comments, ``!`` grouping types (skipped: they cannot be annotated),
indented hierarchies (flattened), ``<MACRO>=A|B`` definitions, events (entity types here),
and ``<ENTITY>``/``<EVENT>``/``<ANY>`` arguments meaning "any entity type".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import pairwise
from pathlib import Path

from noteloop.core.errors import (
    ImportFileError,
    InvalidDocumentError,
    InvalidRelationError,
    InvalidSpanError,
    LineError,
    SchemaError,
)
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    raise_if_errors,
    read_text_file,
)
from noteloop.core.formats.plaintext import check_file_id, write_exact
from noteloop.core.schema import (
    AttributeType,
    Document,
    EntityType,
    Equivalence,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    SpanSource,
    check_label,
)

__all__ = [
    "ann_lines",
    "annotation_conf",
    "brat_units",
    "read_annotation_conf",
    "read_brat",
    "write_brat",
]

_OFFSET = re.compile(r"[0-9]+")
_ROLE_DIGITS = re.compile(r"[0-9]+$")
# Any error a dataclass of the vocabulary raises is a line's fault when read from a file.
_LINE_FAULTS = (InvalidSpanError, InvalidRelationError, SchemaError)


class _Bad(Exception):
    """One line's problem; caught per line and collected, never leaves this module."""


# --------------------------------------------------------------------------- units


def brat_units(path: Path) -> list[Path]:
    """The ``.txt`` files to import: a folder's annotated notes, or one note's pair.

    Raises:
        ImportFileError: the path is missing or of another kind, an ``.ann`` has no
            ``.txt`` (every one is named), or a folder holds no ``.txt``/``.ann`` pair.
    """
    name = str(path)
    if not path.exists():
        raise ImportFileError.single(name, 0, "no such file or folder")
    if path.is_dir():
        return _folder_units(path)
    if path.suffix not in (".txt", ".ann"):
        raise ImportFileError.single(name, 0, "expected a .txt or .ann file, or a folder")
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        raise ImportFileError.single(name, 0, f"no {txt.name} beside this .ann file")
    return [txt]


def _folder_units(folder: Path) -> list[Path]:
    orphans = [a for a in sorted(folder.glob("*.ann")) if not a.with_suffix(".txt").is_file()]
    if orphans:
        raise ImportFileError(
            [LineError(str(a), 0, f"no {a.with_suffix('.txt').name} beside it") for a in orphans]
        )
    units = sorted(t for t in folder.glob("*.txt") if t.with_suffix(".ann").is_file())
    if not units:
        raise ImportFileError.single(str(folder), 0, "folder holds no .txt/.ann pairs")
    return units


# --------------------------------------------------------------------------- reading


def read_brat(
    txt_path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    repair: bool = False,
    notes: list[LineError] | None = None,
) -> list[Parsed]:
    """One document from ``txt_path`` and the ``.ann`` beside it (if any); none, with a
    note, for an empty text (there is nothing to annotate in it).

    ``repair``: a span whose text column differs from what its offsets cover only in
    whitespace or line ends (``prostate cancer`` against ``prostate cancer\\r``) keeps its
    offsets, with a ``repaired`` note, instead of refusing the file. ``notes`` collects
    what was repaired or skipped.

    Raises:
        ImportFileError: with every bad ``.ann`` line, or the ``.txt`` problem.
    """
    notes = [] if notes is None else notes
    text = read_text_file(txt_path, max_bytes=max_bytes, allow_empty=True)
    if not text.strip():
        notes.append(LineError(str(txt_path), 0, "skipped: the text is empty"))
        return []
    ann_path = txt_path.with_suffix(".ann")
    reader = _AnnReader(text, str(ann_path), notes if repair else None)
    if ann_path.exists():
        ann = read_text_file(ann_path, max_bytes=max_bytes, allow_empty=True, strip_bom=True)
        reader.read(ann)
    relations = reader.relations()  # resolving references may still find bad lines
    raise_if_errors(reader.errors)
    doc = Document(
        txt_path.stem, text, tuple(reader.spans()), tuple(relations), tuple(reader.equivalences)
    )
    return [Parsed(doc, str(ann_path), 0, reader.item_lines())]


@dataclass
class _RelDraft:
    label: str
    head: str  # as written: a T or E id
    tail: str
    line: int


@dataclass
class _Extras:
    """What A, N and # lines add to one span or relation."""

    attributes: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    concept: str = ""


class _AnnReader:
    """Reads one ``.ann`` in two passes: lines first, then references between them.

    References may point forward (an ``R`` line before the ``T`` it names), so the second
    pass resolves them only once every id of the file is known.
    """

    def __init__(self, text: str, path: str, repairs: list[LineError] | None = None) -> None:
        self.text, self.path = text, path
        self.repairs = repairs  # None: refuse what a repair would mend
        self.errors: list[LineError] = []
        self.ids: dict[str, int] = {}  # every id of the file -> its line
        self.base_spans: dict[str, Span] = {}
        self.triggers: dict[str, tuple[str, int]] = {}  # E id -> (trigger as written, line)
        self.rel_drafts: dict[str, _RelDraft] = {}
        self.extras: dict[str, _Extras] = {}
        self.equivalences: list[Equivalence] = []
        self.pending: list[tuple[int, Callable[[], None]]] = []

    def read(self, ann: str) -> None:
        for no, raw in enumerate(ann.split("\n"), start=1):
            line = raw.removesuffix("\r")
            if line.strip():
                self._attempt(no, partial(self._line, no, line))
        self._check_triggers()
        for no, action in self.pending:
            self._attempt(no, action)

    def _attempt(self, no: int, action: Callable[[], None]) -> None:
        try:
            action()
        except (_Bad, *_LINE_FAULTS) as exc:
            self.errors.append(LineError(self.path, no, str(exc)))

    def _line(self, no: int, line: str) -> None:
        fields = line.split("\t", 2)
        ident = fields[0]
        handler = _HANDLERS.get(ident[:1])
        if handler is None:
            raise _Bad(
                f"unknown line type {ident[:12]!r}: expected an id starting with "
                "T, E, R, A, M, N, # or a '*' line"
            )
        if len(fields) < 2 or not fields[1].strip():
            raise _Bad(f"{ident}: expected a tab after the id and then the annotation")
        if ident != "*":
            self._claim(ident, no)
        handler(self, no, fields)

    def _claim(self, ident: str, no: int) -> None:
        if ident in self.ids:
            raise _Bad(f"duplicate id {ident} (first on line {self.ids[ident]})")
        self.ids[ident] = no

    # ---- first pass: one method per line type

    def _text_bound(self, no: int, fields: list[str]) -> None:
        ident = fields[0]
        label, frags, listed = _label_and_fragments(fields[1])
        span = Span(ident, label, frags[0][0], frags[-1][1], frags, source=SpanSource.IMPORTED)
        if span.end > len(self.text):
            raise _Bad(
                f"{ident}: offsets end at {span.end}, beyond the text ({len(self.text)} characters)"
            )
        as_listed = " ".join(self.text[a:b] for a, b in listed)
        shown = fields[2] if len(fields) > 2 else ""
        covered = (span.text_in(self.text), as_listed)
        try:
            _check_shown_text(ident, shown, covered)
        except _Bad:
            if self.repairs is None or shown.split() != covered[0].split():
                raise
            self.repairs.append(LineError(
                self.path, no, f"repaired: {ident}: text {shown!r} differs from the "
                f"{covered[0]!r} its offsets cover only in whitespace; the offsets are kept",
            ))
        self.base_spans[ident] = span

    def _event(self, no: int, fields: list[str]) -> None:
        ident, parts = fields[0], fields[1].split()
        _, trigger = _role_ref(parts[0])
        self.triggers[ident] = (trigger, no)
        for part in parts[1:]:
            role, ref = _role_ref(part)
            rel_id = f"{ident}-{role}"
            self._claim(rel_id, no)
            label = _ROLE_DIGITS.sub("", role) or role
            self.rel_drafts[rel_id] = _RelDraft(label, ident, ref, no)

    def _relation(self, no: int, fields: list[str]) -> None:
        parts = fields[1].split()
        if len(parts) != 3:
            raise _Bad(f"{fields[0]}: expected 'Label Arg1:ID Arg2:ID', got {fields[1]!r}")
        args = [_role_ref(p) for p in parts[1:]]
        roles = dict(args)
        if set(roles) == {"Arg1", "Arg2"}:
            args = [("Arg1", roles["Arg1"]), ("Arg2", roles["Arg2"])]
        self.rel_drafts[fields[0]] = _RelDraft(parts[0], args[0][1], args[1][1], no)

    def _equivalence(self, no: int, fields: list[str]) -> None:
        parts = fields[1].split()
        if len(parts) < 3:
            raise _Bad(f"expected '*<TAB>Label ID ID ...' with two ids or more, got {fields[1]!r}")
        check_label("equivalence type", parts[0])
        self.pending.append((no, lambda: self._add_equivalence(parts[0], parts[1:])))

    def _attribute(self, no: int, fields: list[str]) -> None:
        parts = fields[1].split()
        if len(parts) not in (2, 3):
            raise _Bad(f"{fields[0]}: expected 'Name ID' or 'Name ID Value', got {fields[1]!r}")
        name, target = parts[0], parts[1]
        value = parts[2] if len(parts) == 3 else "true"
        self.pending.append((no, lambda: self._add_attribute(target, name, value)))

    def _normalization(self, no: int, fields: list[str]) -> None:
        parts = fields[1].split()
        if len(parts) != 3:
            raise _Bad(f"{fields[0]}: expected 'Reference ID db:id', got {fields[1]!r}")
        self.pending.append((no, lambda: self._add_concept(parts[1], parts[2])))

    def _note(self, no: int, fields: list[str]) -> None:
        parts = fields[1].split()
        if len(parts) != 2:
            raise _Bad(f"{fields[0]}: expected 'AnnotatorNotes ID<TAB>text', got {fields[1]!r}")
        note = fields[2] if len(fields) > 2 else ""
        self.pending.append((no, lambda: self._add_note(parts[1], note)))

    # ---- second pass: references

    def _check_triggers(self) -> None:
        for ident, (trigger, no) in self.triggers.items():
            if trigger not in self.base_spans:
                why = (f"was refused on line {self.ids[trigger]} (see there)"
                       if trigger[:1] == "T" and trigger in self.ids
                       else "is not a T id of this file")
                self.errors.append(LineError(self.path, no, f"{ident}: trigger {trigger} {why}"))

    def _span_id(self, ref: str) -> str:
        """The span a reference means: a T id itself, an E id its trigger."""
        resolved = self.triggers.get(ref, (ref, 0))[0]
        if resolved in self.base_spans:
            return resolved
        if ref in self.triggers:
            raise _Bad(f"event {ref} has no valid trigger ({resolved})")
        if resolved[:1] == "T" and resolved in self.ids:  # refused on its own line: say so
            raise _Bad(f"{ref} was refused on line {self.ids[resolved]} (see there)")
        raise _Bad(f"{ref} is not a T or E id of this file")

    def _add_equivalence(self, label: str, members: list[str]) -> None:
        self.equivalences.append(Equivalence(label, tuple(self._span_id(m) for m in members)))

    def _add_attribute(self, target: str, name: str, value: str) -> None:
        if target in self.rel_drafts:
            raise _Bad(f"attribute {name} on relation {target}: only spans carry attributes")
        check_label("attribute", name)
        self.extras.setdefault(self._span_id(target), _Extras()).attributes.append((name, value))

    def _add_concept(self, target: str, concept: str) -> None:
        extras = self.extras.setdefault(self._span_id(target), _Extras())
        if extras.concept:
            raise _Bad(f"{target} already has concept {extras.concept} (one per span)")
        extras.concept = concept

    def _add_note(self, target: str, note: str) -> None:
        key = target if target in self.rel_drafts else self._span_id(target)
        self.extras.setdefault(key, _Extras()).notes.append(note)

    # ---- results

    def spans(self) -> list[Span]:
        out = []
        for ident, span in self.base_spans.items():
            extra = self.extras.get(ident, _Extras())
            out.append(
                replace(
                    span,
                    attributes=tuple(extra.attributes),
                    notes=tuple(extra.notes),
                    concept=extra.concept,
                )
            )
        return out

    def relations(self) -> list[Relation]:
        out = []
        for ident, draft in self.rel_drafts.items():
            notes = tuple(self.extras.get(ident, _Extras()).notes)
            rel = self._relation_of(ident, draft, notes)
            if rel is not None:
                out.append(rel)
        return out

    def _relation_of(self, ident: str, d: _RelDraft, notes: tuple[str, ...]) -> Relation | None:
        try:
            return Relation(ident, d.label, self._span_id(d.head), self._span_id(d.tail), notes)
        except (_Bad, *_LINE_FAULTS) as exc:
            self.errors.append(LineError(self.path, d.line, f"{ident}: {exc}"))
            return None

    def item_lines(self) -> dict[str, int]:
        keep = self.base_spans.keys() | self.rel_drafts.keys()
        return {ident: no for ident, no in self.ids.items() if ident in keep}


_HANDLERS: Mapping[str, Callable[[_AnnReader, int, list[str]], None]] = {
    "T": _AnnReader._text_bound,
    "E": _AnnReader._event,
    "R": _AnnReader._relation,
    "*": _AnnReader._equivalence,
    "A": _AnnReader._attribute,
    "M": _AnnReader._attribute,
    "N": _AnnReader._normalization,
    "#": _AnnReader._note,
}


def _label_and_fragments(
    body: str,
) -> tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """``'Label 9 12;0 5'`` -> ``('Label', ((0, 5), (9, 12)), ((9, 12), (0, 5)))``: the
    fragments in text order (as stored and as noteloop writes them) and as listed (some
    tools list them in another order, and write the shown text in that order); refuses
    anything else, overlapping fragments included."""
    label, _, offsets = body.strip().partition(" ")
    if not offsets:
        raise _Bad(f"expected 'Label start end', got {body!r}")
    listed: list[tuple[int, int]] = []
    for piece in offsets.split(";"):
        numbers = piece.split()
        if len(numbers) != 2 or not all(_OFFSET.fullmatch(n) for n in numbers):
            raise _Bad(f"offsets {piece.strip()!r} must be two non-negative integers 'start end'")
        start, end = int(numbers[0]), int(numbers[1])
        if start >= end:
            raise _Bad(f"offsets {piece.strip()!r}: start must be less than end")
        listed.append((start, end))
    ordered = sorted(listed)
    if any(b[0] < a[1] for a, b in pairwise(ordered)):
        raise _Bad(f"fragments {offsets!r} overlap")
    return label, tuple(ordered), tuple(listed)


def _check_shown_text(ident: str, shown: str, covered: Sequence[str]) -> None:
    """The text column against what the offsets cover (in text order, or as listed)."""
    # Some files carry a stray field after the text column (MACCROBAT 25661749 does).
    candidates = (shown, shown.split("\t")[0])
    if not any(_flat(c) == _flat(k) for c in candidates for k in covered):
        raise _Bad(
            f"{ident}: text {shown!r} does not match the offsets, which cover {covered[0]!r}"
        )


def _flat(text: str) -> str:
    """Text as an ``.ann`` line can hold it: tabs and line breaks become spaces."""
    return text.translate(_FLATTEN)


_FLATTEN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def _role_ref(token: str) -> tuple[str, str]:
    role, _, ref = token.partition(":")
    if not role or not ref:
        raise _Bad(f"argument {token!r} must look like Role:ID")
    return role, ref


# --------------------------------------------------------------------------- writing


def write_brat(
    docs: Documents, schema: LabelSchema, out_dir: Path, *, with_text: bool = True
) -> None:
    """Write ``<id>.txt`` + ``<id>.ann`` per document and ``annotation.conf`` to ``out_dir``.

    ``docs`` is read twice: first every document is checked (nothing is written if one
    cannot be), then the files are written, one document at a time.

    Args:
        with_text: False leaves out the ``.txt`` files and the span text in the ``.ann``
            (to share annotations without the notes).

    Raises:
        InvalidDocumentError: an id cannot be a file name, or an attribute or concept
            cannot be one BRAT field; nothing is written then.
    """
    equivalence_labels: set[str] = set()
    conf = annotation_conf(
        schema.extended_with(_checked(docs, with_text, equivalence_labels)), equivalence_labels
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        if with_text:
            write_exact(out_dir / f"{doc.id}.txt", doc.text)
        lines = ann_lines(doc, with_text=with_text)
        write_exact(out_dir / f"{doc.id}.ann", "".join(f"{line}\n" for line in lines))
    write_exact(out_dir / "annotation.conf", conf)


def _checked(
    docs: Iterable[Document], with_text: bool, equivalence_labels: set[str]
) -> Iterator[Document]:
    """``docs`` as they pass, each refused (raising) unless its id can name a file and BRAT
    can hold its lines; the labels of their equivalences are gathered on the way."""
    seen: set[str] = set()
    for doc in docs:
        check_file_id(doc.id, seen)
        ann_lines(doc, with_text=with_text)
        equivalence_labels.update(e.label for e in doc.equivalences)
        yield doc


def ann_lines(doc: Document, *, with_text: bool = True) -> list[str]:
    """The ``.ann`` lines of ``doc``: T, R, ``*``, A, N and ``#`` lines, in that order."""
    tid = _brat_ids([s.id for s in doc.spans], "T")
    rid = _brat_ids([r.id for r in doc.relations], "R")
    lines = [_t_line(tid[s.id], s, doc.text if with_text else "") for s in doc.spans]
    lines += [
        f"{rid[r.id]}\t{r.label} Arg1:{tid[r.head]} Arg2:{tid[r.tail]}" for r in doc.relations
    ]
    lines += [f"*\t{e.label} {' '.join(tid[m] for m in e.members)}" for e in doc.equivalences]
    lines += _attribute_lines(doc, tid)
    lines += [
        f"N{i}\tReference {tid[s.id]} {_field(doc, s, s.concept, 'concept')}\t{s.concept}"
        for i, s in enumerate((s for s in doc.spans if s.concept), start=1)
    ]
    notes = [(tid[s.id], s.notes) for s in doc.spans] + [
        (rid[r.id], r.notes) for r in doc.relations
    ]
    flat = [(ident, _flat(n)) for ident, ns in notes for n in ns]
    lines += [f"#{i}\tAnnotatorNotes {ident}\t{n}" for i, (ident, n) in enumerate(flat, start=1)]
    return lines


def _brat_ids(ids: Sequence[str], prefix: str) -> dict[str, str]:
    """Keep ids that are already BRAT ids of this kind; otherwise renumber all of them."""
    if all(re.fullmatch(rf"{prefix}[0-9]+", i) for i in ids):
        return {i: i for i in ids}
    return {old: f"{prefix}{n}" for n, old in enumerate(ids, start=1)}


def _t_line(ident: str, span: Span, text: str) -> str:
    offsets = ";".join(f"{a} {b}" for a, b in span.fragments)
    shown = _flat(span.text_in(text)) if text else ""
    return f"{ident}\t{span.label} {offsets}\t{shown}"


def _attribute_lines(doc: Document, tid: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for span in doc.spans:
        for name, value in span.attributes:
            _field(doc, span, name, "attribute name")
            # BRAT writes a flag as a bare name; "true" is how noteloop stores a flag.
            tail = "" if value == "true" else f" {_field(doc, span, value, 'attribute value')}"
            lines.append(f"A{len(lines) + 1}\t{name} {tid[span.id]}{tail}")
    return lines


def _field(doc: Document, span: Span, value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise InvalidDocumentError(
            f"document {doc.id}: span {span.id} {what} {value!r} must be non-empty without "
            "whitespace to fit in a BRAT line"
        )
    return value


# --------------------------------------------------------------------------- annotation.conf


def annotation_conf(schema: LabelSchema, equivalence_labels: Iterable[str] = ()) -> str:
    """``annotation.conf`` text for ``schema``; ``equivalence_labels`` are ``*`` line types."""
    equivalences = set(equivalence_labels)
    lines = ["[entities]", *schema.entity_names, "", "[relations]"]
    lines += [_relation_conf(rt, rt.name in equivalences) for rt in schema.relation_types]
    lines += ["", "[events]", "", "[attributes]"]
    lines += [_attribute_conf(at) for at in schema.attributes]
    return "".join(f"{line}\n" for line in lines)


def _relation_conf(rt: RelationType, equivalence: bool) -> str:
    heads = "|".join(rt.heads) or "<ENTITY>"
    tails = "|".join(rt.tails) or "<ENTITY>"
    line = f"{rt.name}\tArg1:{heads}, Arg2:{tails}"
    if equivalence:
        return f"{line}, <REL-TYPE>:symmetric-transitive"
    return f"{line}, <REL-TYPE>:symmetric" if rt.symmetric else line


def _attribute_conf(at: AttributeType) -> str:
    values = f", Value:{'|'.join(at.values)}" if at.values else ""
    return f"{at.name}\tArg:<ENTITY>{values}"


def read_annotation_conf(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LabelSchema:
    """The label schema an ``annotation.conf`` describes.

    Raises:
        ImportFileError: with every line that is not valid configuration.
    """
    text = read_text_file(path, max_bytes=max_bytes, strip_bom=True)
    conf = _ConfReader(str(path))
    for no, raw in enumerate(text.split("\n"), start=1):
        conf.feed(no, raw)
    conf.check_arguments()
    raise_if_errors(conf.errors)
    return LabelSchema(
        tuple(EntityType(n) for n in conf.entities),
        tuple(conf.relations.values()),
        tuple(conf.attributes.values()),
    )


_SECTIONS = ("entities", "relations", "events", "attributes")


class _ConfReader:
    """Reads ``annotation.conf`` line by line into entity, relation and attribute types."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[LineError] = []
        self.section = ""
        self.macros: dict[str, str] = {}
        self.entities: dict[str, int] = {}  # name -> line
        self.relations: dict[str, RelationType] = {}
        self.relation_lines: dict[str, int] = {}
        self.attributes: dict[str, AttributeType] = {}

    def feed(self, no: int, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return
        try:
            self._entry(line, no)
        except (_Bad, *_LINE_FAULTS) as exc:
            self.errors.append(LineError(self.path, no, str(exc)))

    def _entry(self, line: str, no: int) -> None:
        if line.startswith("[") and line.endswith("]"):
            self.section = line[1:-1].strip().lower()
            if self.section not in _SECTIONS:
                raise _Bad(f"unknown section {line}: expected one of {', '.join(_SECTIONS)}")
        elif re.fullmatch(r"<[^>]+>\s*=.*", line):
            name, _, value = line.partition("=")
            self.macros[name.strip()] = value.strip()
        elif not self.section:
            raise _Bad(f"{line!r} comes before any [section]")
        elif not line.startswith("!"):  # '!Type' groups others and cannot be annotated
            _CONF_HANDLERS[self.section](self, line, no)

    def _entity(self, line: str, no: int) -> None:
        name = line.split()[0]
        check_label("entity type", name)
        if name in self.entities:
            raise _Bad(f"entity type {name} is defined twice (first on line {self.entities[name]})")
        self.entities[name] = no

    def _relation(self, line: str, no: int) -> None:
        name, _, args = line.partition("\t") if "\t" in line else line.partition(" ")
        if name.startswith("<"):  # <OVERLAP> and similar settings are not relation types
            return
        heads, tails, symmetric = self._relation_args(args)
        new = RelationType(name.strip(), heads, tails, symmetric)
        old = self.relations.get(new.name)
        self.relations[new.name] = _merge_relation(old, new) if old else new
        self.relation_lines.setdefault(new.name, no)

    def _relation_args(self, args: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        types: list[tuple[str, ...]] = []
        symmetric = False
        for arg in (a.strip() for a in args.split(",") if a.strip()):
            role, _, value = arg.partition(":")
            if role.strip() == "<REL-TYPE>":
                symmetric = "symmetric" in value
            else:
                types.append(self._types(value))
        types += [()] * (2 - len(types))
        return types[0], types[1], symmetric

    def _types(self, value: str) -> tuple[str, ...]:
        """``'A|B'`` -> ``('A', 'B')``; any wildcard such as ``<ENTITY>`` means any: ``()``."""
        names = [n.strip() for n in self.macros.get(value.strip(), value).split("|")]
        return () if any(n.startswith("<") or not n for n in names) else tuple(names)

    def _attribute(self, line: str, no: int) -> None:
        name, _, args = line.partition("\t") if "\t" in line else line.partition(" ")
        values: tuple[str, ...] = ()
        for arg in args.split(","):
            role, _, value = arg.strip().partition(":")
            if role == "Value":
                values = tuple(v.strip() for v in value.split("|") if v.strip())
        self.attributes[name.strip()] = AttributeType(name.strip(), values)

    def check_arguments(self) -> None:
        """Relation arguments must name entity (or event) types the file defines."""
        for rt in self.relations.values():
            unknown = sorted(set(rt.heads + rt.tails) - self.entities.keys())
            if unknown:
                self.errors.append(
                    LineError(
                        self.path,
                        self.relation_lines[rt.name],
                        f"relation {rt.name} names unknown type(s): {', '.join(unknown)}",
                    )
                )


def _merge_relation(old: RelationType, new: RelationType) -> RelationType:
    """BRAT may list one relation type on several lines, one argument combination each."""

    def union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
        return () if not a or not b else tuple(dict.fromkeys(a + b))

    return replace(
        old,
        heads=union(old.heads, new.heads),
        tails=union(old.tails, new.tails),
        symmetric=old.symmetric or new.symmetric,
    )


_CONF_HANDLERS: Mapping[str, Callable[[_ConfReader, str, int], None]] = {
    "entities": _ConfReader._entity,
    "events": _ConfReader._entity,  # an event's trigger is a span of that type here
    "relations": _ConfReader._relation,
    "attributes": _ConfReader._attribute,
}
