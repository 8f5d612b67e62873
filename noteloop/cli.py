"""The ``noteloop`` command: database set-up, projects, users, import, export, statistics.

Environment variables are read here, once: ``NOTELOOP_DB`` names the database (a path or
any SQLAlchemy URL). Every other module takes what it needs as arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.active import DEFAULT_STRATEGY
from noteloop.core.errors import ImportFileError, NoteloopError, SchemaError
from noteloop.core.formats.brat import read_annotation_conf
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, MB, bytes_of, megabytes
from noteloop.core.formats.registry import READERS, WRITERS
from noteloop.core.schema import LabelSchema, Role, Split
from noteloop.db import accounts, audit, projects
from noteloop.db import engine as db_engine
from noteloop.db.errors import database_refusal
from noteloop.transfer import (
    ExportOptions,
    ImportAs,
    ImportOptions,
    ImportReport,
    export_project,
    import_path,
    load_split_file,
)
from noteloop.uploads import MAX_FILE_BYTES, audit_import

if TYPE_CHECKING:
    from noteloop.core.fewshot import TransferPoint

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
            raise _fail(str(exc)) from None
        except SQLAlchemyError as exc:
            raise _fail(str(database_refusal(exc))) from None

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


def _sessions(db: str | None) -> sessionmaker[Session]:
    engine = db_engine.init_db(db_engine.normalize_url(db))
    return db_engine.session_factory(engine)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


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
    try:
        label_schema = load_schema_file(schema) if schema else LabelSchema()
        with _sessions(db).begin() as session:
            created = projects.create_project(session, name, label_schema)
            after = {"name": name, "schema": label_schema.to_dict()}
            audit.record_audit(
                session, CLI_ACTOR, "create_project", "projects", created.id, after=after
            )
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
        for project in projects.list_projects(session):
            console.print(project.name)


# Who the audit rows of the command line name: it runs with the database's own rights.
CLI_ACTOR = "cli"


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
    try:
        with _sessions(db).begin() as session:
            # The Users page's writer: the same checks and the same audit row.
            secret = accounts.create_user(
                session, name, role.value, password or "", project or [], by=CLI_ACTOR
            )
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    shown = "" if password else f" with password {secret}"
    console.print(f"user {name} ({role.value}) created{shown}")


def _refuse_empty(password: str | None) -> None:
    # An empty --password would otherwise quietly become a random one nobody noted.
    if password is not None and not password.strip():
        raise _fail("--password must not be empty; leave it out to get a random one", 2)


@user_app.command("list")
def user_list(db: DbOption = None) -> None:
    """List the users: role, whether they may log in, their projects, when created."""
    with _sessions(db)() as session:
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
    try:
        with _sessions(db).begin() as session:
            secret = accounts.reset_password(session, name, password or "", by=CLI_ACTOR)
    except NoteloopError as exc:
        raise _fail(str(exc)) from None
    shown = "" if password else f" to {secret}"
    console.print(f"password of {name} reset{shown}")


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
        raise _fail(f"unknown format {fmt!r}; choose one of: {', '.join(READERS)}", 2)
    try:
        split_of = load_split_file(split_file) if split_file else {}
    except ImportFileError as exc:
        raise _fail(str(exc)) from None
    options = ImportOptions(
        fmt, as_, annotator, split, split_of, extend_schema, bytes_of(max_mb), repair
    )
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
    audit_import(sessions, project, report, options, CLI_ACTOR, [str(path)])
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
        raise _fail(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}", 2)
    options = ExportOptions(fmt, annotator, not without_text, split)
    with _sessions(db)() as session, _progress() as bar:
        task = bar.add_task("exporting", total=None)
        summary = export_project(
            session, project, out, options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(summary)


@app.command()
def stats(project: ProjectOption, db: DbOption = None) -> None:
    """Documents, annotations, spans and relations per label."""
    with _sessions(db)() as session:
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


ModelsOption = Annotated[
    Path,
    typer.Option("--models-dir", envvar="NOTELOOP_MODELS", help="Where trained models are kept"),
]


@app.command()
def train(
    project: ProjectOption,
    base_model: Annotated[
        str | None, typer.Option(help="Local Hugging Face encoder folder [default: MiniLM]")
    ] = None,
    full_finetune: Annotated[
        bool, typer.Option(help="Train every encoder weight instead of a LoRA adapter")
    ] = False,
    epochs: Annotated[int | None, typer.Option(help="Training epochs")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = None,
    queue: Annotated[
        bool, typer.Option(help="Queue the job for the background worker instead")
    ] = False,
    models_dir: ModelsOption = Path("models"),
    db: DbOption = None,
) -> None:
    """Train a model on the project's pool gold, evaluate it on the test gold, register it."""
    from noteloop import modeling

    sessions = _sessions(db)
    if queue:
        _queue_training(
            sessions,
            project,
            modeling.config_with(
                {},
                base_model=base_model,
                epochs=epochs,
                lora_r=lora_r,
                full_finetune=full_finetune or None,
            ),
        )
        return
    with sessions() as session:
        settings = projects.get_project(session, project).settings
    config = modeling.config_with(
        settings.get("model_config", {}),
        base_model=base_model,
        epochs=epochs,
        lora_r=lora_r,
        threads=threads,
        full_finetune=full_finetune or None,
    )
    with _progress() as bar:
        task = bar.add_task("training", total=None)
        trained = modeling.train_project(
            sessions,
            project,
            models_dir,
            config,
            backend=str(settings.get("backend", "encoder")),
            on_metric=lambda e: bar.update(
                task, description=f"epoch {e.epoch} step {e.step} {e.name} {e.value:.3f}"
            ),
            on_phase=lambda phase, _: bar.update(task, description=phase),
        )
    console.print(
        f"model version {trained.name}: {trained.n_train_docs} gold notes, "
        f"{trained.seconds:.0f} s of training, saved in {trained.path}"
    )
    console.print(f"{'serves' if trained.serves else 'kept as a candidate'}: {trained.verdict}")
    if trained.evaluation is not None:
        _print_evaluation(trained.evaluation.to_dict())


