"""The background worker: claims jobs from the database, trains, evaluates, predicts, ranks.

It talks to the app only through the database. One loop: recover jobs of dead workers,
queue the projects whose trigger fired, claim the oldest job, run it to a terminal status;
with no job to claim, help predict another job's pool (a chunk of it). While a job runs,
a heartbeat thread records liveness and progress and reads the cancel flag, so a
cancelled job stops at its next training step.

Several workers may run on several hosts, one per GPU. A job belongs to the worker and
attempt that claimed it: a worker whose job was taken over (its heartbeat went stale and
another worker reclaimed it) stops it and publishes nothing. Each worker writes model
folders under temporary names of its own, and loads published versions from the
database, so no host needs another's disk.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core import active, job_progress
from noteloop.core.errors import NoteloopError
from noteloop.core.model.base import (
    DocumentPrediction,
    Extractor,
    MetricEvent,
    TrainingCancelled,
)
from noteloop.db import chunks, jobs, learning, projects
from noteloop.db.engine import init_db, session_factory
from noteloop.db.errors import database_refusal
from noteloop.db.models import ModelVersion, PredictChunk, Project, TrainingJob
from noteloop.usecases import modeling

log = logging.getLogger("noteloop.worker")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# A temporary model folder this old belongs to no live worker: publishing takes seconds.
TEMP_FOLDER_MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker runs; the CLI builds it from flags and environment variables."""

    db_url: str
    models_dir: Path
    threads: int = field(default=1, metadata={"help": "torch CPU threads for training"})
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 3.0
    stale_after_seconds: float = 60.0
    worker_id: str = field(default_factory=modeling.this_process)
    max_jobs: int = 0  # stop after this many jobs; 0 = run until stopped
    device: str = field(
        default="",
        metadata={"help": "'cpu', 'cuda', 'cuda:N' (GPU N only) or 'auto'; '' = the project's"},
    )
    chunk_notes: int = field(
        default=64, metadata={"help": "pool notes per prediction chunk that a worker takes"}
    )

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"`threads` must be >= 0, got {self.threads}")
        if self.heartbeat_seconds * 3 > self.stale_after_seconds:
            raise ValueError(
                "`stale_after_seconds` must be at least 3 heartbeats, or a slow step would "
                "look like a dead worker"
            )
        if self.device and not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(
                "`device` must be 'cpu', 'cuda', 'cuda:N' (N: the GPU's index, 0 for the "
                f"first) or 'auto', got {self.device!r}"
            )
        if self.chunk_notes < 1:
            raise ValueError(f"`chunk_notes` must be >= 1, got {self.chunk_notes}")

    @property
    def gpu(self) -> int | None:
        """The GPU index of ``cuda:N``; None for any other device."""
        return int(self.device.split(":")[1]) if ":" in self.device else None

    def overrides(self) -> dict[str, str]:
        """The device as the backends know it: ``cuda:N`` is ``cuda`` once the process sees
        GPU N only (:func:`pin_gpu`)."""
        return {"device": self.device.split(":")[0]} if self.device else {}


class DeviceError(NoteloopError, ValueError):
    """A device this worker cannot use."""


