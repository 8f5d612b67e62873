"""Unannotated notes: a folder of ``.txt`` files, or one CSV file with a note per row.

Text files
    One note per file, read as UTF-8 exactly as stored (``newline=''``: a ``\\r\\n`` stays two
    characters, a byte-order mark stays in the text) so that offsets computed later count
    the same characters the annotator saw. The document id is the file name without
    ``.txt``. A folder is searched recursively; files are taken in sorted path order.
    A file that is plainly another format (``.ann``, ``.json``, ``.jsonl``, ``.xml``,
    ``.csv``, ``.conf``) is refused with the ``--format`` that reads it, each on its own:
    the folder's notes still go in. A BRAT corpus's own files are the exception in a
    folder: an ``.ann`` beside its ``.txt``, and a ``.conf`` above such pairs, are left
    alone, because the ``.txt`` of a pair is a note (a BRAT folder's unannotated notes are
    brought into the pool this way after its gold).

CSV
    RFC 4180 CSV in UTF-8 (a leading byte-order mark is dropped). The header row must hold
    an ``id`` and a ``text`` column (matched ignoring case and surrounding spaces); every
    other column becomes document metadata under its header name. Quoted fields may span
    lines; their line breaks are kept exactly. Rows that are entirely empty are skipped.
    Errors name the physical line where the offending record starts.

Writing (:func:`write_txt`) produces ``<id>.txt`` per document, byte-identical to the
stored text; ids that cannot be file names are refused before anything is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from noteloop.core.errors import ImportFileError, InvalidDocumentError, LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    raise_if_errors,
    read_text_file,
)
from noteloop.core.schema import Document

__all__ = [
    "OTHER_FORMATS",
    "brat_companion",
    "check_file_ids",
    "read_csv",
    "read_txt",
    "txt_units",
    "write_exact",
    "write_txt",
]


# --------------------------------------------------------------------------- text files


# Files that are text but plainly not a note, by lower-case suffix: why, and which format
# reads them. Read as notes they would become pool documents of JSON or BRAT markup.
OTHER_FORMATS: dict[str, str] = {
    ".ann": "a BRAT annotation file, not a plain-text note: import the folder with --format brat",
    ".conf": (
        "a BRAT configuration file (brat's annotation.conf), not a plain-text note: "
        "import the folder with --format brat"
    ),
    ".json": "a JSON file, not a plain-text note: import it with --format jsonl",
    ".jsonl": "a JSON Lines file, not a plain-text note: import it with --format jsonl",
    ".xml": "an XML file, not a plain-text note: import it with --format bioc",
    ".csv": "a CSV file, not a plain-text note: import it with --format csv",
}


def txt_units(path: Path) -> list[Path]:
    """The files to import from ``path``: the file itself, or a folder's, sorted.

    A folder yields its ``.txt`` files and also the files of :data:`OTHER_FORMATS` that
    are not a BRAT pair's (:func:`brat_companion`), so that each of those is refused by
    name instead of passing unseen.

    Raises:
        ImportFileError: the path does not exist, or the folder holds no ``.txt`` file
            and no file of another format.
    """
    if not path.exists():
        raise ImportFileError.single(str(path), 0, "no such file or folder")
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and _is_unit(p))
    if not found:
        raise ImportFileError.single(str(path), 0, "folder holds no .txt files")
    return found


def _is_unit(path: Path) -> bool:
    if path.suffix == ".txt":
        return True
    return path.suffix.lower() in OTHER_FORMATS and not brat_companion(path)


def brat_companion(path: Path) -> bool:
    """Whether ``path`` is an ``.ann`` beside its own ``.txt``, or a ``.conf`` above such
    a pair: part of a BRAT corpus whose notes the ``txt`` format may take as text only."""
    suffix = path.suffix.lower()
    if suffix == ".ann":
        return path.with_suffix(".txt").is_file()
    if suffix == ".conf":
        return any(brat_companion(ann) for ann in path.parent.rglob("*.ann"))
    return False


def read_txt(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """One unannotated document from a text file; id = file name without extension.

    Raises:
        ImportFileError: the file is plainly another format (the reason names the
            ``--format`` to use), or cannot be read as a note.
    """
    other = OTHER_FORMATS.get(path.suffix.lower())
    if other:
        raise ImportFileError.single(str(path), 0, other)
    text = read_text_file(path, max_bytes=max_bytes)
    return [Parsed(Document(path.stem, text), str(path))]


def check_file_ids(docs: Iterable[Document]) -> None:
    """Refuse ids that would escape the output folder or collide once used as file names.

    Raises:
        InvalidDocumentError: naming the first offending id.
    """
    seen: set[str] = set()
    for doc in docs:
        check_file_id(doc.id, seen)


def check_file_id(doc_id: str, seen: set[str]) -> None:
    """:func:`check_file_ids` for one id; ``seen`` holds the ids before it (and gains it)."""
    if doc_id in (".", "..") or any(c in doc_id for c in "/\\") or _has_control(doc_id):
        raise InvalidDocumentError(
            f"document id {doc_id!r} cannot be used as a file name: it must not be '.' "
            "or '..' nor contain '/', '\\' or control characters (NUL, line breaks)"
        )
    if doc_id in seen:
        # Writing both would silently leave only the second on disk.
        raise InvalidDocumentError(f"document id {doc_id!r} appears twice in the export")
    seen.add(doc_id)


def _has_control(name: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in name)


def write_exact(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 with no newline translation, so offsets stay valid."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_txt(docs: Documents, out_dir: Path) -> None:
    """Write each document's exact text to ``out_dir/<id>.txt`` (the folder is created);
    ``docs`` is read twice, to check every id before a file is written.

    Raises:
        InvalidDocumentError: an id cannot be a file name, or two documents share one;
            nothing is written then.
    """
    check_file_ids(docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        write_exact(out_dir / f"{doc.id}.txt", doc.text)


# --------------------------------------------------------------------------- CSV


def read_csv(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """Documents from a CSV file with ``id`` and ``text`` columns (others: metadata).

    Raises:
        ImportFileError: with every bad record, by the line it starts on.
    """
    name = str(path)
    text = read_text_file(path, max_bytes=max_bytes, strip_bom=True)
    records = _records(text, name)
    header_line, header = records[0] if records else (1, [])
    columns = _header_columns(header, name, header_line)
    errors: list[LineError] = []
    out: list[Parsed] = []
    first_line: dict[str, int] = {}
    for line, row in records[1:]:
        parsed = _csv_document(row, header, columns, (name, line), first_line, errors)
        if parsed is not None:
            out.append(parsed)
    raise_if_errors(errors)
    return out


def _records(text: str, name: str) -> list[tuple[int, list[str]]]:
    """Every non-empty CSV record with the physical line it starts on."""
    # strict: an unbalanced quote is reported instead of swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if any(field.strip() for field in row):
                records.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError.single(name, start, f"malformed CSV: {exc}") from None
    return records


def _header_columns(header: list[str], name: str, line: int) -> tuple[int, int]:
    """Positions of the ``id`` and ``text`` columns; the file is refused without them."""
    keys = [h.strip().lower() for h in header]
    missing = [col for col in ("id", "text") if keys.count(col) != 1]
    if missing:
        raise ImportFileError.single(
            name,
            line,
            f"header must contain exactly one 'id' and one 'text' column; check "
            f"{', '.join(repr(m) for m in missing)} (header is {header!r})",
        )
    return keys.index("id"), keys.index("text")


def _csv_document(
    row: list[str],
    header: list[str],
    columns: tuple[int, int],
    where: tuple[str, int],
    first_line: dict[str, int],
    errors: list[LineError],
) -> Parsed | None:
    name, line = where
    problem = _row_problem(row, header, columns, first_line)
    if problem:
        errors.append(LineError(name, line, problem))
        return None
    doc_id, text = row[columns[0]].strip(), row[columns[1]]
    first_line[doc_id] = line
    meta = {
        h.strip(): v for i, (h, v) in enumerate(zip(header, row, strict=True)) if i not in columns
    }
    return Parsed(Document(doc_id, text, metadata=meta), name, line)


def _row_problem(
    row: list[str], header: list[str], columns: tuple[int, int], first_line: dict[str, int]
) -> str:
    if len(row) != len(header):
        return f"row has {len(row)} fields, the header has {len(header)}"
    doc_id, text = row[columns[0]].strip(), row[columns[1]]
    if not doc_id:
        return "empty id"
    if not text.strip():
        return f"document {doc_id}: empty text"
    if doc_id in first_line:
        return f"duplicate id {doc_id!r} (first on line {first_line[doc_id]})"
    return ""
