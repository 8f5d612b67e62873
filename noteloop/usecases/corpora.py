"""Annotated corpora from disk, with their schema and their train/test split.

A corpus is named on the command line as ``PATH`` or ``NAME=PATH``. How its parts are
found, in order:

1. **A folder with ``splits.json``** (``{"train": [ids], "test": [ids]}``): BRAT files
   in the folder or in its ``notes/`` subfolder; the split file decides. A
   ``schema.json`` beside it gives the schema (with its type definitions), widened by
   whatever the documents use. MACCROBAT2020 and ``sample_notes/`` look like this.
2. **A folder of PubTator files** whose names say ``train`` and ``test``
   (BC5CDR's ``CDR_TrainingSet.PubTator.txt`` / ``CDR_TestSet.PubTator.txt``): those
   two files are the parts (a development file is not used).
3. **Anything else** (a BRAT folder, a PubTator, BioC or JSONL file): all of it, split
   by a seeded draw of a quarter of the documents for test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from noteloop.core.errors import LineError, NoteloopError
from noteloop.core.fewshot import Corpus
from noteloop.core.formats.registry import absent_ids, read_corpus
from noteloop.core.schema import Document, LabelSchema, schema_from_documents
from noteloop.core.simulate import split_documents


def parse_spec(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after its folder or file stem)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path, name = spec, ""
    folder = Path(path)
    return name or folder.stem.lower(), folder


def load_corpus(spec: str, *, seed: int = 0, repair: bool = False, strict: bool = False) -> Corpus:
    """The corpus ``spec`` names (see the module docstring).

    A file that does not read is left out and listed, with every problem it has, in the
    corpus's ``refused`` (``strict``: refused whole instead); ``repair`` as for
    :func:`noteloop.core.formats.registry.read_corpus`; what was repaired or skipped is in
    its ``notes``.

    Raises:
        NoteloopError: no such path, nothing readable in it, or (``strict``) an unreadable
            file (every bad line of every file listed).
    """
    name, path = parse_spec(spec)
    if not path.exists():
        raise NoteloopError(f"corpus {name}: no such file or folder: {path}")
    reading = _Reading(repair, strict)
    if path.is_dir() and (path / "splits.json").is_file():
        corpus = _split_folder(name, path, reading)
    elif path.is_dir() and _pubtator_parts(path):
        train_file, test_file = _pubtator_parts(path)  # type: ignore[misc]
        train, test = reading.read(train_file, "pubtator"), reading.read(test_file, "pubtator")
        corpus = Corpus(name, schema_from_documents([*train, *test]), tuple(train), tuple(test))
    else:
        docs = reading.read(path, _format_of(path))
        if not docs:
            raise NoteloopError(f"corpus {name}: no documents in {path}")
        train, test = split_documents(docs, seed=seed)
        corpus = Corpus(name, schema_from_documents(docs), tuple(train), tuple(test))
    return replace(corpus, refused=tuple(reading.refused), notes=tuple(reading.notes))


def reading_lines(
    name: str, refused: Sequence[LineError], notes: Sequence[LineError]
) -> list[str]:
    """What reading corpus ``name`` repaired, skipped and refused, a line each."""
    files = len({e.path for e in refused})
    lines = [f"corpus {name}: {note}" for note in notes]
    if files:
        lines.append(f"corpus {name}: {files} file(s) refused, left out (--strict refuses "
                     "the corpus instead):")
        lines += [f"  {error}" for error in refused]
    return lines


class _Reading:
    """Reads the files of one corpus, keeping what each left out or mended."""

    def __init__(self, repair: bool, strict: bool) -> None:
        self.repair, self.strict = repair, strict
        self.refused: list[LineError] = []
        self.notes: list[LineError] = []

    def read(self, path: Path, fmt: str) -> list[Document]:
        got = read_corpus(path, fmt, repair=self.repair, strict=self.strict)
        self.refused.extend(got.refused)
        self.notes.extend(got.notes)
        return got.docs

    def absent(self) -> set[str]:
        return absent_ids(self.refused, self.notes)


def _split_folder(name: str, path: Path, reading: _Reading) -> Corpus:
    notes = path / "notes" if (path / "notes").is_dir() else path
    docs = reading.read(notes, "brat")
    train, test = split_documents(docs, path / "splits.json", absent=reading.absent())
    schema = schema_from_documents(docs)
    if (path / "schema.json").is_file():
        declared = LabelSchema.from_dict(json.loads((path / "schema.json").read_text("utf-8")))
        schema = declared.extended_with(docs)
    return Corpus(name, schema, tuple(train), tuple(test))


def _pubtator_parts(folder: Path) -> tuple[Path, Path] | None:
    files = sorted(p for p in folder.iterdir() if "pubtator" in p.name.lower())
    train = [p for p in files if "train" in p.name.lower()]
    test = [p for p in files if "test" in p.name.lower()]
    return (train[0], test[0]) if len(train) == 1 and len(test) == 1 else None


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "brat"
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "bioc"
    if suffix == ".jsonl":
        return "jsonl"
    return "pubtator"


def load_definitions(path: Path | None) -> dict[str, str]:
    """Type name -> definition, from a JSON object (``{}`` without a file).

    Raises:
        NoteloopError: unreadable JSON, or not an object of strings.
    """
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoteloopError(f"{path}: cannot read definitions: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise NoteloopError(f'{path}: definitions must be a JSON object {{"Type": "text"}}')
    return data
