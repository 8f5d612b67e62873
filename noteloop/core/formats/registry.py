"""The table of annotation formats by name: which reader or writer each name means.

Each reader format names how a path splits into files (each file is imported all or
nothing) and how one file becomes documents. The CLI and the Data page both go through
:data:`READERS` and :data:`WRITERS`, so the two can never disagree about a format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats import (
    bioc_xml,
    brat,
    conll,
    instruct,
    jsonl,
    plaintext,
    pubtator,
    spacy_docbin,
)
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Parsed
from noteloop.core.schema import Document, LabelSchema

__all__ = [
    "READERS", "WRITERS", "CorpusRead", "Parsed", "Reader", "Writer", "absent_ids",
    "read_corpus", "reader", "writer",
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
    "jsonl": Reader("jsonl", _single_file, jsonl.read_jsonl, True),
    "pubtator": Reader("pubtator", _single_file, pubtator.read_pubtator, True),
    "bioc": Reader("bioc", _single_file, bioc_xml.read_bioc, True),
    "txt": Reader("txt", plaintext.txt_units, plaintext.read_txt, False),
    "csv": Reader("csv", _single_file, plaintext.read_csv, False),
    "spacy": Reader("spacy", _single_file, spacy_docbin.read_docbin, True),
}


@dataclass(frozen=True)
class Writer:
    """Writes documents under ``out_dir``; returns a one-line summary of what it wrote."""

    name: str
    write: Callable[[list[Document], LabelSchema, Path, bool], str]
    can_omit_text: bool


def _write_brat(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    brat.write_brat(docs, schema, out, with_text=with_text)
    return f"{len(docs)} documents as BRAT (.txt/.ann pairs and annotation.conf) in {out}"


def _write_jsonl(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    target = out / "documents.jsonl"
    jsonl.write_jsonl(docs, target, with_text=with_text)
    return f"{len(docs)} documents to {target}"


def _write_bioc(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    target = out / "documents.bioc.xml"
    bioc_xml.write_bioc(docs, target)
    return f"{len(docs)} documents to {target}"


def _write_conll(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    target = out / "documents.conll"
    report = conll.write_conll(docs, target)
    return (
        f"{len(docs)} documents to {target}; BIO could not express "
        f"{report.spans_dropped_overlap} overlapping span(s) (dropped), split "
        f"{report.discontinuous_split} discontinuous span(s), widened {report.spans_widened}"
    )


def _write_instruct(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    target = out / "instructions.jsonl"
    n = instruct.write_instruct(docs, schema, target)
    return f"{n} instruction examples from {len(docs)} documents to {target}"


def _write_spacy(docs: list[Document], schema: LabelSchema, out: Path, with_text: bool) -> str:
    target = out / "documents.spacy"
    report = spacy_docbin.write_docbin(docs, target)
    return (
        f"{report.documents} documents to {target} (spaCy DocBin); of {report.spans} spans, "
        f"{report.not_in_ents} overlap another or are discontinuous (in doc.spans only, not "
        f"doc.ents), {report.widened} widened to token boundaries in spaCy's layers; the "
        "exact notes and relations are in user_data"
    )


WRITERS: dict[str, Writer] = {
    "brat": Writer("brat", _write_brat, True),
    "jsonl": Writer("jsonl", _write_jsonl, True),
    "bioc": Writer("bioc", _write_bioc, False),
    "conll": Writer("conll", _write_conll, False),
    "instruct": Writer("instruct", _write_instruct, False),
    "spacy": Writer("spacy", _write_spacy, False),
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


def documents_of(parsed: Iterable[Parsed]) -> list[Document]:
    return [p.doc for p in parsed]
