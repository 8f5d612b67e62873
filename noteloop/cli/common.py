"""What every command group shares: the one error boundary, the consoles, the options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NoteloopError
from noteloop.db import engine as db_engine
from noteloop.db.errors import database_refusal

F = TypeVar("F", bound=Callable[..., Any])

class _Reporting(typer.Typer):
    """A Typer whose every command is :func:`reported`: the one error boundary of the
    command line, so no command writes its own ``except``."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(function: F) -> F:
            register(reported(function))
            return function

        return decorator


def reported(command: F) -> F:
    """``command`` with noteloop's refusals and the database's errors printed as one
    ``error:`` line and exit code 1: a person reads what to do, never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NoteloopError as exc:
            raise fail(str(exc)) from None
        except SQLAlchemyError as exc:
            raise fail(str(database_refusal(exc))) from None

    return run  # type: ignore[return-value]


app = _Reporting(
    help="noteloop: clinical concept and relation annotation with a model in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
project_app = _Reporting(help="Create and list projects.", no_args_is_help=True)
user_app = _Reporting(help="Create users and reset passwords.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(user_app, name="user")

# No markup: names, ids and labels are users' strings, and ``[red]x[/red]`` or ``[x](url)``
# must print as typed (an admin copies a name from ``user list`` into the next command).
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="NOTELOOP_DB",
        help="Database path or SQLAlchemy URL [default: ./noteloop.db]",
    ),
]
ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name")]
# Reading corpora as they come (BRAT): see the README's "Formats".
RepairOption = Annotated[
    bool, typer.Option(help="Keep the offsets of a span whose text differs only in whitespace")
]
StrictOption = Annotated[
    bool, typer.Option(help="Refuse a corpus if any file is refused (default: leave it out)")
]


def open_sessions(db: str | None) -> sessionmaker[Session]:
    engine = db_engine.init_db(db_engine.normalize_url(db))
    return db_engine.session_factory(engine)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


# Who the audit rows of the command line name: it runs with the database's own rights.
CLI_ACTOR = "cli"


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


# --------------------------------------------------------------------------- model versions

model_app = _Reporting(
    help="List model versions and choose the one that serves.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def csv_ints(value: str, option: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{option} must be comma-separated whole numbers, got {value!r}", 2) from None


# --------------------------------------------------------------------------- documents

documents_app = _Reporting(help="List, retire and restore documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")