def _queue_training(sessions: sessionmaker[Session], project: str, config: dict) -> None:  # type: ignore[type-arg]
    from noteloop.db import jobs as job_rows

    with sessions.begin() as session:
        job, created = job_rows.enqueue(
            session, projects.get_project(session, project), reason="train now", config=config
        )
    state = "queued" if created else f"already {job.status}"
    console.print(f"training job {job.id} {state}; `noteloop worker` runs it")


@app.command()
def predict(
    project: ProjectOption, models_dir: ModelsOption = Path("models"), db: DbOption = None
) -> None:
    """Suggest spans and relations for every pool note without gold, with the serving model
    (read from the database into --models-dir when this host lacks it)."""
    from noteloop import modeling

    with _progress() as bar:
        task = bar.add_task("predicting", total=None)
        try:
            stored, predictions = modeling.predict_project(
                _sessions(db),
                project,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                models_dir=models_dir,
            )
        except NoteloopError as exc:
            raise _fail(str(exc)) from None
    console.print(f"{stored} suggestions stored for {len(predictions)} notes")


@app.command()
def evaluate(
    project: ProjectOption, models_dir: ModelsOption = Path("models"), db: DbOption = None
) -> None:
    """Score the serving model on the project's annotated test documents (read from the
    database into --models-dir when this host lacks it)."""
    from noteloop import modeling

    evaluation = modeling.evaluate_project(_sessions(db), project, models_dir)
    _print_evaluation(evaluation.to_dict())


def _print_evaluation(ev: dict) -> None:  # type: ignore[type-arg]
    table = Table(title=f"test documents: {ev['n_docs']}")
    for column in ("task", "P", "R", "F1", "95% CI of F1", "TP", "FP", "FN"):
        table.add_column(column, justify="left" if column == "task" else "right")
    rows = [
        ("entity strict", ev["entity"]["strict"], ev["ci"].get("entity_strict")),
        ("entity lenient", ev["entity"]["lenient"], ev["ci"].get("entity_lenient")),
        ("relation", ev["relation"]["micro"], ev["ci"].get("relation")),
    ]
    for name, prf, ci in rows:
        shown_ci = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-"
        table.add_row(
            name,
            f"{prf['p']:.3f}",
            f"{prf['r']:.3f}",
            f"{prf['f1']:.3f}",
            shown_ci,
            str(prf["tp"]),
            str(prf["fp"]),
            str(prf["fn"]),
        )
    console.print(table)
    labels = Table(title="per label (strict span F1 / relation F1)")
    labels.add_column("label")
    labels.add_column("F1", justify="right")
    labels.add_column("support", justify="right")
    per_label = {**ev["entity"]["per_label"]["strict"], **ev["relation"]["per_label"]}
    for label, prf in sorted(per_label.items()):
        labels.add_row(label, f"{prf['f1']:.3f}", str(prf["tp"] + prf["fn"]))
    console.print(labels)


