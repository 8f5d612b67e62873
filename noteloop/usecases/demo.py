"""The demo project: the synthetic notes of ``sample_notes/``, their gold, and a demo admin.

Seeding is idempotent: ``make run`` calls it at every start and it only adds what is
missing, so a restarted demo keeps every annotation made in it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NoteloopError, NotFoundError, SchemaError
from noteloop.core.schema import LabelSchema, Role
from noteloop.db import accounts, audit, projects
from noteloop.usecases.import_export import ImportOptions, import_path, load_split_file
from noteloop.usecases.uploads import audit_import

DEMO_ADMIN = "admin"
GOLD_ANNOTATOR = "sample-gold"
# Who the audit rows of the seeding name.
SEEDER = "seed"


# The checkout the package runs from (an editable install, `make run`), where sample_notes/
# lies beside the package.
CHECKOUT = Path(__file__).resolve().parents[2]


def sample_notes_folder() -> Path:
    """The sample notes the demo seeds from: ``./sample_notes`` when the working folder has
    them, else the checkout's (so ``noteloop demo`` works from any folder).

    Raises:
        NoteloopError: neither exists (an installed package without its checkout); the
            message says where to point ``--sample-notes``.
    """
    for folder in (Path("sample_notes"), CHECKOUT / "sample_notes"):
        if (folder / "notes").is_dir():
            return folder
    raise NoteloopError(
        "the demo seeds from the sample_notes folder of a noteloop checkout, and none is "
        f"here or at {CHECKOUT}: pass --sample-notes PATH/TO/noteloop/sample_notes"
    )


def seed_demo(make_session: sessionmaker[Session], folder: Path, name: str = "demo") -> list[str]:
    """Create project ``name`` from ``folder`` unless it exists; return what was done."""
    notes = folder / "notes"
    if not notes.is_dir():
        raise NoteloopError(f"{notes}: no such folder; is --sample-notes the sample_notes folder?")
    messages = [_ensure_admin(make_session)]
    with make_session.begin() as session:
        try:
            projects.get_project(session, name)
            return [*messages, f"demo project {name} already seeded"]
        except NotFoundError:
            schema = _read_schema(folder / "schema.json")
            project = projects.create_project(session, name, schema)
            after = {"name": name, "schema": schema.to_dict()}
            audit.record_audit(
                session, SEEDER, "create_project", "projects", project.id, after=after
            )
    messages.extend(_import_notes(make_session, name, folder))
    return messages


def _read_schema(path: Path) -> LabelSchema:
    try:
        return LabelSchema.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read the demo schema ({exc})") from None


def _import_notes(make_session: sessionmaker[Session], name: str, folder: Path) -> list[str]:
    """Annotated notes as gold (with their fixed test split), then the rest as the pool."""
    split_of = load_split_file(folder / "splits.json")
    options = (
        ImportOptions("brat", annotator=GOLD_ANNOTATOR, split_of=split_of),
        ImportOptions("txt"),
    )
    gold, pool = (import_path(make_session, name, folder / "notes", o) for o in options)
    for report, used in zip((gold, pool), options, strict=True):
        audit_import(make_session, name, report, used, SEEDER, [str(folder / "notes")])
    for report in (gold, pool):
        if not report.ok:
            raise NoteloopError(
                "sample notes failed to import:\n" + "\n".join(map(str, report.refused))
            )
    return [
        f"demo project {name}: {gold.documents_added} annotated notes "
        f"({sum(1 for s in split_of.values() if s == 'test')} held out for testing) and "
        f"{pool.documents_added} unannotated notes"
    ]


def _ensure_admin(make_session: sessionmaker[Session]) -> str:
    with make_session.begin() as session:
        try:
            accounts.get_user(session, DEMO_ADMIN)
            return f"demo admin: user {DEMO_ADMIN!r} (password as set when it was created)"
        except NotFoundError:
            password = accounts.create_user(session, DEMO_ADMIN, Role.ADMIN, "", [], by=SEEDER)
    return f"demo admin created: user {DEMO_ADMIN!r}, password {password!r}"
