"""Setting up: the database, projects, users, and serving the app (``init``, ``project``,
``user``, ``serve``, ``demo``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from noteloop.cli.common import (
    CLI_ACTOR,
    DbOption,
    app,
    console,
    fail,
    open_sessions,
    project_app,
    user_app,
)
from noteloop.core.errors import SchemaError
from noteloop.core.formats.brat import read_annotation_conf
from noteloop.core.formats.common import MB
from noteloop.core.schema import LabelSchema, Role
from noteloop.db import accounts, audit, projects
from noteloop.db import engine as db_engine
from noteloop.usecases.uploads import MAX_FILE_BYTES


@app.command()
def init(db: DbOption = None) -> None:
    """Create the database (or bring it to the latest schema)."""
    url = db_engine.normalize_url(db)
    db_engine.init_db(url)
    console.print(f"database ready: {db_engine.shown_url(url)}")


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
    label_schema = load_schema_file(schema) if schema else LabelSchema()
    with open_sessions(db).begin() as session:
        created = projects.create_project(session, name, label_schema)
        after = {"name": name, "schema": label_schema.to_dict()}
        audit.record_audit(
            session, CLI_ACTOR, "create_project", "projects", created.id, after=after
        )
    console.print(
        f"project {name} created: {len(label_schema.entity_types)} entity types, "
        f"{len(label_schema.relation_types)} relation types, "
        f"{len(label_schema.attributes)} attributes"
    )


@project_app.command("list")
def project_list(db: DbOption = None) -> None:
    """List the projects."""
    with open_sessions(db)() as session:
        for project in projects.list_projects(session):
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
    _refuse_empty(password)
    with open_sessions(db).begin() as session:
        # The Users page's writer: the same checks and the same audit row.
        secret = accounts.create_user(
            session, name, role.value, password or "", project or [], by=CLI_ACTOR
        )
    shown = "" if password else f" with password {secret}"
    console.print(f"user {name} ({role.value}) created{shown}")


def _refuse_empty(password: str | None) -> None:
    # An empty --password would otherwise quietly become a random one nobody noted.
    if password is not None and not password.strip():
        raise fail("--password must not be empty; leave it out to get a random one", 2)


@user_app.command("list")
def user_list(db: DbOption = None) -> None:
    """List the users: role, whether they may log in, their projects, when created."""
    with open_sessions(db)() as session:
        rows = accounts.user_rows(session)
    table = Table(title="users")
    for column in ("name", "role", "active", "projects", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            row.role,
            "yes" if row.active else "no",
            ", ".join(row.projects),
            f"{row.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@user_app.command("reset-password")
def user_reset_password(
    name: Annotated[str, typer.Argument(help="User name")],
    password: Annotated[
        str | None,
        typer.Option(help="New password; a random one is generated and shown when omitted"),
    ] = None,
    db: DbOption = None,
) -> None:
    """Set a user's password (audited); a generated one is printed once, here."""
    _refuse_empty(password)
    with open_sessions(db).begin() as session:
        secret = accounts.reset_password(session, name, password or "", by=CLI_ACTOR)
    shown = "" if password else f" to {secret}"
    console.print(f"password of {name} reset{shown}")


@project_app.command("backend")
def project_backend(
    name: Annotated[str, typer.Argument(help="Project name")],
    backend: Annotated[str, typer.Argument(help="encoder or generative")],
    init_adapter: Annotated[
        Path | None, typer.Option(help="Start every round from this multi-task model")
    ] = None,
    db: DbOption = None,
) -> None:
    """Choose the model backend a project's worker rounds train and predict with."""
    from noteloop.core.settings import ProjectSettings

    with open_sessions(db).begin() as session:
        row = projects.get_project(session, name)
        ProjectSettings.from_settings({**row.settings, "backend": backend})
        config = dict(row.settings.get("model_config", {})) if (
            row.settings.get("backend", "encoder") == backend) else {}
        if init_adapter is not None:
            config["init_adapter"] = str(init_adapter.resolve())
        projects.update_project_settings(
            session, row, {"backend": backend, "model_config": config}, user="cli"
        )
    console.print(f"project {name}: backend {backend}")


# The app's Streamlit settings, given on the command line so they hold whatever folder the
# app is started from (a config.toml is read only from the working folder).
APP_SETTINGS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",  # no deploy button: the app runs on its own machine
    "server.maxUploadSize": str(MAX_FILE_BYTES // MB),  # what noteloop.usecases.uploads imports
}


def app_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line of the packaged app on ``host``:``port``."""
    script = Path(__file__).parents[1] / "screen" / "app.py"  # a path: the CLI never imports it
    flags = {**APP_SETTINGS, "server.address": host, "server.port": str(port)}
    options = [part for name, value in flags.items() for part in (f"--{name}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(script), *options]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8501,
    db: DbOption = None,
) -> None:
    """Start the app on HOST:PORT, from any folder (run `noteloop worker` beside it)."""
    open_sessions(db)  # creates or migrates the database first, with a clear error if it cannot
    if db:
        os.environ["NOTELOOP_DB"] = db
    console.print(f"noteloop on http://{host}:{port}")
    sys.stdout.flush()
    os.execv(sys.executable, app_command(host, port))


@app.command()
def demo(
    sample_notes: Annotated[
        Path | None,
        typer.Option(help="The sample_notes folder [default: the checkout's, from any folder]"),
    ] = None,
    name: Annotated[str, typer.Option(help="Demo project name")] = "demo",
    db: DbOption = None,
) -> None:
    """Seed the demo project from sample_notes/ (idempotent) and the demo admin."""
    from noteloop.usecases.demo import sample_notes_folder, seed_demo

    messages = seed_demo(open_sessions(db), sample_notes or sample_notes_folder(), name)
    for line in messages:
        console.print(line, highlight=False)
