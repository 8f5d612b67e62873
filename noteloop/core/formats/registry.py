"""The table of annotation formats by name: which reader or writer each name means.

Each reader format names how a path splits into files (each file is imported all or
nothing) and how one file becomes documents. The CLI and the Data page both go through
:data:`READERS` and :data:`WRITERS`, so the two can never disagree about a format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats import (
    bioc_xml,
    brat,
    conll,
    doccano,
    hf_parquet,
    instruct,
    jsonl,
    label_studio,
    plaintext,
    prodigy,
    pubtator,
    spacy_docbin,
    uima_xmi,
    webanno_tsv,
)
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Documents, Parsed
from noteloop.core.formats.peer_json import suffix_units
from noteloop.core.schema import Document, LabelSchema, Split

__all__ = [
    "READERS", "WRITERS", "CorpusRead", "Documents", "Parsed", "Reader", "Writer",
    "absent_ids", "read_corpus", "reader", "writer",
]


def _single_file(path: Path) -> list[Path]:
    if not path.exists():
        raise ImportFileError.single(str(path), 0, "no such file or folder")
    if path.is_dir():
        raise ImportFileError.single(str(path), 0, "is a folder; this format reads one file")
    return [path]


@dataclass(frozen=True)
class Reader:
    name: str
    units: Callable[[Path], list[Path]]
    read: Callable[..., list[Parsed]]
    annotated: bool  # False for formats that carry text only (txt, csv)
    repairs: bool = False  # its reader takes ``repair`` and ``notes``
    # One document at a time with each problem where it arises (a file of many notes
    # imports in bounded memory); None: the file is read whole.
    stream: Callable[..., Iterator[Parsed | LineError]] | None = None
    # The split each document's file gives it (a dataset's train and test files); None:
    # the format has no splits.
    splits: Callable[[Path], Mapping[str, Split]] | None = None

    def read_unit(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        repair: bool = False,
        notes: list[LineError] | None = None,
    ) -> list[Parsed]:
        """The documents of one file; ``repair`` and ``notes`` where the format has them
        (BRAT), ignored elsewhere (those formats have nothing a repair would mend)."""
        if self.repairs:
            return self.read(path, max_bytes=max_bytes, repair=repair, notes=notes)
        return self.read(path, max_bytes=max_bytes)


@dataclass(frozen=True)
class CorpusRead:
    """What a whole corpus gave: the documents of every file that read, every problem of
    every file that did not (the file refused whole), and the notes of what was repaired
    or skipped."""

    docs: list[Document]
    refused: list[LineError]
    refused_files: list[str]
    notes: list[LineError]

    def absent_ids(self) -> set[str]:
        """:func:`absent_ids` of this reading."""
        return absent_ids(self.refused, self.notes)


def absent_ids(refused: Iterable[LineError], notes: Iterable[LineError]) -> set[str]:
    """Ids of the documents that did not read, which a split file may still name: the
    stems of refused files and of skipped ones (a BRAT document is named after its files)."""
    skipped = [n for n in notes if n.reason.startswith("skipped")]
    return {Path(e.path).stem for e in [*refused, *skipped]}


def read_corpus(
    path: Path,
    fmt: str,
    *,
    repair: bool = False,
    strict: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> CorpusRead:
    """Every document of a corpus file or folder that reads; a bad file is left out and
    listed with all its problems, so one broken file does not cost the corpus.

    Raises:
        ImportFileError: the path holds nothing to read (no such path, no pairs), or,
            with ``strict``, any file was refused: every problem of every file at once.
    """
    fmt_reader = reader(fmt)
    docs: list[Document] = []
    refused: list[LineError] = []
    refused_files: list[str] = []
    notes: list[LineError] = []
    for unit in fmt_reader.units(path):
        try:
            parsed = fmt_reader.read_unit(unit, max_bytes, repair=repair, notes=notes)
        except ImportFileError as exc:
            refused.extend(exc.errors)
            refused_files.append(str(unit))
            continue
        docs.extend(p.doc for p in parsed)
    if strict and refused:
        raise ImportFileError(refused)
    return CorpusRead(docs, refused, refused_files, notes)


READERS: dict[str, Reader] = {
    "brat": Reader("brat", brat.brat_units, brat.read_brat, True, repairs=True),
    "jsonl": Reader("jsonl", _single_file, jsonl.read_jsonl, True, stream=jsonl.stream_jsonl),
    "pubtator": Reader("pubtator", _single_file, pubtator.read_pubtator, True),
    "bioc": Reader("bioc", _single_file, bioc_xml.read_bioc, True),
    "txt": Reader("txt", plaintext.txt_units, plaintext.read_txt, False),
    "csv": Reader("csv", _single_file, plaintext.read_csv, False),
    "spacy": Reader(
        "spacy", lambda path: suffix_units(path, ".spacy"), spacy_docbin.read_docbin, True
    ),
    "prodigy": Reader("prodigy", _single_file, prodigy.read_prodigy, True, repairs=True),
    "doccano": Reader("doccano", _single_file, doccano.read_doccano, True),
    "label-studio": Reader(
        "label-studio", _single_file, label_studio.read_label_studio, True, repairs=True
    ),
    "webanno": Reader("webanno", webanno_tsv.webanno_units, webanno_tsv.read_webanno_tsv, True),
    "xmi": Reader("xmi", uima_xmi.xmi_units, uima_xmi.read_xmi, True),
    "hf-parquet": Reader(
        "hf-parquet", hf_parquet.units, hf_parquet.read_parquet, True,
        splits=lambda path: {
            doc_id: hf_parquet.noteloop_split(split)
            for doc_id, split in hf_parquet.splits_of(path).items()
        },
    ),
}



Splits = Mapping[str, Split]


@dataclass(frozen=True)
class Writer:
    """Writes documents under ``out_dir``; returns a one-line summary of what it wrote.
    ``write(docs, schema, out_dir, with_text, splits)``: ``splits`` maps a document id to
    its split, for the formats that carry one."""

    name: str
    write: Callable[[Documents, LabelSchema, Path, bool, Mapping[str, Split]], str]
    can_omit_text: bool


def _write_brat(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    brat.write_brat(docs, schema, out, with_text=with_text)
    return f"{len(docs)} documents as BRAT (.txt/.ann pairs and annotation.conf) in {out}"


def _write_jsonl(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.jsonl"
    jsonl.write_jsonl(docs, target, with_text=with_text)
    return f"{len(docs)} documents to {target}"


def _write_bioc(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.bioc.xml"
    bioc_xml.write_bioc(docs, target)
    return f"{len(docs)} documents to {target}"


def _write_pubtator(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.pubtator"
    pubtator.write_pubtator(docs, target)
    return (
        f"{len(docs)} documents to {target} (PubTator: mentions with concept ids and "
        "document-level CID relations; a discontinuous span as its whole extent; "
        "attributes, notes, equivalences and other relations are not written)"
    )


def _write_conll(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.conll"
    r = conll.write_conll(docs, target)
    return _summary(
        f"{len(docs)} documents to {target} (BIO tags)",
        [(r.spans_dropped_overlap, "overlapping span(s) BIO cannot express, dropped"),
         (r.discontinuous_split, "discontinuous span(s) split into their fragments"),
         (r.spans_widened, "span(s) widened to token boundaries")],
    )


def _write_instruct(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "instructions.jsonl"
    n = instruct.write_instruct(docs, schema, target)
    return f"{n} instruction examples from {len(docs)} documents to {target}"


def _write_spacy(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    r = spacy_docbin.write_docbins(docs, out)
    where = r.files[0] if len(r.files) == 1 else f"{len(r.files)} files in {out}"
    return _summary(
        f"{r.documents} documents to {where} (spaCy DocBin): {r.spans} spans in "
        "doc.spans, the exact notes and their relations in user_data",
        [(r.not_in_ents, "span(s) overlapping another or discontinuous, in doc.spans only "
                         "(not doc.ents)"),
         (r.widened, "span(s) widened to token boundaries in spaCy's layers")],
    )


def _write_hf_parquet(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    hub = {doc_id: "test" if split is Split.TEST else "train" for doc_id, split in splits.items()}
    return hf_parquet.write_parquet(docs, out, hub, schema=schema).summary()


def _summary(head: str, losses: Sequence[tuple[int, str]]) -> str:
    """``head`` and what the format could not hold as noteloop holds it, the counts that
    are not zero only (a lead reads what happened, not a list of zeros)."""
    lost = [f"{n} {what}" for n, what in losses if n]
    return f"{head}; " + ("; ".join(lost) if lost else "nothing lost")


def _write_prodigy(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.prodigy.jsonl"
    r = prodigy.write_prodigy(docs, target)
    return _summary(
        f"{r.documents} documents to {target} (Prodigy tasks, answered accept): {r.spans} "
        f"spans, {r.relations} relations",
        [(r.discontinuous, "discontinuous span(s) written as one extent"),
         (r.overlapping, "span(s) overlapping another (spans.manual shows them, ner.manual "
                         "and rel.manual cannot)"),
         (r.kept_aside, "span(s), relation(s) or equivalence(s) with what Prodigy has no "
                        "field for (attributes, notes, concepts), kept in the 'noteloop' key")],
    )


def _write_doccano(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    target = out / "documents.doccano.jsonl"
    r = doccano.write_doccano(docs, target)
    return _summary(
        f"{r.documents} documents to {target} (doccano JSONL, import as JSONL (Relation)): "
        f"{r.spans} spans, {r.relations} relations",
        [(r.discontinuous, "discontinuous span(s) written as one extent"),
         (r.overlapping, "span(s) overlapping another (doccano keeps them only with 'Allow "
                         "overlapping entity' on)"),
         (r.kept_aside, "span(s), relation(s) or equivalence(s) with what doccano has no "
                        "field for (attributes, notes, concepts), kept in the 'noteloop' key")],
    )


def _write_label_studio(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    r = label_studio.write_label_studio(docs, schema, out)
    return _summary(
        f"{r.documents} documents to {out / label_studio.TASKS_FILE} with the project's "
        f"labeling config {out / label_studio.CONFIG_FILE} (Label Studio JSON): {r.spans} "
        f"spans as {r.regions} regions, {r.relations} relations",
        [(r.discontinuous, "discontinuous span(s) as one region per fragment, joined by "
                           f"{label_studio.FRAGMENT} relations"),
         (r.only_in_meta, "concept(s), relation note(s) or equivalence(s) Label Studio does "
                          "not show, kept in each task's meta.noteloop")],
    )


def _write_webanno(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    r = webanno_tsv.write_webanno_tsv(docs, out)
    return _summary(
        f"{r.documents} documents as WebAnno TSV 3.3 (<id>.tsv each) in {out}, layers "
        f"webanno.custom.Concept and webanno.custom.Relation: {r.spans} spans, "
        f"{r.relations} relations",
        [(r.discontinuous, "discontinuous span(s) written as one extent"),
         (r.line_break_added, "text(s) without a final line break (they gain one on import)"),
         (r.notes, "note(s) not written"),
         (r.equivalences, "equivalence(s) not written"),
         (r.attributes_dropped, "attribute value(s) whose name cannot be a feature, not "
                                "written")],
    )


def _write_xmi(
    docs: Documents, schema: LabelSchema, out: Path, with_text: bool, splits: Splits
) -> str:
    r = uima_xmi.write_xmi(docs, out)
    return _summary(
        f"{r.documents} documents as UIMA CAS XMI (<id>.xmi each and TypeSystem.xml) in {out}: "
        f"{r.spans} spans, {r.relations} relations, every attribute, note, concept and "
        "equivalence",
        [(r.control_characters, "control character(s) XML 1.0 cannot hold, kept beside the "
                                "text"),
         (r.replaced, "character(s) in labels, notes or values replaced by U+FFFD")],
    )


WRITERS: dict[str, Writer] = {
    "brat": Writer("brat", _write_brat, True),
    "jsonl": Writer("jsonl", _write_jsonl, True),
    "bioc": Writer("bioc", _write_bioc, False),
    "pubtator": Writer("pubtator", _write_pubtator, False),
    "conll": Writer("conll", _write_conll, False),
    "instruct": Writer("instruct", _write_instruct, False),
    "spacy": Writer("spacy", _write_spacy, False),
    "prodigy": Writer("prodigy", _write_prodigy, False),
    "doccano": Writer("doccano", _write_doccano, False),
    "label-studio": Writer("label-studio", _write_label_studio, False),
    "webanno": Writer("webanno", _write_webanno, False),
    "xmi": Writer("xmi", _write_xmi, False),
    "hf-parquet": Writer("hf-parquet", _write_hf_parquet, False),
}


def _lookup(table: dict, name: str, kind: str):  # type: ignore[no-untyped-def]
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"unknown {kind} format {name!r}; choose one of: {', '.join(sorted(table))}"
        ) from None


def reader(name: str) -> Reader:
    return _lookup(READERS, name, "import")  # type: ignore[no-any-return]


def writer(name: str) -> Writer:
    return _lookup(WRITERS, name, "export")  # type: ignore[no-any-return]
