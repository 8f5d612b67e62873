"""Documents in and out: ``import``, ``export``, ``stats`` and ``documents``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noteloop.cli.common import (
    CLI_ACTOR,
    DbOption,
    ProjectOption,
    RepairOption,
    app,
    console,
    documents_app,
    err_console,
    fail,
    open_sessions,
    progress_bar,
)
from noteloop.core.errors import ImportFileError
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, bytes_of, megabytes
from noteloop.core.formats.registry import READERS, WRITERS
from noteloop.core.schema import Split
from noteloop.db import engine as db_engine
from noteloop.db import projects
from noteloop.usecases.import_export import (
    ExportOptions,
    ImportAs,
    ImportOptions,
    ImportReport,
    export_project,
    import_path,
    load_split_file,
)
from noteloop.usecases.uploads import audit_import


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="File or folder to import")],
    project: ProjectOption,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(READERS)}")],
    as_: Annotated[
        ImportAs, typer.Option("--as", help="gold annotations or model suggestions")
    ] = ImportAs.GOLD,
    annotator: Annotated[str, typer.Option(help="Whose gold the annotations become")] = "import",
    split: Annotated[
        Split, typer.Option(help="pool (may be trained on) or test (only measured)")
    ] = Split.POOL,
    split_file: Annotated[
        Path | None, typer.Option(help='JSON {"train": [ids], "test": [ids]} that fixes each split')
    ] = None,
    extend_schema: Annotated[
        bool,
        typer.Option(help="Add labels the files use that the schema lacks, instead of refusing"),
    ] = False,
    max_mb: Annotated[
        float, typer.Option(help="Refuse files larger than this many MB (MiB)")
    ] = megabytes(DEFAULT_MAX_BYTES),
    repair: RepairOption = False,
    db: DbOption = None,
) -> None:
    """Import documents (and their annotations) from a file or folder, all or nothing per file."""
    if fmt not in READERS:
        raise fail(f"unknown format {fmt!r}; choose one of: {', '.join(READERS)}", 2)
    try:
        split_of = load_split_file(split_file) if split_file else {}
    except ImportFileError as exc:
        raise fail(str(exc)) from None
    options = ImportOptions(
        fmt, as_, annotator, split, split_of, extend_schema, bytes_of(max_mb), repair
    )
    sessions = open_sessions(db)
    with progress_bar() as bar:
        task = bar.add_task("importing", total=None)
        report = import_path(
            sessions,
            project,
            path,
            options,
            progress=lambda done, total, _: bar.update(task, completed=done, total=total),
        )
    audit_import(sessions, project, report, options, CLI_ACTOR, [str(path)])
    _print_import_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_import_report(report: ImportReport) -> None:
    console.print(report.summary())
    for note in report.notes:
        console.print(f"  {note}", highlight=False, markup=False)
    if report.labels_added:
        console.print(f"schema extended with: {', '.join(report.labels_added)}")
    if report.duplicates:
        console.print(f"skipped {len(report.duplicates)} document(s) already in the project:")
        for doc_id, why in report.duplicates[:20]:
            console.print(f"  {doc_id}: {why}", highlight=False)
    if report.refused:
        err_console.print(
            f"[bold red]refused {len(report.refused_files())} file(s)[/], "
            "nothing of them imported:",
            markup=True,
        )
        for error in report.refused:
            err_console.print(f"  {error}", highlight=False, markup=False)


@app.command("export")
def export_cmd(
    project: ProjectOption,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(WRITERS)}")],
    out: Annotated[Path, typer.Option(help="Folder to write into")],
    annotator: Annotated[str | None, typer.Option(help="Only this annotator's gold")] = None,
    without_text: Annotated[
        bool, typer.Option(help="Annotations only, no note text (brat, jsonl)")
    ] = False,
    split: Annotated[
        Split | None, typer.Option(help="Only the pool or only the test documents")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export the project's gold standard."""
    if fmt not in WRITERS:
        raise fail(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}", 2)
    options = ExportOptions(fmt, annotator, not without_text, split)
    with open_sessions(db)() as session, progress_bar() as bar:
        task = bar.add_task("exporting", total=None)
        summary = export_project(
            session, project, out, options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(summary)


@app.command()
def stats(project: ProjectOption, db: DbOption = None) -> None:
    """Documents, annotations, spans and relations per label."""
    with open_sessions(db)() as session:
        numbers = projects.project_stats(session, projects.get_project(session, project))
    _print_stats(project, numbers)


def _print_stats(project: str, numbers: dict) -> None:  # type: ignore[type-arg]
    table = Table(title=f"project {project}", show_header=False)
    for key, value in numbers.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        else:
            shown = str(value)
        table.add_row(key.replace("_", " "), shown)
    console.print(table)


DocumentIds = Annotated[list[str], typer.Argument(help="Document ids (as imported)")]
ReasonOption = Annotated[str, typer.Option(help="Why (kept in the audit log)")]


@documents_app.command("list")
def documents_list(
    project: ProjectOption,
    retired: Annotated[bool, typer.Option("--retired", help="Only the retired ones")] = False,
    db: DbOption = None,
) -> None:
    """List the project's documents: id, split, words, gold or not, retired or live."""
    from noteloop.db import documents

    with open_sessions(db)() as session:
        rows = documents.document_rows(session, project, retired=True if retired else None)
    table = Table(title=f"{len(rows)} {'retired ' if retired else ''}document(s) of {project}")
    for column in ("id", "split", "words", "gold", "status"):
        table.add_column(column)
    for row in rows:
        when = f" {row.retired_at:%Y-%m-%d} by {row.retired_by}" if row.retired_at else ""
        gold = "yes" if row.gold else "no"
        table.add_row(row.id, row.split, str(row.words), gold, f"{row.status}{when}")
    console.print(table)


@documents_app.command("retire")
def documents_retire(
    ids: DocumentIds, project: ProjectOption, reason: ReasonOption = "", db: DbOption = None
) -> None:
    """Take documents out of the queue, training, metrics and exports (restorable)."""
    _change_documents("retire", ids, project, reason, db)


@documents_app.command("restore")
def documents_restore(
    ids: DocumentIds, project: ProjectOption, reason: ReasonOption = "", db: DbOption = None
) -> None:
    """Bring retired documents back into the queue, training, metrics and exports."""
    _change_documents("restore", ids, project, reason, db)


def _change_documents(verb: str, ids: list[str], project: str, reason: str, db: str | None) -> None:
    from noteloop.db import documents

    change = documents.retire if verb == "retire" else documents.restore
    changed = db_engine.run_transaction(
        open_sessions(db), lambda session: change(session, project, ids, CLI_ACTOR, reason)
    )
    console.print(
        f"{verb}d {len(changed)} document(s) of {project}: {', '.join(changed) or '-'}",
        highlight=False,
    )
    left = [i for i in dict.fromkeys(ids) if i not in changed]
    if left:
        state = "retired" if verb == "retire" else "live"
        console.print(f"{state} already, left as they were: {', '.join(left)}", highlight=False)