@app.command()
def worker(
    threads: Annotated[
        int,
        typer.Option(envvar="NOTELOOP_WORKER_THREADS", help="torch CPU threads for the worker"),
    ] = 1,
    poll: Annotated[float, typer.Option(help="Seconds between looks for work")] = 2.0,
    max_jobs: Annotated[int, typer.Option(help="Stop after this many jobs (0: never)")] = 0,
    stale_after: Annotated[
        float, typer.Option(help="Seconds without heartbeat before a job counts as orphaned")
    ] = 60.0,
    device: Annotated[
        str,
        typer.Option(
            envvar="NOTELOOP_WORKER_DEVICE",
            help="cpu, cuda, cuda:N (this worker uses GPU N only) or auto; "
            "default: the project's model config",
        ),
    ] = "",
    models_dir: ModelsOption = Path("models"),
    db: DbOption = None,
) -> None:
    """Run the background worker: train when due, predict the pool, rank the queue.
    Run one per GPU, on as many hosts as share the database."""
    import logging

    from noteloop.worker import WorkerConfig, run_worker

    # Once, here at the entry point: `make run` sends stderr to worker.log, where a person
    # reads which job ran when and how it ended (the worker logs one line at each end).
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = WorkerConfig(
            db_engine.normalize_url(db),
            models_dir,
            threads=threads,
            poll_seconds=poll,
            stale_after_seconds=stale_after,
            max_jobs=max_jobs,
            device=device,
        )
    except ValueError as exc:
        raise _fail(str(exc).replace("`device`", "--device")) from None
    shown = db_engine.shown_url(config.db_url)
    console.print(f"worker {config.worker_id} on {shown}, {threads} thread(s)")
    try:
        done = run_worker(config)
    except NoteloopError as exc:  # a GPU it cannot see: said before any job starts
        raise _fail(str(exc)) from None
    console.print(f"worker stopped after {done} job(s)")


@app.command()
def jobs(project: ProjectOption, db: DbOption = None) -> None:
    """List the project's training jobs, newest first."""
    from noteloop.db import jobs as job_rows

    with _sessions(db)() as session:
        rows = job_rows.jobs_of(session, projects.get_project(session, project))
    table = Table(title=f"jobs of {project}")
    for column in ("id", "kind", "status", "progress", "phase", "reason", "created", "error"):
        table.add_column(column)
    for job in rows:
        table.add_row(
            str(job.id),
            job.kind,
            job.status,
            f"{job.progress:.0%}",
            job.phase,
            job.reason,
            f"{job.created_at:%Y-%m-%d %H:%M}",
            job.error[:80],
        )
    console.print(table)


@app.command()
def cancel(job_id: Annotated[int, typer.Argument(help="Job id")], db: DbOption = None) -> None:
    """Cancel a queued job, or ask a running one to stop at its next step."""
    from noteloop.db import jobs as job_rows

    status = db_engine.run_transaction(
        _sessions(db), lambda session: job_rows.request_cancel(session, job_id)
    )
    console.print(f"job {job_id}: {status}" + (", cancel requested" if status == "running" else ""))


# --------------------------------------------------------------------------- model versions

