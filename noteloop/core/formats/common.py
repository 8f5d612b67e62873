"""What every reader shares: safe file reading and the shape of a parsed document.

Readers never touch the database. They return :class:`Parsed` documents, each with the
file line of every span and relation, so that a later check (the project's schema) can
still point at the exact line a person must fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.schema import Document

# Clinical notes are kilobytes; a file past this is almost surely the wrong file (a
# database dump, an archive) and reading it whole would stall the app.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Size limits are binary megabytes, everywhere they are shown or typed: in decimal ones
# the default read "20.97 MB" and a limit typed as 20 was not the default.
MB = 1024 * 1024


def megabytes(n_bytes: int) -> float:
    """``n_bytes`` in the megabytes that limits and messages speak of."""
    return n_bytes / MB


def bytes_of(mb: float) -> int:
    """The byte limit for ``mb`` megabytes."""
    return int(mb * MB)


class Documents(Protocol):
    """What a writer is given: documents counted up front, iterable more than once (a
    writer that checks them all before it writes a file reads them twice). A list is
    one; an export of 10,000 notes streams them from the database a batch at a time."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Document]: ...


@dataclass(frozen=True)
class Parsed:
    """A document read from ``path``; ``lines`` maps span/relation ids to their line."""

    doc: Document
    path: str
    line: int = 0  # the line where the document starts (0: the whole file)
    lines: Mapping[str, int] = field(default_factory=dict)
    # Scores that came with the items (a file of model output imported as suggestions).
    scores: Mapping[str, float] = field(default_factory=dict)

    def line_of(self, item_id: str) -> int:
        return self.lines.get(item_id, self.line)


def read_text_file(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, allow_empty: bool = False,
    strip_bom: bool = False,
) -> str:
    """Read ``path`` as UTF-8 exactly as stored (``newline=''``: offsets count every ``\\r``).

    Raises:
        ImportFileError: the path is missing, a folder, too large, empty, binary or not UTF-8;
            the message names the file and, for bad bytes, the line they are on.
    """
    name = str(path)
    check_file(path, max_bytes)
    raw = path.read_bytes()
    if not raw.strip() and not allow_empty:
        raise ImportFileError.single(name, 0, "file is empty")
    return decode_utf8(raw, name, strip_bom=strip_bom)


def check_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse a path that is missing, a folder, or over ``max_bytes``, before reading it.

    Raises:
        ImportFileError: naming the file and what is wrong with it.
    """
    name = str(path)
    if not path.exists():
        raise ImportFileError.single(name, 0, "no such file or folder")
    if path.is_dir():
        raise ImportFileError.single(name, 0, "is a folder, expected a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImportFileError.single(
            name, 0, f"file is {megabytes(size):.1f} MB, over the {megabytes(max_bytes):g} MB limit"
        )


def decode_utf8(raw: bytes, name: str, *, strip_bom: bool = False) -> str:
    """Decode bytes as UTF-8, refusing binary data with the line it starts on.

    ``strip_bom`` drops a leading byte-order mark for container formats (JSONL, CSV,
    XML); a note's own text keeps it, because its offsets may count it.
    """
    binary = nul_error(raw, name)
    if binary:
        raise ImportFileError([binary])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError.single(
            name,
            line,
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8",
        ) from None
    return text[1:] if strip_bom and text.startswith("\ufeff") else text


def nul_error(raw: bytes, name: str) -> LineError | None:
    """The line of the first NUL byte of ``raw``, which text never holds, or None."""
    if b"\x00" not in raw:
        return None
    line = raw[: raw.index(b"\x00")].count(b"\n") + 1
    return LineError(name, line, "contains NUL bytes: this looks like a binary file")


def raise_if_errors(errors: list[LineError], parsed: list[Parsed] | None = None) -> None:
    """Refuse the file when anything is wrong, handing on the documents that did parse."""
    if errors:
        raise ImportFileError(errors, parsed)