def pin_gpu(index: int, environ: MutableMapping[str, str] | None = None) -> str:
    """Let this process see GPU ``index`` only (``CUDA_VISIBLE_DEVICES``), before torch
    loads; returns the value set.

    The backends then use it as ``cuda``, and so does every library that allocates on the
    current device by default: a worker pinned this way never touches another worker's GPU.
    An index counts among the GPUs the environment lets the process see already.

    Raises:
        DeviceError: the environment lets the process see fewer GPUs.
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    visible = [v for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and index >= len(visible):
        raise DeviceError(
            f"device cuda:{index} asked for, but CUDA_VISIBLE_DEVICES lets this process see "
            f"{len(visible)} GPU(s): {','.join(visible)}"
        )
    chosen = visible[index] if visible else str(index)
    env["CUDA_VISIBLE_DEVICES"] = chosen
    return chosen


class _Beats:
    """A daemon thread that calls ``tick`` every ``interval`` seconds while the ``with``
    block runs, until ``tick`` returns False."""

    def __init__(self, interval: float, name: str):
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End the beats and wait for one in flight (calling it again does nothing)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval * 2)

    def tick(self) -> bool:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            if not self.tick():
                return


class Heartbeat(_Beats):
    """A thread that writes the job's phase and progress and reads its cancel flag.

    With ``owner``, a beat counts only while the job is still that worker's attempt; once
    it is not, ``lost`` is set and the job stops at its next step, as a cancelled one does.
    """

    def __init__(
        self,
        make_session: sessionmaker[Session],
        job_id: int,
        interval: float,
        owner: jobs.Owner | None = None,
    ):
        super().__init__(interval, f"heartbeat-{job_id}")
        self._make_session = make_session
        self._job_id = job_id
        self._owner = owner
        self._phase, self._progress = "starting", 0.0
        # One beat writes at a time, reading the phase once it holds the lock: otherwise the
        # thread's beat can read an old phase, wait for the database while the job writes its
        # last one, and then overwrite it.
        self._writing = threading.Lock()
        self.cancelled = threading.Event()
        self.lost = threading.Event()

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()

    def set_phase(self, phase: str, progress: float) -> None:
        """Write the phase now; raises JobLostError when the job is no longer ours."""
        self._phase, self._progress = phase, progress
        self.beat()

    def on_metric(self, event: MetricEvent) -> None:
        """Training events: the phase shows the loss, the bar the share of steps done
        (:mod:`noteloop.core.job_progress`; the next beat writes both)."""
        if event.name == "loss":
            self._phase = f"training: epoch {event.epoch}, loss {event.value:.3f}"
        elif event.name == "progress":
            self._progress = job_progress.training_step(event.value)

    def beat(self) -> None:
        try:
            with self._writing, self._make_session.begin() as session:
                cancel = jobs.heartbeat(
                    session,
                    self._job_id,
                    phase=self._phase,
                    progress=self._progress,
                    owner=self._owner,
                )
        except jobs.JobLostError:
            self.lost.set()
            raise
        if cancel:
            self.cancelled.set()

    def tick(self) -> bool:
        try:
            self.beat()
        except jobs.JobLostError as exc:
            log.warning("%s; stopping it", exc)
            return False
        except Exception:  # a busy database must not kill the job; the next beat retries
            log.exception("heartbeat of job %s failed", self._job_id)
        return True


class ChunkBeat(_Beats):
    """A thread that keeps a prediction chunk alive; sets ``lost`` when it is not ours."""

    def __init__(self, make_session: sessionmaker[Session], chunk: PredictChunk, interval: float):
        super().__init__(interval, f"chunk-{chunk.id}")
        self._make_session = make_session
        self._chunk_id, self._owner = chunk.id, chunks.owner_of(chunk)
        self.lost = threading.Event()

    def tick(self) -> bool:
        try:
            with self._make_session.begin() as session:
                chunks.heartbeat(session, self._chunk_id, self._owner)
        except jobs.JobLostError as exc:
            log.warning("%s; stopping it", exc)
            self.lost.set()
            return False
        except Exception:  # a busy database must not kill the chunk; the next beat retries
            log.exception("heartbeat of prediction chunk %s failed", self._chunk_id)
        return True


class Worker:
    """The worker loop over one database."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        # Every worker transaction takes the write lock up front: SQLite cannot upgrade a
        # read transaction to a write once another connection (the heartbeat thread, the
        # app) has written, and the worker's transactions are all short.
        engine = init_db(config.db_url)
        self.make_session = session_factory(engine, immediate=True)
        # Reads take no write lock: on SQLite every annotator's save waits for it.
        self.read_session = session_factory(engine)
        self.stop = threading.Event()
        self._loaded: tuple[int, Extractor] | None = None  # the version that predicts chunks

    def run(self) -> int:
        """Run until stopped (or ``max_jobs`` jobs); returns the number of jobs run."""
        self._prepare()
        done = 0
        while not self.stop.is_set():
            try:
                ran = self._step()
            except SQLAlchemyError as exc:  # the database is down or refused: say so, go on
                log.error("the worker's loop could not use the database: %s", database_refusal(exc))
                self.stop.wait(self.config.poll_seconds)
                continue
            if ran is None:
                self.stop.wait(self.config.poll_seconds)
                continue
            done += ran
            if self.config.max_jobs and done >= self.config.max_jobs:
                break
        return done

    def _step(self) -> int | None:
        """One turn of the loop: 1 when a job ran, 0 when a chunk did, None when idle."""
        self.recover_stale()
        self.queue_due_projects()
        job = self.claim()
        if job is not None:
            self.run_job(job)
            return 1
        chunk = self.claim_chunk()
        if chunk is not None:
            self.run_chunk(chunk)
            return 0
        return None

    def _prepare(self) -> None:
        """Drop model folders dead workers left half-written, seed empty queues."""
        self.sweep_temp_folders()
        self.cold_start_queues()

    def sweep_temp_folders(self) -> list[Path]:
        """Remove the temporary model folders that no live worker writes: this worker's
        own (left by an earlier process of the same id), those of a job attempt that is no
        longer running, and any older than a day. Another worker's folder stays: on a
        shared models folder, it may be publishing into it right now."""
        with self.read_session() as session:
            running = jobs.running_attempts(session)
        mine = modeling.temp_owner(modeling.temp_name(self.config.worker_id, "x"))
        oldest = time.time() - TEMP_FOLDER_MAX_AGE.total_seconds()
        removed = []
        for tmp in self.config.models_dir.glob(f"*/{modeling.TEMP_PREFIX}*"):
            owner = modeling.temp_owner(tmp.name)
            dead = owner is not None and (
                owner.worker == (mine.worker if mine else None)
                or (owner.job_id is not None and (owner.job_id, owner.attempt) not in running)
            )
            if dead or _mtime(tmp) < oldest:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        return removed

    def recover_stale(self) -> list[int]:
        """Requeue the jobs (and prediction chunks) of workers that died."""
        stale = timedelta(seconds=self.config.stale_after_seconds)
        with self.make_session.begin() as session:
            recovered = jobs.recover_stale(session, stale)
            lost_chunks = chunks.recover_stale(session, stale)
        if recovered:
            log.warning("recovered job(s) %s from a worker that died", recovered)
            self.sweep_temp_folders()
        if lost_chunks:
            log.warning("recovered prediction chunk(s) %s from a worker that died", lost_chunks)
        return recovered

    def queue_due_projects(self) -> list[int]:
        """Queue a training job for every project whose trigger fired; returns the job ids."""
        # Read without the write lock first (counting gold takes a while, every poll); a
        # project that looks due is checked again under it before its job is queued.
        with self.read_session() as session:
            due = [p.name for p in projects.list_projects(session) if _due_reason(session, p)]
        queued = []
        for name in due:
            with self.make_session.begin() as session:
                project = projects.get_project(session, name)
                reason = _due_reason(session, project)
                if reason:
                    job, created = jobs.enqueue(session, project, reason=reason)
                    queued += [job.id] if created else []
        return queued

    def claim(self) -> TrainingJob | None:
        with self.make_session.begin() as session:
            return jobs.claim_next(session, self.config.worker_id)

    def claim_chunk(self, job_id: int | None = None) -> PredictChunk | None:
        with self.make_session.begin() as session:
            return chunks.claim(session, self.config.worker_id, job_id)

    def run_job(self, job: TrainingJob) -> str:
        """Run one job to a terminal status, whatever happens inside; returns the status
        ("lost" when another worker took it over: its end is that worker's to write)."""
        owner = jobs.Owner.of(job)
        self._log_start(job)
        with Heartbeat(self.make_session, job.id, self.config.heartbeat_seconds, owner) as beat:
            status, error, version_id = "failed", "", None
            try:
                version_id = self._train_predict_rank(job, owner, beat)
                status = "done"
            except jobs.JobLostError as exc:
                status, error = "lost", str(exc)
            except TrainingCancelled:
                lost = beat.lost.is_set()
                status, error = ("lost", "") if lost else ("cancelled", "cancelled while training")
            except SQLAlchemyError as exc:
                error = str(database_refusal(exc))
                log.error("job %s failed on the database:\n%s", job.id, traceback.format_exc())
            except Exception as exc:  # the job must end terminal with its error, whatever broke
                error = f"{type(exc).__name__}: {exc}"
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            finally:
                # No beat after the end is written: it would find the job no longer ours
                # and warn that another worker took it over.
                beat.stop()
                status = self._finish(job.id, owner, status, error, version_id)
        return status

    def _finish(
        self, job_id: int, owner: jobs.Owner, status: str, error: str, version_id: int | None
    ) -> str:
        """Write the job's end, if it is still ours; log it. Returns the status written."""
        if status == "lost":
            log.warning("job %s stopped and published nothing: %s", job_id, error or "lost")
            return status
        try:
            with self.make_session.begin() as session:
                ours = jobs.finish(
                    session, job_id, status, error=error, model_version_id=version_id, owner=owner
                )
                chunks.clear(session, job_id)
        except SQLAlchemyError as exc:  # its heartbeat goes stale: another worker redoes it
            log.error("job %s: its end (%s) could not be written: %s", job_id, status,
                      database_refusal(exc))  # fmt: skip
            return status
        if not ours:
            log.warning("job %s ended here as %s, but another worker holds it now", job_id, status)
            return "lost"
        # After the finish committed: a log line must never undo a job's end.
        self._log_end(job_id)
        return status

    def _log_start(self, job: TrainingJob) -> None:
        # worker.log is where a person finds which job ran when, and why it was queued.
        with self.read_session() as session:
            project = session.get(Project, job.project_id)
            name = project.name if project else f"#{job.project_id}"
        log.info(
            "job %s started: project %s, kind %s, reason %r, attempt %s",
            job.id, name, job.kind, job.reason, job.attempts,
        )  # fmt: skip

    def _log_end(self, job_id: int) -> None:
        """One line with the job's end as stored: status, what came of it, how long it ran."""
        with self.read_session() as session:
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

    def _train_predict_rank(
        self, job: TrainingJob, owner: jobs.Owner, beat: Heartbeat
    ) -> int | None:
        """Run a job of either kind; returns the model version it made or predicted with."""
        with self.read_session() as session:
            project = session.get(Project, job.project_id)
            assert project is not None  # jobs cascade-delete with their project
            name, settings = project.name, dict(project.settings)
        if job.kind == "predict":
            return self._predict_rank(
                job.id, owner, name, settings, beat, start=job_progress.PREDICT_ONLY
            )
        config = {
            **settings.get("model_config", {}),
            **job.config,
            "threads": self.config.threads,
            **self.config.overrides(),
        }
        trained = modeling.train_project(
            self.make_session,
            name,
            self.config.models_dir,
            config,
            backend=settings.get("backend", "encoder"),
            on_metric=beat.on_metric,
            should_stop=beat.should_stop,
            on_phase=beat.set_phase,
            publisher=modeling.Publisher(
                self.config.worker_id,
                job.id,
                owner.attempt,
                check=lambda session: jobs.require_owner(session, job.id, owner),
            ),
        )
        if not trained.serves:
            # The pool keeps the serving version's suggestions and queue: predicting with a
            # candidate would show annotators a model the project's rule kept back.
            beat.set_phase(f"{trained.name} kept as a {trained.verdict}", job_progress.DONE)
            return trained.version_id
        self._predict_rank(
            job.id, owner, name, settings, beat, start=job_progress.PREDICT_AFTER_TRAINING
        )
        return trained.version_id

    def _predict_rank(
        self,
        job_id: int,
        owner: jobs.Owner,
        name: str,
        settings: dict[str, Any],
        beat: Heartbeat,
        *,
        start: float,
    ) -> int:
        """Suggest for the pool with the serving version, in chunks that idle workers help
        with, and rank the queue once all are done; the progress bar runs from ``start``
        to the end. Returns the serving version's id."""
        with self.read_session() as session:  # read once: a lead may choose another meanwhile
            version_id, _ = modeling.latest_version(session, name)
            rows = [row for row, _ in modeling.pool_to_predict(session, name, version_id)]
        with self.make_session.begin() as session:
            chunks.split(session, job_id, owner, version_id, rows, self.config.chunk_notes)
        beat.set_phase("predicting the pool", start)
        self._predict_chunks_of(job_id, owner, beat, start)
        with self.read_session() as session:
            results = chunks.results(session, job_id, owner.attempt)
        predictions = [p for result in results for p in modeling.from_ranking_summary(result)]
        beat.set_phase("ranking the pool", job_progress.RANKING)
        rank_queue(
            self.make_session,
            name,
            predictions,
            version_id,
            strategy=settings.get("strategy", active.DEFAULT_STRATEGY),
            check=lambda session: jobs.require_owner(session, job_id, owner),
            read_session=self.read_session,
        )
        return version_id

    def _predict_chunks_of(
        self, job_id: int, owner: jobs.Owner, beat: Heartbeat, start: float
    ) -> None:
        """Predict the job's chunks, the other workers' help included, until all are done.

        Raises:
            JobLostError: the job was taken over; TrainingCancelled: a lead cancelled it;
            NoteloopError: a chunk failed (its error says why).
        """
        while True:
            chunk = self.claim_chunk(job_id)
            if chunk is not None:
                self.run_chunk(chunk)
            with self.read_session() as session:
                state = chunks.progress(session, job_id, owner.attempt)
            if state.failed:
                raise NoteloopError(f"predicting the pool failed: {state.failed}")
            fraction = state.notes_done / max(state.notes, 1)
            beat.set_phase(
                f"predicting the pool: {state.notes_done}/{state.notes}",
                job_progress.predicting(start, fraction),
            )
            if state.done == state.total:
                return
            if beat.should_stop():
                raise TrainingCancelled("cancelled while predicting")
            if chunk is None:
                # Other workers predict the rest; a dead one's chunk comes back when its
                # heartbeat goes stale, and this worker takes it.
                time.sleep(self.config.poll_seconds)
                self.recover_stale()

    def run_chunk(self, chunk: PredictChunk) -> str:
        """Predict one chunk, store its suggestions a few notes per transaction, record
        what the ranking needs; returns its end: done, lost or failed."""
        owner = chunks.owner_of(chunk)
        try:
            with ChunkBeat(self.make_session, chunk, self.config.heartbeat_seconds) as beat:
                extractor = self._extractor(chunk.model_version_id)
                with self.read_session() as session:
                    notes = modeling.documents_by_row(session, chunk.document_ids)
                stored, predictions = modeling.predict_notes(
                    self.make_session,
                    extractor,
                    chunk.model_version_id,
                    notes,
                    should_stop=beat.lost.is_set,
                )
            with self.make_session.begin() as session:  # after its beats stopped
                chunks.finish(
                    session, chunk.id, owner, modeling.ranking_summary(predictions), stored
                )
            return "done"
        except (jobs.JobLostError, TrainingCancelled) as exc:
            log.warning("prediction chunk %s stopped: %s", chunk.id, exc)
            return "lost"
        except Exception as exc:  # the job that waits for it must learn why
            reason = _readable(exc)
            log.error("prediction chunk %s failed:\n%s", chunk.id, traceback.format_exc())
            with self.make_session.begin() as session:
                chunks.fail(session, chunk.id, owner, reason)
            return "failed"

    def _extractor(self, version_id: int) -> Extractor:
        """The version's extractor, kept loaded while chunks of the same version follow."""
        if self._loaded is None or self._loaded[0] != version_id:
            self._loaded = None  # let the old model go before the new one loads
            extractor = modeling.load_version(
                self.read_session,
                version_id,
                self.config.models_dir,
                worker_id=self.config.worker_id,
                overrides=self.config.overrides(),
            )
            self._loaded = (version_id, extractor)
        return self._loaded[1]

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


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by its own worker
        return time.time()