model_app = _Reporting(
    help="List model versions and choose the one that serves.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


@model_app.command("list")
def model_list(project: ProjectOption, db: DbOption = None) -> None:
    """List the project's model versions, newest first: scores, which one serves, and why."""
    from noteloop.db import training

    with _sessions(db)() as session:
        rows = training.version_rows(session, projects.get_project(session, project))
    table = Table(title=f"model versions of {project}")
    for column in ("version", "created", "backend", "status", "train notes", "trained from"):
        table.add_column(column)
    for column in ("entity strict F1 (95% CI)", "relation F1", "int8 on CPU", "serving", "verdict"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            row.backend,
            row.status,
            str(row.n_train_docs),
            row.trained_from,
            _f1_with_ci(row.entity_strict_f1, row.entity_strict_ci),
            "-" if row.relation_f1 is None else f"{row.relation_f1:.3f}",
            row.int8,
            "serving" if row.serving else "",
            row.verdict,
        )
    console.print(table)


def _f1_with_ci(f1: float | None, ci: tuple[float, float] | None) -> str:
    if f1 is None:
        return "-"
    return f"{f1:.3f}" + ("" if ci is None else f" ({ci[0]:.3f}-{ci[1]:.3f})")


@model_app.command("use")
def model_use(
    version: Annotated[str, typer.Argument(help="The version's name (`noteloop model list`)")],
    project: ProjectOption,
    reason: Annotated[
        str, typer.Option(help="Why (kept with the choice and in the audit log)")
    ] = "",
    db: DbOption = None,
) -> None:
    """Serve VERSION (roll back or forward); the worker then suggests for the pool with it."""
    from noteloop.db import serving

    chosen, job, created = db_engine.run_transaction(
        _sessions(db),
        lambda session: serving.choose_version(session, project, version, CLI_ACTOR, reason),
    )
    name, job_id = chosen.name, job.id
    state = "queued" if created else "queued already"
    console.print(
        f"{name} serves project {project} now; predict job {job_id} {state} "
        "(`noteloop worker` suggests for the pool with it)",
        highlight=False,
    )


def read_corpus(path: Path, fmt: str, *, repair: bool, strict: bool) -> Any:
    """The corpus's documents (:func:`noteloop.core.formats.registry.read_corpus`), with
    every refused file, repair and skipped note printed."""
    from noteloop.core.formats.registry import read_corpus as read_all
    from noteloop.corpora import reading_lines

    read = read_all(path, fmt, repair=repair, strict=strict)
    for line in reading_lines(path.name, read.refused, read.notes):
        console.print(line, highlight=False, markup=False)
    return read


def _load_corpus(spec: str, *, seed: int = 0, repair: bool, strict: bool) -> Any:
    """:func:`noteloop.corpora.load_corpus`, with what its reading left out printed."""
    from noteloop import corpora

    corpus = corpora.load_corpus(spec, seed=seed, repair=repair, strict=strict)
    for line in corpora.reading_lines(corpus.name, corpus.refused, corpus.notes):
        console.print(line, highlight=False, markup=False)
    return corpus


def _read_summary(read: Any) -> dict[str, Any]:
    """What a results JSON records of the corpus's reading; empty when nothing happened."""
    if not read.refused_files and not read.notes:
        return {}
    return {
        "refused_files": read.refused_files,
        "refused": [str(e) for e in read.refused],
        "notes": [str(n) for n in read.notes],
    }


@app.command()
def simulate(
    corpus: Annotated[Path, typer.Argument(help="Annotated corpus: a file or a folder")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="brat, jsonl, pubtator or bioc")],
    out: Annotated[Path, typer.Option(help="Where to write the results JSON")],
    strategy: Annotated[str, typer.Option(help="Active-learning strategy")] = DEFAULT_STRATEGY,
    seed: Annotated[int, typer.Option(help="Seed of the split, the picks and the model")] = 0,
    initial: Annotated[int, typer.Option(help="Documents in round 0")] = 10,
    batch: Annotated[int, typer.Option(help="Documents added per round")] = 10,
    rounds: Annotated[int, typer.Option(help="Rounds, round 0 included")] = 5,
    split_file: Annotated[
        Path | None, typer.Option(help='JSON {"train": [ids], "test": [ids]}')
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Test share without a split file")] = 0.25,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per round")] = None,
    entity_types: Annotated[
        str | None, typer.Option(help="Comma-separated entity types to keep (default: all)")
    ] = None,
    no_relations: Annotated[bool, typer.Option(help="Leave relations out")] = False,
    backend: Annotated[str, typer.Option(help="Model backend")] = "encoder",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = 1,
    repair: RepairOption = False,
    strict: StrictOption = False,
) -> None:
    """Replay the annotation loop on an annotated corpus: select, train, evaluate, repeat."""
    from noteloop import modeling
    from noteloop.core import simulate as sim
    from noteloop.core.schema import schema_from_documents

    try:
        read = read_corpus(corpus, fmt, repair=repair, strict=strict)
        docs = read.docs
        if not docs:
            raise _fail(f"{corpus}: no document could be read")
        train_docs, test_docs = sim.split_documents(
            docs, split_file, test_fraction=test_fraction, seed=seed, absent=read.absent_ids()
        )
        config = modeling.config_with({}, epochs=epochs, threads=threads, seed=seed)
        with _progress() as bar:
            task = bar.add_task("simulating", total=rounds)
            result = sim.simulate(
                train_docs,
                test_docs,
                schema_from_documents(docs),
                lambda: modeling.make_extractor(backend, config),
                strategy=strategy,
                seed=seed,
                initial=initial,
                batch=batch,
                rounds=rounds,
                entity_types=entity_types.split(",") if entity_types else None,
                relations=not no_relations,
                corpus=corpus.name,
                backend=backend,
                on_round=lambda point: bar.update(task, advance=1),
            )
    except (NoteloopError, ValueError) as exc:
        raise _fail(str(exc)) from None
    result = dataclasses.replace(result, corpus_read=_read_summary(read))
    out.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    for point in result.to_dict()["points"]:
        console.print(
            f"round {point['round']}: {point['n_docs']} docs, entity strict F1 "
            f"{point['entity']['strict']['f1']:.3f}, lenient "
            f"{point['entity']['lenient']['f1']:.3f}, relation {point['relation']['f1']:.3f}"
        )
    console.print(f"results in {out}")


