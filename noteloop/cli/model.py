"""The model of a project: ``train``, ``predict``, ``evaluate``, the ``worker`` and its
``jobs``, and the versions a lead chooses from (``model``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from noteloop.cli.common import (
    CLI_ACTOR,
    DbOption,
    ProjectOption,
    app,
    console,
    fail,
    model_app,
    open_sessions,
    progress_bar,
)
from noteloop.db import engine as db_engine
from noteloop.db import projects

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
    from noteloop.usecases import modeling
    sessions = open_sessions(db)
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
    with progress_bar() as bar:
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
    from noteloop.usecases import modeling
    with progress_bar() as bar:
        task = bar.add_task("predicting", total=None)
        stored, predictions = modeling.predict_project(
            open_sessions(db),
            project,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            models_dir=models_dir,
        )
    console.print(f"{stored} suggestions stored for {len(predictions)} notes")


@app.command()
def evaluate(
    project: ProjectOption, models_dir: ModelsOption = Path("models"), db: DbOption = None
) -> None:
    """Score the serving model on the project's annotated test documents (read from the
    database into --models-dir when this host lacks it)."""
    from noteloop.usecases import modeling
    evaluation = modeling.evaluate_project(open_sessions(db), project, models_dir)
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
        raise fail(str(exc).replace("`device`", "--device")) from None
    shown = db_engine.shown_url(config.db_url)
    console.print(f"worker {config.worker_id} on {shown}, {threads} thread(s)")
    done = run_worker(config)
    console.print(f"worker stopped after {done} job(s)")


@app.command()
def jobs(project: ProjectOption, db: DbOption = None) -> None:
    """List the project's training jobs, newest first."""
    from noteloop.db import jobs as job_rows

    with open_sessions(db)() as session:
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
        open_sessions(db), lambda session: job_rows.request_cancel(session, job_id)
    )
    console.print(f"job {job_id}: {status}" + (", cancel requested" if status == "running" else ""))


@model_app.command("list")
def model_list(project: ProjectOption, db: DbOption = None) -> None:
    """List the project's model versions, newest first: scores, which one serves, and why."""
    from noteloop.db import training

    with open_sessions(db)() as session:
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
        open_sessions(db),
        lambda session: serving.choose_version(session, project, version, CLI_ACTOR, reason),
    )
    name, job_id = chosen.name, job.id
    state = "queued" if created else "queued already"
    console.print(
        f"{name} serves project {project} now; predict job {job_id} {state} "
        "(`noteloop worker` suggests for the pool with it)",
        highlight=False,
    )