def _readable(exc: Exception) -> str:
    if isinstance(exc, SQLAlchemyError):
        return str(database_refusal(exc))
    return f"{type(exc).__name__}: {exc}"


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
    check: Callable[[Session], object] | None = None,
    read_session: sessionmaker[Session] | None = None,
) -> int:
    """Rank the unannotated pool by ``strategy`` and store it as the project's queue;
    ``check`` runs first in the writing transaction (a worker's: the job is still its own),
    ``read_session`` (default ``make_session``) reads what the ranking needs.

    Read and ranked before the write transaction begins: on SQLite the annotators' saves
    wait for it, so it holds only the queue's replacement.
    """
    with (read_session or make_session)() as session:
        project = projects.get_project(session, project_name)
        timings = learning.annotation_timings(session, project)
        words = _words(session, [row for row, _ in predictions])
        # Read alone: a project of a test backend has settings no typed view accepts.
        share = project.settings.get("random_share", active.DEFAULT_RANDOM_SHARE)
    ranking = active.rank_pool(
        [p for _, p in predictions],
        strategy,
        seed=seed,
        lengths=[words[row] for row, _ in predictions],
        seconds_per_note=timings,
    )
    guarded = (False,) * len(ranking.indices)
    if share > 0 and strategy != "random":
        # A different draw for each version's ranking, reproducible from it.
        ranking, guarded = active.with_random_share(
            ranking, len(predictions), share, seed * 1_000_003 + (version_id or 0)
        )
    entries = [
        (
            predictions[i][0],
            score,
            {
                "reason": reason,
                "strategy": strategy,
                "pick": "random" if random_pick else "strategy",
                # The uncertainty the ranking and its reason speak of (the note's least
                # confident spans), not the model's own note-level number.
                "uncertainty": active.NoteScores.from_prediction(predictions[i][1]).uncertainty,
                "words": words[predictions[i][0]],
            },
        )
        for i, score, reason, random_pick in zip(
            ranking.indices, ranking.scores, ranking.reasons, guarded, strict=True
        )
    ]
    with make_session.begin() as session:
        if check is not None:
            check(session)
        project = projects.get_project(session, project_name)
        return learning.replace_queue(
            session, project, entries, strategy=strategy, model_version_id=version_id
        )


def _words(session: Session, rows: list[int]) -> dict[int, int]:
    """Whitespace words of each document row (what ``cost-aware`` and the reasons count)."""
    return {row: len(doc.text.split()) for row, doc in modeling.documents_by_row(session, rows)}


def run_worker(
    config: WorkerConfig, *, nice: int = 10, on_start: Callable[[Worker], Any] | None = None
) -> int:
    """Start a worker in this process: lower priority, its own thread budget and GPU,
    then loop."""
    # The app and the worker share the machine's cores: a lower priority keeps the
    # annotator's page responsive while a training round runs.
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    if config.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    if config.gpu is not None:
        log.info("worker %s sees GPU %s only", config.worker_id, pin_gpu(config.gpu))
    worker = Worker(config)
    if on_start:
        on_start(worker)
    return worker.run()
