"""The background worker: claims jobs from the database, trains, evaluates, predicts, ranks.

It talks to the app only through the database. One loop: recover jobs of dead workers,
queue the projects whose trigger fired, claim the oldest job, run it to a terminal status.
While a job runs, a heartbeat thread records liveness and progress and reads the cancel
flag, so a cancelled job stops at its next training step.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from noteloop import modeling
from noteloop.core import active
from noteloop.core.model.base import DocumentPrediction, MetricEvent, TrainingCancelled
from noteloop.db import documents, jobs, learning, projects
from noteloop.db.engine import init_db, session_factory
from noteloop.db.models import ModelVersion, Project, TrainingJob

log = logging.getLogger("noteloop.worker")
TRAINING_SHARE = 0.7  # of a job's progress bar: train_project; then predicting and ranking


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker runs; the CLI builds it from flags and environment variables."""

    db_url: str
    models_dir: Path
    threads: int = field(default=1, metadata={"help": "torch CPU threads for training"})
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 3.0
    stale_after_seconds: float = 60.0
    worker_id: str = field(default_factory=_worker_id)
    max_jobs: int = 0  # stop after this many jobs; 0 = run until stopped

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"`threads` must be >= 0, got {self.threads}")
        if self.heartbeat_seconds * 3 > self.stale_after_seconds:
            raise ValueError(
                "`stale_after_seconds` must be at least 3 heartbeats, or a slow step would "
                "look like a dead worker"
            )


class Heartbeat:
    """A thread that writes the job's phase and progress and reads its cancel flag."""

    def __init__(self, make_session: sessionmaker[Session], job_id: int, interval: float):
        self._make_session = make_session
        self._job_id = job_id
        self._interval = interval
        self._phase, self._progress = "starting", 0.0
        self._stopped = threading.Event()
        self.cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._interval * 2)

    def set_phase(self, phase: str, progress: float) -> None:
        self._phase, self._progress = phase, progress
        self.beat()

    def on_metric(self, event: MetricEvent) -> None:
        """Training events: the phase shows the loss, the bar the share of steps done
        (training is the first 70% of a job; the next beat writes both)."""
        if event.name == "loss":
            self._phase = f"training: epoch {event.epoch}, loss {event.value:.3f}"
        elif event.name == "progress":
            self._progress = TRAINING_SHARE * modeling.TRAINING_STEPS_SHARE * event.value

    def beat(self) -> None:
        with self._make_session.begin() as session:
            if jobs.heartbeat(session, self._job_id, phase=self._phase, progress=self._progress):
                self.cancelled.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.beat()
            except Exception:  # a busy database must not kill the job; the next beat retries
                log.exception("heartbeat of job %s failed", self._job_id)


