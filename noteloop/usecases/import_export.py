"""Import and export: files -> ``core.formats`` -> ``db``, and back.

The CLI and the Data page both call these functions. Each file is imported all or
nothing, in one transaction: a file with any bad line is refused whole, every bad line is
reported (file, line, reason), and the database is left exactly as it was for that file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import ImportFileError, LineError, NoteloopError, NotFoundError
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Parsed
from noteloop.core.formats.registry import reader, writer
from noteloop.core.schema import (
    Document,
    LabelSchema,
    Relation,
    Span,
    Split,
    Suggestion,
    label_uses,
)
from noteloop.db import documents, gold, limits, model_versions, models, projects, suggestions
from noteloop.db.engine import run_transaction

# (done, total or None while unknown, what is being done)
Progress = Callable[[int, int | None, str], None]
T = TypeVar("T")


class ImportAs(StrEnum):
    GOLD = "gold"
    SUGGESTIONS = "suggestions"


@dataclass
class ImportReport:
    """What an import did, file by file: enough for a person to fix and re-run it."""

    files_imported: list[str] = field(default_factory=list)
    documents_added: int = 0
    annotations_saved: int = 0
    suggestions_added: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (document id, why)
    refused: list[LineError] = field(default_factory=list)
    labels_added: list[str] = field(default_factory=list)
    # What was repaired (``--repair``) or skipped (an empty text), file:line each.
    notes: list[LineError] = field(default_factory=list)

    def add(self, part: ImportReport) -> None:
        """Count what one file wrote (:func:`_store_file`'s part) into this report."""
        self.documents_added += part.documents_added
        self.annotations_saved += part.annotations_saved
        self.suggestions_added += part.suggestions_added
        self.duplicates.extend(part.duplicates)
        self.labels_added.extend(part.labels_added)

    @property
    def ok(self) -> bool:
        return not self.refused

    def refused_files(self) -> list[str]:
        return sorted({e.path for e in self.refused})

    def summary(self) -> str:
        """What went in, in one line (the CLI prints it, the Data page shows it)."""
        return (
            f"imported {len(self.files_imported)} file(s): {self.documents_added} new "
            f"documents, {self.annotations_saved} gold annotations, "
            f"{self.suggestions_added} suggestions"
        )


@dataclass(frozen=True)
class ImportOptions:
    """How to import: the CLI flags and the Data page's widgets map onto these fields."""

    fmt: str
    as_: ImportAs = ImportAs.GOLD
    annotator: str = "import"
    split: Split = Split.POOL
    # document id -> split, from a JSON file with "train" and "test" lists (train = pool).
    split_of: Mapping[str, Split] = field(default_factory=dict)
    extend_schema: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    # Keep the offsets of a span whose text differs from them only in whitespace (BRAT).
    repair: bool = False


def load_split_file(path: Path) -> dict[str, Split]:
    """Read ``{"train": [...], "test": [...]}`` into document id -> split.

    Raises:
        ImportFileError: unreadable JSON, missing lists, or an id in both lists.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFileError.single(str(path), 0, f"cannot read split file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("test", []), list):
        raise ImportFileError.single(str(path), 0, 'expected {"train": [ids], "test": [ids]}')
    train, test = set(map(str, data.get("train", []))), set(map(str, data.get("test", [])))
    both = sorted(train & test)
    if both:
        raise ImportFileError.single(str(path), 0, f"ids in both train and test: {both[:10]}")
    return {**dict.fromkeys(train, Split.POOL), **dict.fromkeys(test, Split.TEST)}


def import_path(
    make_session: sessionmaker[Session],
    project_name: str,
    path: Path,
    options: ImportOptions,
    progress: Progress | None = None,
) -> ImportReport:
    """Import every file under ``path``; each file commits or is refused on its own."""
    report = ImportReport()
    fmt = reader(options.fmt)
    try:
        units = fmt.units(path)
        if fmt.splits and not options.split_of:  # a dataset's train and test files
            options = replace(options, split_of=fmt.splits(path))
            report.notes.append(_splits_note(path, options.split_of))
    except ImportFileError as exc:
        report.refused.extend(exc.errors)
        return report
    for i, unit in enumerate(units):
        if fmt.stream:
            _import_streamed(make_session, project_name, unit, options, report, progress)
        else:
            _import_unit(make_session, project_name, unit, options, report)
        if progress:
            progress(i + 1, len(units), str(unit))
    return report


def _splits_note(path: Path, split_of: Mapping[str, Split]) -> LineError:
    counts = {split: sum(1 for s in split_of.values() if s is split) for split in Split}
    return LineError(
        str(path), 0,
        f"each note's split comes from its dataset file: {counts[Split.POOL]} pool (train and "
        f"any other split), {counts[Split.TEST]} test; the split chosen for the import applies "
        "to none of them",
    )


def _import_unit(
    make_session: sessionmaker[Session],
    project_name: str,
    unit: Path,
    options: ImportOptions,
    report: ImportReport,
) -> None:
    def store() -> ImportReport:
        notes: list[LineError] = []
        parsed = reader(options.fmt).read_unit(
            unit, options.max_bytes, repair=options.repair, notes=notes
        )
        report.notes.extend(notes)
        # One unit of work per file, retried when another writer collided with it; it
        # reports into a part of its own, so a retried file counts once.
        return run_transaction(
            make_session, lambda session: _store_file(session, project_name, parsed, options)
        )

    def partial(exc: ImportFileError) -> list[LineError]:
        return _errors_of_partial(make_session, project_name, exc.parsed, options)

    _import_file(unit, report, store, partial)


def _import_file(
    unit: Path,
    report: ImportReport,
    store: Callable[[], ImportReport],
    more_errors: Callable[[ImportFileError], list[LineError]] = lambda _exc: [],
) -> None:
    """Run ``store`` for one file and report it: imported whole, or refused whole with every
    reason found (``more_errors`` adds those a refusal could not see, where it can)."""
    try:
        part = store()
    except ImportFileError as exc:
        report.refused.extend(sorted(exc.errors + more_errors(exc), key=lambda e: (e.path, e.line)))
        return
    except NotFoundError:
        raise  # no such project: nothing of any file can go in, say so once
    except NoteloopError as exc:
        # The store (or the database) refused something the checks let through: the
        # transaction rolled back, so the file is refused whole like any other bad file.
        report.refused.append(LineError(str(unit), 0, str(exc)))
        return
    report.add(part)
    report.files_imported.append(str(unit))


# Documents written per step of a streamed import: what the import holds in memory.
STREAM_BATCH = 200


def _import_streamed(
    make_session: sessionmaker[Session],
    project_name: str,
    unit: Path,
    options: ImportOptions,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    """:func:`_import_unit` for a file of many notes, in bounded memory: a first pass checks
    every document (keeping only the problems, and the first document of each label use
    to widen the schema), a second writes them a batch at a time; the file still goes in
    whole, in one transaction, or not at all."""

    def store() -> ImportReport:
        checked = _check_stream(make_session, project_name, unit, options, progress)
        if checked.errors:
            raise ImportFileError(checked.errors)
        return run_transaction(
            make_session,
            lambda session: _store_stream(session, project_name, unit, checked, options, progress),
        )

    _import_file(unit, report, store)


@dataclass
class _Checked:
    """What the first pass over a streamed file keeps: its problems, how many documents
    it holds, and the first document of each label use (to widen the schema the way
    every document would: :func:`noteloop.core.schema.label_uses`)."""

    errors: list[LineError] = field(default_factory=list)
    documents: int = 0
    exemplars: list[Document] = field(default_factory=list)
    uses: set[tuple[str, ...]] = field(default_factory=set)

    def keep_uses(self, doc: Document) -> None:
        new = label_uses(doc) - self.uses
        if new:
            self.uses |= new
            self.exemplars.append(doc)


def _check_stream(
    make_session: sessionmaker[Session],
    project_name: str,
    unit: Path,
    options: ImportOptions,
    progress: Progress | None,
) -> _Checked:
    with make_session() as session:
        schema = projects.project_schema(projects.get_project(session, project_name))
    checked = _Checked()
    for item in _stream(unit, options):
        if isinstance(item, LineError):
            checked.errors.append(item)
            continue
        checked.documents += 1
        checked.errors += value_errors([item])
        if options.extend_schema:
            checked.keep_uses(item.doc)
        else:
            checked.errors += schema_errors(schema, [item])
        if progress and checked.documents % STREAM_BATCH == 0:
            progress(checked.documents, None, f"checking {unit}")
    return checked


def _store_stream(
    session: Session,
    project_name: str,
    unit: Path,
    checked: _Checked,
    options: ImportOptions,
    progress: Progress | None,
) -> ImportReport:
    """Write a checked file a batch at a time; raises (rolling all of it back) when the
    file or the schema changed since it was checked."""
    part = ImportReport()
    project = _target_project(session, project_name, options)
    schema = projects.project_schema(project)
    if options.extend_schema:
        wider = schema.extended_with(checked.exemplars)
        if wider != schema:
            projects.set_project_schema(session, project, wider, user=options.annotator)
            part.labels_added.extend(_new_labels(schema, wider))
        schema = wider
    done = 0
    for batch in _batches(_stream(unit, options), STREAM_BATCH):
        errors = [e for e in batch if isinstance(e, LineError)]
        parsed = [p for p in batch if isinstance(p, Parsed)]
        errors += schema_errors(schema, parsed)
        if errors:
            raise ImportFileError(errors)
        _write_documents(session, project, parsed, options, part)
        done += len(parsed)
        if progress:
            progress(done, checked.documents, f"writing {unit}")
    return part


def _stream(unit: Path, options: ImportOptions) -> Iterator[Parsed | LineError]:
    stream = reader(options.fmt).stream
    assert stream is not None  # only formats with a stream come here
    return stream(unit, max_bytes=options.max_bytes)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _target_project(session: Session, project_name: str, options: ImportOptions) -> models.Project:
    """The project an import writes into, locked when the import may widen its schema: another
    import or a lead widening the schema at the same time keeps their labels too."""
    if options.extend_schema:
        return projects.locked_project(session, project_name)
    return projects.get_project(session, project_name)


def _store_file(
    session: Session, project_name: str, parsed: list[Parsed], options: ImportOptions
) -> ImportReport:
    """Check the whole file (values the columns cannot hold, labels the schema lacks),
    then write it; raise before any write. Returns what it wrote."""
    part = ImportReport()
    project = _target_project(session, project_name, options)
    schema = projects.project_schema(project)
    errors = value_errors(parsed)
    if not options.extend_schema:
        errors += schema_errors(schema, parsed)
    if errors:
        raise ImportFileError(sorted(errors, key=lambda e: (e.path, e.line)))
    if options.extend_schema:
        wider = schema.extended_with(p.doc for p in parsed)
        if wider != schema:
            projects.set_project_schema(session, project, wider, user=options.annotator)
            part.labels_added.extend(_new_labels(schema, wider))
    _write_documents(session, project, parsed, options, part)
    return part


def _errors_of_partial(
    make_session: sessionmaker[Session],
    project_name: str,
    parsed: list[Parsed],
    options: ImportOptions,
) -> list[LineError]:
    """What the store would refuse of the documents that did parse in a refused file."""
    if not parsed:
        return []
    errors = value_errors(parsed)
    if not options.extend_schema:
        with make_session() as session:
            project = projects.get_project(session, project_name)
            errors += schema_errors(projects.project_schema(project), parsed)
    return errors


def value_errors(parsed: Iterable[Parsed]) -> list[LineError]:
    """Every id, label or concept of ``parsed`` that the database cannot hold, at its
    file line."""
    return [
        LineError(p.path, p.line_of(item) if item else p.line, message)
        for p in parsed
        for item, message in limits.document_problems(p.doc)
    ]


def schema_errors(schema: LabelSchema, parsed: Iterable[Parsed]) -> list[LineError]:
    """Every span or relation of ``parsed`` that the schema refuses, at its file line."""
    errors = []
    for p in parsed:
        for item_id, message in schema.problems(p.doc):
            hint = (
                " (let the import add it: --extend-schema, or the Data page's \"Add labels\" box)"
                if "not in the schema" in message else ""
            )
            errors.append(LineError(p.path, p.line_of(item_id), f"{p.doc.id}: {message}{hint}"))
    return errors


def _new_labels(old: LabelSchema, new: LabelSchema) -> list[str]:
    """Names (and attribute values, as ``name=value``) that ``new`` has and ``old`` lacks."""

    def names(schema: LabelSchema) -> list[str]:
        values = [f"{a.name}={v}" for a in schema.attributes for v in a.values]
        return [
            *schema.entity_names,
            *schema.relation_names,
            *(a.name for a in schema.attributes),
            *values,
        ]

    before = set(names(old))
    return [name for name in names(new) if name not in before]


def _write_documents(
    session: Session,
    project: models.Project,
    parsed: list[Parsed],
    options: ImportOptions,
    report: ImportReport,
) -> None:
    by_split: dict[Split, list[Parsed]] = {}
    for p in parsed:
        by_split.setdefault(options.split_of.get(p.doc.id, options.split), []).append(p)
    model_version_id = None
    for split, group in by_split.items():
        result = documents.add_documents(session, project, [p.doc for p in group], split=split)
        report.duplicates.extend(result.duplicates)
        report.documents_added += len(result.added)
        for p, doc_id in _added_pairs(group, result):
            if not (p.doc.spans or p.doc.relations):
                continue
            if options.as_ is ImportAs.GOLD:
                _save_gold(session, doc_id, p.doc, options.annotator)
                report.annotations_saved += 1
            else:
                if model_version_id is None:
                    model_version_id = _import_model_version(session, project, p.path)
                report.suggestions_added += suggestions.add_suggestions(
                    session, doc_id, model_version_id, suggestions_of(p)
                )


def _added_pairs(group: list[Parsed], result: documents.AddResult) -> list[tuple[Parsed, int]]:
    """Pair each newly added document with its row id (duplicates were skipped)."""
    skipped = {doc_id for doc_id, _ in result.duplicates}
    fresh = [p for p in group if p.doc.id not in skipped]
    return list(zip(fresh, result.added, strict=True))


def _save_gold(session: Session, doc_id: int, doc: Document, annotator: str) -> None:
    gold.save_annotation(
        session,
        doc_id,
        annotator,
        doc.spans,
        doc.relations,
        doc.equivalences,
        expected_version=0,
    )


def _import_model_version(session: Session, project: models.Project, path: str) -> int:
    version = model_versions.register_model_version(
        session, project, name=f"import:{Path(path).name}", backend="import", path=path
    )
    return version.id


def suggestions_of(p: Parsed) -> list[Suggestion]:
    """Spans and relations of an imported file as suggestions (score 1.0 when none given)."""
    items: list[Span | Relation] = [*p.doc.spans, *p.doc.relations]
    return [Suggestion(item, float(p.scores.get(item.id, 1.0))) for item in items]


@dataclass(frozen=True)
class ExportOptions:
    fmt: str
    annotator: str | None = None
    with_text: bool = True
    split: Split | None = None


def export_project(
    session: Session,
    project_name: str,
    out_dir: Path,
    options: ExportOptions,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Write the project's gold documents under ``out_dir``; returns a summary line. The
    documents stream from the database a batch at a time (``progress(done, total)`` after
    each), so the export of a large project holds a batch in memory, not the project.

    Raises:
        NoteloopError: the format cannot leave the text out, or there is nothing to export.
    """
    fmt = writer(options.fmt)
    if not options.with_text and not fmt.can_omit_text:
        raise NoteloopError(
            f"{options.fmt} carries the note text by nature; "
            "--without-text works with brat and jsonl"
        )
    project = projects.get_project(session, project_name)
    docs = gold.GoldDocuments.of(
        session, project, split=options.split, annotator=options.annotator
    )
    if not len(docs):
        who = f" by {options.annotator}" if options.annotator else ""
        raise NoteloopError(
            f"project {project_name} has no submitted gold annotations{who} to export"
        )
    docs.on_progress = progress
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = projects.project_schema(project)
    return fmt.write(docs, schema, out_dir, options.with_text, docs.splits())