@app.command("simulate-report")
def simulate_report(
    results: Annotated[list[Path], typer.Argument(help="results JSON files of one corpus")],
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("curves.html"),
) -> None:
    """Draw simulated learning curves against notes and against words read: mean and spread
    over seeds, a line per strategy; print the areas under them."""
    from noteloop.core.curves import auc_table, effort_table
    from noteloop.report import simulation_report

    try:
        data = [json.loads(path.read_text(encoding="utf-8")) for path in results]
        _, summaries = simulation_report(data, out)
    except (OSError, json.JSONDecodeError, ValueError, NoteloopError) as exc:
        raise _fail(str(exc)) from None
    _print_table("normalised areas under the curves, mean ± sd over seeds", *auc_table(summaries))
    header, rows = effort_table(summaries)
    if rows:
        title = ("annotator effort on the test notes, keystroke-level model: seconds per note "
                 "to reach the gold with the round's suggestions and from scratch")
        _print_table(title, header, rows)
    console.print(f"learning curves of {len(data)} run(s), per note and per word read, in {out}")


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _csv_ints(value: str, option: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise _fail(f"{option} must be comma-separated whole numbers, got {value!r}", 2) from None


@app.command()
def transfer(
    train: Annotated[
        str, typer.Option("--train", help="Source corpora, comma-separated (PATH or NAME=PATH)")
    ],
    target: Annotated[str, typer.Option(help="The held-out corpus (PATH or NAME=PATH)")],
    out: Annotated[Path, typer.Option(help="Where to write the results JSON")],
    shots: Annotated[str, typer.Option(help="Target training documents per point")] = "0,5,10,20",
    backend: Annotated[str, typer.Option(help="generative or encoder")] = "generative",
    seed: Annotated[int, typer.Option(help="Seed of the splits, the shots and the model")] = 0,
    test_docs: Annotated[int, typer.Option(help="Target test documents used (0: all)")] = 0,
    source_docs: Annotated[
        int, typer.Option(help="Training documents per source corpus (0: all)")
    ] = 0,
    max_words: Annotated[
        int, typer.Option(help="Clip every note to about this many words (0: whole notes)")
    ] = 0,
    top_types: Annotated[
        int, typer.Option(help="Keep each corpus's N most frequent entity types (0: all)")
    ] = 0,
    definitions: Annotated[
        Path | None, typer.Option(help='JSON {"Type": "definition"} for types without one')
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: automatic)")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer")] = None,
    no_relations: Annotated[bool, typer.Option(help="Concepts only")] = False,
    base_model: Annotated[
        str | None, typer.Option(help="Local model folder [default: the packaged one]")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = 1,
    keep_multitask: Annotated[
        Path | None, typer.Option(help="Keep the multi-task starting point in this folder")
    ] = None,
    multitask_from: Annotated[
        Path | None,
        typer.Option(help="Reuse a starting point trained on these sources (kept earlier)"),
    ] = None,
    repair: RepairOption = False,
    strict: StrictOption = False,
) -> None:
    """Leave-one-dataset-out: zero- and few-shot F1 on a held-out corpus, with and
    without a multi-task starting point tuned on the other corpora."""
    import tempfile

    from noteloop import corpora, modeling
    from noteloop.core import fewshot

    try:
        config = modeling.config_with(
            {}, epochs=epochs, threads=threads, seed=seed, max_new_tokens=max_new_tokens,
            base_model=base_model, relations=False if no_relations else None,
        )
        if backend == "encoder":
            config.pop("max_new_tokens", None)
            config.pop("relations", None)
        names = definitions and corpora.load_definitions(definitions)
        reduce = {"max_words": max_words, "n_types": top_types, "definitions": names or {}}
        loaded = [_load_corpus(spec, seed=seed, repair=repair, strict=strict)
                  for spec in [target, *(s for s in train.split(",") if s.strip())]]
        read = {c.name: c.read_summary() for c in loaded if c.read_summary()}
        goal = fewshot.prepare(loaded[0], **reduce)
        goal = fewshot.Corpus(goal.name, goal.schema, goal.train,
                              tuple(fewshot.sample(goal.test, test_docs, seed)))
        sources = [fewshot.prepare(c, **reduce) for c in loaded[1:]]
        sources = [fewshot.Corpus(c.name, c.schema, tuple(fewshot.sample(c.train, source_docs,
                                                                          seed)), c.test)
                   for c in sources]
        with tempfile.TemporaryDirectory(prefix="noteloop-transfer-") as tmp:
            workdir = keep_multitask or Path(tmp)
            if multitask_from is not None and not (multitask_from / "noteloop.json").is_file():
                raise NoteloopError(f"--multitask-from {multitask_from}: not a saved model")
            fresh, pretrain, zero_shot = modeling.transfer_factories(
                backend, config, workdir, multitask_from
            )
            result = fewshot.transfer_curves(
                sources, goal, _csv_ints(shots, "--shots"), fresh, pretrain,
                backend=backend, seed=seed, can_zero_shot=zero_shot, relations=not no_relations,
                on_point=lambda p: console.print(_transfer_line(p)),
            )
    except (NoteloopError, ValueError) as exc:
        raise _fail(str(exc)) from None
    data = result.to_dict() | ({"corpus_read": read} if read else {})
    out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    console.print(f"results in {out}")