class Worker:
    """The worker loop over one database."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        # Every worker transaction takes the write lock up front: SQLite cannot upgrade a
        # read transaction to a write once another connection (the heartbeat thread, the
        # app) has written, and the worker's transactions are all short.
        self.make_session = session_factory(init_db(config.db_url), immediate=True)
        self.stop = threading.Event()

    def run(self) -> int:
        """Run until stopped (or ``max_jobs`` jobs); returns the number of jobs run."""
        self._prepare()
        done = 0
        while not self.stop.is_set():
            self.recover_stale()
            self.queue_due_projects()
            job = self.claim()
            if job is None:
                self.stop.wait(self.config.poll_seconds)
                continue
            self.run_job(job)
            done += 1
            if self.config.max_jobs and done >= self.config.max_jobs:
                break
        return done

    def _prepare(self) -> None:
        """Drop model folders a dead worker left half-written, seed empty queues."""
        for tmp in self.config.models_dir.glob("*/.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        self.cold_start_queues()

    def recover_stale(self) -> list[int]:
        """Requeue the jobs of workers that died (their heartbeat went stale)."""
        with self.make_session.begin() as session:
            stale = timedelta(seconds=self.config.stale_after_seconds)
            recovered = jobs.recover_stale(session, stale)
        if recovered:
            log.warning("recovered job(s) %s from a worker that died", recovered)
        return recovered

    def queue_due_projects(self) -> list[int]:
        """Queue a training job for every project whose trigger fired; returns the job ids."""
        queued = []
        with self.make_session.begin() as session:
            for project in projects.list_projects(session):
                reason = _due_reason(session, project)
                if reason:
                    job, created = jobs.enqueue(session, project, reason=reason)
                    queued += [job.id] if created else []
        return queued

    def claim(self) -> TrainingJob | None:
        with self.make_session.begin() as session:
            return jobs.claim_next(session, self.config.worker_id)

    def run_job(self, job: TrainingJob) -> str:
        """Run one job to a terminal status, whatever happens inside; returns the status."""
        self._log_start(job)
        with Heartbeat(self.make_session, job.id, self.config.heartbeat_seconds) as beat:
            status, error, version_id = "failed", "", None
            try:
                version_id = self._train_predict_rank(job, beat)
                status = "done"
            except TrainingCancelled:
                status, error = "cancelled", "cancelled while training"
            except Exception as exc:  # the job must end terminal with its error, whatever broke
                error = f"{type(exc).__name__}: {exc}"
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            finally:
                with self.make_session.begin() as session:
                    jobs.finish(session, job.id, status, error=error, model_version_id=version_id)
                # After the finish committed: a log line must never undo a job's end.
                self._log_end(job.id)
        return status

    def _log_start(self, job: TrainingJob) -> None:
        # worker.log is where a person finds which job ran when, and why it was queued.
        with self.make_session() as session:
            project = session.get(Project, job.project_id)
            name = project.name if project else f"#{job.project_id}"
        log.info(
            "job %s started: project %s, kind %s, reason %r, attempt %s",
            job.id, name, job.kind, job.reason, job.attempts,
        )  # fmt: skip

    def _log_end(self, job_id: int) -> None:
        """One line with the job's end as stored: status, what came of it, how long it ran."""
        with self.make_session() as session:
            row = session.get(TrainingJob, job_id, populate_existing=True)
            if row is None:  # its project was deleted while it ran: jobs cascade with it
                log.info("job %s ended; its project is gone", job_id)
                return
            version = session.get(ModelVersion, row.model_version_id or 0)
        if row.status == "done":
            outcome = f"model version {version.name if version else '(none)'}"
        else:
            outcome = (row.error.splitlines() or ["no error recorded"])[0]
        started, finished = row.started_at, row.finished_at
        took = (finished - started).total_seconds() if started and finished else 0.0
        log.info("job %s %s after %.1fs: %s", job_id, row.status, took, outcome)

    def _train_predict_rank(self, job: TrainingJob, beat: Heartbeat) -> int | None:
        """Run a job of either kind; returns the model version it made or predicted with."""
        with self.make_session() as session:
            project = session.get(Project, job.project_id)
            assert project is not None  # jobs cascade-delete with their project
            name, settings = project.name, dict(project.settings)
        if job.kind == "predict":
            return self._predict_rank(name, settings, beat, start=0.0)
        config = {**settings.get("model_config", {}), **job.config, "threads": self.config.threads}
        trained = modeling.train_project(
            self.make_session,
            name,
            self.config.models_dir,
            config,
            backend=settings.get("backend", "encoder"),
            on_metric=beat.on_metric,
            should_stop=beat.cancelled.is_set,
            on_phase=lambda phase, f: beat.set_phase(phase, TRAINING_SHARE * f),
        )
        if not trained.serves:
            # The pool keeps the serving version's suggestions and queue: predicting with a
            # candidate would show annotators a model the project's rule kept back.
            beat.set_phase(f"{trained.name} kept as a {trained.verdict}", 1.0)
            return trained.version_id
        self._predict_rank(name, settings, beat, start=0.75)
        return trained.version_id

    def _predict_rank(
        self, name: str, settings: dict[str, Any], beat: Heartbeat, *, start: float
    ) -> int:
        """Suggest for the pool with the serving version and rank the queue with it; the
        progress bar runs from ``start`` to the end. Returns the serving version's id."""
        share = 0.95 - start
        with self.make_session() as session:  # read once: a lead may choose another meanwhile
            version_id, path = modeling.latest_version(session, name)
        beat.set_phase("predicting the pool", start)
        _, predictions = modeling.predict_project(
            self.make_session,
            name,
            on_progress=lambda done, total: beat.set_phase(
                f"predicting the pool: {done}/{total}", start + share * done / max(total, 1)
            ),
            version=(version_id, path),
        )
        beat.set_phase("ranking the pool", 0.97)
        rank_queue(
            self.make_session,
            name,
            predictions,
            version_id,
            strategy=settings.get("strategy", active.DEFAULT_STRATEGY),
        )
        return version_id

    def cold_start_queues(self) -> None:
        """Give every project without a model and without a queue a first, diverse queue."""
        with self.make_session.begin() as session:
            for project in projects.list_projects(session):
                if learning.queue(session, project) or learning.model_versions(session, project):
                    continue
                pending = modeling.unannotated_pool(session, project.name)
                ranking = active.cold_start([d.text for _, d in pending], None, seed=0)
                entries = [
                    (pending[i][0], s, {"reason": r, "strategy": "cold-start"})
                    for i, s, r in zip(
                        ranking.indices, ranking.scores, ranking.reasons, strict=True
                    )
                ]
                learning.replace_queue(
                    session, project, entries, strategy="cold-start", model_version_id=None
                )


