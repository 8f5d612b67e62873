"""The ``noteloop`` command: database set-up, projects, users, import, export, statistics.

Environment variables are read here, once: ``NOTELOOP_DB`` names the database (a path or
any SQLAlchemy URL). Every other module takes what it needs as arguments.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import ImportFileError, NoteloopError, SchemaError
from noteloop.core.formats.brat import read_annotation_conf
from noteloop.core.formats.common import DEFAULT_MAX_BYTES
from noteloop.core.formats.registry import READERS, WRITERS
from noteloop.core.schema import LabelSchema, Role, Split
from noteloop.db import engine as db_engine
from noteloop.db import repo
from noteloop.transfer import (
    ExportOptions,
    ImportAs,
    ImportOptions,
    ImportReport,
    export_project,
    import_path,
    load_split_file,
)

app = typer.Typer(
    help="noteloop: clinical concept and relation annotation with a model in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
project_app = typer.Typer(help="Create and list projects.", no_args_is_help=True)
user_app = typer.Typer(help="Create users and reset passwords.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(user_app, name="user")

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="NOTELOOP_DB",
        help="Database path or SQLAlchemy URL [default: ./noteloop.db]",
    ),
]
ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name")]


def _sessions(db: str | None) -> sessionmaker[Session]:
    engine = db_engine.init_db(db_engine.normalize_url(db))
    return db_engine.session_factory(engine)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def init(db: DbOption = None) -> None:
    """Create the database (or bring it to the latest schema)."""
    url = db_engine.normalize_url(db)
    db_engine.init_db(url)
    console.print(f"database ready: {url}")


def load_schema_file(path: Path) -> LabelSchema:
    """A schema from ``schema.json`` or from a BRAT ``annotation.conf``."""
    if not path.is_file():
        raise SchemaError(f"{path}: no such schema file")
    if path.suffix == ".conf":
        return read_annotation_conf(path)
    try:
        return LabelSchema.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not a JSON schema file ({exc})") from None


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="Project name")],
    schema: Annotated[
        Path | None,
        typer.Option(help="schema.json, or a BRAT annotation.conf, with the label schema"),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a project with its label schema (empty when none is given)."""
    try:
        label_schema = load_schema_file(schema) if schema else LabelSchema()
        with _sessions(db).begin() as session:
            repo.create_project(session, name, label_schema)
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"project {name} created: {len(label_schema.entity_types)} entity types, "
        f"{len(label_schema.relation_types)} relation types, "
        f"{len(label_schema.attributes)} attributes"
    )


@project_app.command("list")
def project_list(db: DbOption = None) -> None:
    """List the projects."""
    with _sessions(db)() as session:
        for project in repo.list_projects(session):
            console.print(project.name)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[Role, typer.Option(help="annotator, lead or admin")] = Role.ANNOTATOR,
    password: Annotated[
        str | None, typer.Option(help="Password; a random one is generated and shown when omitted")
    ] = None,
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Project(s) to join")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a user (annotators see only the projects they are members of)."""
    secret = password or secrets.token_urlsafe(9)
    try:
        with _sessions(db).begin() as session:
            user = repo.add_user(session, name, role, secret)
            for project_name in project or []:
                repo.add_member(session, user, repo.get_project(session, project_name))
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    shown = "" if password else f" with password {secret}"
    console.print(f"user {name} ({role.value}) created{shown}")


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
    max_mb: Annotated[float, typer.Option(help="Refuse files larger than this")] = DEFAULT_MAX_BYTES
    / 1e6,
    db: DbOption = None,
) -> None:
    """Import documents (and their annotations) from a file or folder, all or nothing per file."""
    if fmt not in READERS:
        raise _fail(f"unknown format {fmt!r}; choose one of: {', '.join(READERS)}", 2)
    try:
        split_of = load_split_file(split_file) if split_file else {}
    except ImportFileError as exc:
        raise _fail(str(exc)) from None
    options = ImportOptions(fmt, as_, annotator, split, split_of, extend_schema, int(max_mb * 1e6))
    sessions = _sessions(db)
    with _progress() as bar:
        task = bar.add_task("importing", total=None)
        report = import_path(
            sessions,
            project,
            path,
            options,
            progress=lambda done, total, _: bar.update(task, completed=done, total=total),
        )
    _print_import_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _print_import_report(report: ImportReport) -> None:
    console.print(
        f"imported {len(report.files_imported)} file(s): {report.documents_added} new documents, "
        f"{report.annotations_saved} gold annotations, {report.suggestions_added} suggestions"
    )
    if report.labels_added:
        console.print(f"schema extended with: {', '.join(report.labels_added)}")
    if report.duplicates:
        console.print(f"skipped {len(report.duplicates)} document(s) already in the project:")
        for doc_id, why in report.duplicates[:20]:
            console.print(f"  {doc_id}: {why}", highlight=False)
    if report.refused:
        err_console.print(
            f"[bold red]refused {len(report.refused_files())} file(s)[/], nothing of them imported:"
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
        raise _fail(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}", 2)
    options = ExportOptions(fmt, annotator, not without_text, split)
    try:
        with _sessions(db)() as session:
            summary = export_project(session, project, out, options)
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    console.print(summary)


@app.command()
def stats(project: ProjectOption, db: DbOption = None) -> None:
    """Documents, annotations, spans and relations per label."""
    try:
        with _sessions(db)() as session:
            numbers = repo.project_stats(session, repo.get_project(session, project))
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
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


@app.command()
def demo(
    sample_notes: Annotated[Path, typer.Option(help="The sample_notes folder")] = Path(
        "sample_notes"
    ),
    name: Annotated[str, typer.Option(help="Demo project name")] = "demo",
    db: DbOption = None,
) -> None:
    """Seed the demo project from sample_notes/ (idempotent) and the demo admin."""
    from noteloop.seed import seed_demo

    try:
        messages = seed_demo(_sessions(db), sample_notes, name)
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    for line in messages:
        console.print(line, highlight=False)


if __name__ == "__main__":
    app()