def _transfer_line(p: TransferPoint) -> str:
    given = p.relation_gold_entities
    return (
        f"{p.start} {p.shots} shots: entity strict F1 {p.entity_strict.f1:.3f}, "
        f"lenient {p.entity_lenient.f1:.3f}, relation {p.relation.f1:.3f}"
        + ("" if given is None else f" ({given.f1:.3f} on gold entities)")
        + f" ({p.train_seconds:.0f} s training, {p.predict_seconds:.0f} s predicting)"
    )


@app.command()
def multitask(
    out: Annotated[Path, typer.Option(help="Folder to publish the starting point in")],
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Project(s) whose pool gold to use")
    ] = None,
    corpus: Annotated[
        list[str] | None, typer.Option(help="Annotated corpus (PATH or NAME=PATH), repeatable")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Local model folder [default: the packaged one]")
    ] = None,
    repair: RepairOption = False,
    strict: StrictOption = False,
    db: DbOption = None,
) -> None:
    """Train one generative adapter on both tasks of several projects and corpora: a
    starting point for new projects (`noteloop project backend NAME generative --init-adapter`)."""
    from noteloop import modeling

    try:
        datasets = modeling.project_datasets(_sessions(db), project) if project else []
        for spec in corpus or []:
            loaded = _load_corpus(spec, repair=repair, strict=strict)
            datasets.append((list(loaded.train), loaded.schema))
        config = modeling.config_with({}, epochs=epochs, threads=threads, base_model=base_model)
        path, seconds = modeling.train_multitask(datasets, config, out.parent, out.name)
    except (NoteloopError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"multi-task starting point in {path} ({seconds:.0f} s of training)")


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

    with _sessions(db).begin() as session:
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
    "server.maxUploadSize": str(MAX_FILE_BYTES // MB),  # what noteloop.uploads imports
}


def app_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line of the packaged app on ``host``:``port``."""
    script = Path(__file__).with_name("app.py")
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
    _sessions(db)  # creates or migrates the database first, with a clear error if it cannot
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
    from noteloop.seed import sample_notes_folder, seed_demo

    messages = seed_demo(_sessions(db), sample_notes or sample_notes_folder(), name)
    for line in messages:
        console.print(line, highlight=False)


# --------------------------------------------------------------------------- documents

documents_app = _Reporting(help="List, retire and restore documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")
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

    with _sessions(db)() as session:
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
        _sessions(db), lambda session: change(session, project, ids, CLI_ACTOR, reason)
    )
    console.print(
        f"{verb}d {len(changed)} document(s) of {project}: {', '.join(changed) or '-'}",
        highlight=False,
    )
    left = [i for i in dict.fromkeys(ids) if i not in changed]
    if left:
        state = "retired" if verb == "retire" else "live"
        console.print(f"{state} already, left as they were: {', '.join(left)}", highlight=False)


if __name__ == "__main__":
    app()