def _due_reason(session: Session, project: Project) -> str:
    state = jobs.trigger_state(session, project)
    if state.due:
        return state.reason
    minutes = float(project.settings.get("train_every_minutes", 0) or 0)
    if state.gold_in_pool > state.trained_on and jobs.schedule_due(session, project, minutes):
        return f"scheduled every {minutes:g} minutes, with new gold since the last model"
    return ""


def rank_queue(
    make_session: sessionmaker[Session],
    project_name: str,
    predictions: list[tuple[int, DocumentPrediction]],
    version_id: int | None,
    *,
    strategy: str,
    seed: int = 0,
) -> int:
    """Rank the unannotated pool by ``strategy`` and store it as the project's queue."""
    with make_session.begin() as session:
        project = projects.get_project(session, project_name)
        timings = learning.annotation_timings(session, project)
        words = {
            row: len(documents.get_document(session, row).text.split()) for row, _ in predictions
        }
        ranking = active.rank_pool(
            [p for _, p in predictions],
            strategy,
            seed=seed,
            lengths=[words[row] for row, _ in predictions],
            seconds_per_note=timings,
        )
        entries = [
            (
                predictions[i][0],
                score,
                {
                    "reason": reason,
                    "strategy": strategy,
                    # The uncertainty the ranking and its reason speak of (the note's
                    # least confident spans), not the model's own note-level number.
                    "uncertainty": active.NoteScores.from_prediction(
                        predictions[i][1]
                    ).uncertainty,
                    "words": words[predictions[i][0]],
                },
            )
            for i, score, reason in zip(
                ranking.indices, ranking.scores, ranking.reasons, strict=True
            )
        ]
        return learning.replace_queue(
            session, project, entries, strategy=strategy, model_version_id=version_id
        )


def run_worker(
    config: WorkerConfig, *, nice: int = 10, on_start: Callable[[Worker], Any] | None = None
) -> int:
    """Start a worker in this process: lower priority, its own thread budget, then loop."""
    # The app and the worker share the machine's cores: a lower priority keeps the
    # annotator's page responsive while a training round runs.
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    if config.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    worker = Worker(config)
    if on_start:
        on_start(worker)
    return worker.run()
