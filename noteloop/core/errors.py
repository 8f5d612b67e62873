"""The error hierarchy: every error names what is wrong and where, so a person can act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NoteloopError(Exception):
    """Base of every error noteloop raises on purpose."""


class SchemaError(NoteloopError, ValueError):
    """A label schema that contradicts itself, or a label the schema does not know."""


class InvalidSpanError(NoteloopError, ValueError):
    """A span whose offsets, label or attributes cannot be right."""


class InvalidRelationError(NoteloopError, ValueError):
    """A relation that points at a missing span or that the schema forbids."""


class InvalidDocumentError(NoteloopError, ValueError):
    """A document that cannot be stored: empty id, duplicate ids, text that is not text."""


class ConfigError(NoteloopError, ValueError):
    """A training or model setting out of its range (``epochs`` of 0, a learning rate of
    2): named with the value given and what it must be."""


class NotFoundError(NoteloopError, LookupError):
    """A project, document, user or model version that does not exist."""


class ConflictError(NoteloopError):
    """Someone else saved the same annotation since it was loaded.

    Carries who saved it, when, and the version now stored, so the page can tell the
    annotator whose change it was without discarding theirs.
    """

    def __init__(self, message: str, *, saved_by: str, saved_at: str, current_version: int):
        super().__init__(message)
        self.saved_by = saved_by
        self.saved_at = saved_at
        self.current_version = current_version


@dataclass(frozen=True)
class LineError:
    """One bad line of an input file: the file, the 1-based line (0 = whole file), the reason."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "reason": self.reason}


class ImportFileError(NoteloopError):
    """A file refused whole, with every bad line it contains.

    Imports are all-or-nothing per file: readers collect every problem first and then
    raise this once, so the person fixing the file sees all of them at the same time.
    """

    def __init__(self, errors: list[LineError], parsed: list[Any] | None = None):
        if not errors:
            raise ValueError("ImportFileError needs at least one LineError")
        self.errors = list(errors)
        # The documents of the file that did parse: the importer still checks them against
        # the project's schema, so one pass reports every bad line, not just the first kind.
        self.parsed = list(parsed or [])
        shown = "\n".join(f"  {e}" for e in self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"{len(self.errors)} problem(s), nothing imported:\n{shown}{more}")

    @classmethod
    def single(cls, path: str, line: int, reason: str) -> ImportFileError:
        return cls([LineError(path, line, reason)])
