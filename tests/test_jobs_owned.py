"""Jobs on a team server: one active job per project and kind held by the database, a job
owned by the worker and attempt that claimed it, liveness by the database server's clock."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fakes import MEMORY_BACKEND
from sqlalchemy import func, select, update

from noteloop.core.schema import EntityType, LabelSchema
from noteloop.db import jobs, models, projects
from noteloop.db.engine import downgrade, init_db, make_engine, session_factory, upgrade
from noteloop.usecases import modeling

pytestmark = pytest.mark.both_databases

PROCESSES = 4
ROUNDS = 15


@pytest.fixture(autouse=True)
def memory_backend():
    modeling.register_backend("memory", MEMORY_BACKEND)
    yield
    modeling.BACKENDS.pop("memory", None)


def _project(make_session, name: str = "p") -> None:
    with make_session.begin() as session:
        projects.create_project(session, name, LabelSchema((EntityType("Problem"),)))


def _enqueue_rounds(db_url: str, barrier: Any, results: Any) -> None:
    """Enqueue at the barrier, round after round, as app processes and workers do."""
    engine = make_engine(db_url)
    factory = session_factory(engine, immediate=True)  # as the worker's sessions
    for _ in range(ROUNDS):
        barrier.wait(timeout=120)
        try:
            with factory.begin() as session:
                job, created = jobs.enqueue(session, projects.get_project(session, "p"))
            results.put((job.id, created, ""))
        except Exception as exc:  # reported to the test, which fails with it
            results.put((0, False, f"{type(exc).__name__}: {exc}"))
        barrier.wait(timeout=120)
    engine.dispose()


def _active(make_session) -> list[int]:
    with make_session() as session:
        query = select(models.TrainingJob.id).where(models.TrainingJob.status.in_(jobs.ACTIVE))
        return list(session.scalars(query))


def test_processes_enqueueing_at_once_leave_one_active_job(db_url):
    engine = init_db(db_url)
    make_session = session_factory(engine)
    _project(make_session)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_enqueue_rounds, args=(db_url, barrier, results))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        for _ in range(ROUNDS):
            barrier.wait(timeout=120)  # go
            barrier.wait(timeout=120)  # all enqueued
            answers = [results.get(timeout=60) for _ in procs]
            assert not [err for _, _, err in answers if err], answers
            (active,) = _active(make_session)  # one, whoever won
            assert {job_id for job_id, _, _ in answers} == {active}
            assert sum(created for _, created, _ in answers) == 1
            with make_session.begin() as session:
                jobs.request_cancel(session, active)
    finally:
        for p in procs:
            p.join(timeout=60)
        engine.dispose()


def test_the_database_refuses_a_second_active_job_of_a_kind(make_session):
    _project(make_session)
    with make_session.begin() as session:
        project = projects.get_project(session, "p")
        jobs.enqueue(session, project)
        jobs.enqueue(session, project, kind="predict")  # another kind may wait beside it
    with pytest.raises(sa.exc.IntegrityError), make_session.begin() as session:
        session.add(models.TrainingJob(project_id=project.id, kind="train", status="running"))


def test_the_upgrade_cancels_older_duplicate_active_jobs(db_url):
    engine = init_db(db_url)
    downgrade(engine, "0004")
    jobs_table = sa.table(
        "training_jobs",
        *(sa.column(c) for c in ("id", "project_id", "kind", "status", "config", "progress")),
        *(sa.column(c) for c in ("phase", "error", "cancel_requested", "created_at")),
        sa.column("attempts"),
        sa.column("reason"),
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO projects (id, name, schema, settings, created_at) "
                "VALUES (1, 'p', '{}', '{}', CURRENT_TIMESTAMP)"
            )
        )
        for job_id, kind, status in [
            (1, "train", "queued"),
            (2, "train", "queued"),
            (3, "predict", "running"),
            (4, "predict", "queued"),
            (5, "train", "done"),
        ]:
            connection.execute(
                sa.insert(jobs_table).values(
                    id=job_id, project_id=1, kind=kind, status=status, config="{}",
                    progress=0.0, phase="", error="", cancel_requested=False,
                    created_at=sa.func.current_timestamp(), attempts=0, reason="",
                )
            )  # fmt: skip
    upgrade(engine)
    with session_factory(engine)() as session:
        rows = {j.id: j for j in session.scalars(select(models.TrainingJob))}
    assert {i: rows[i].status for i in rows} == {
        1: "cancelled", 2: "queued", 3: "running", 4: "cancelled", 5: "done",
    }  # fmt: skip
    assert rows[1].error == (
        "cancelled when the database moved to one active job per project and kind: "
        "job 2 of the same kind stays active"
    )
    assert "job 3 of the same kind" in rows[4].error  # the running one is kept
    assert rows[1].finished_at is not None
    engine.dispose()


# --------------------------------------------------------------------------- ownership


def _claimed(make_session, worker: str) -> tuple[models.TrainingJob, jobs.Owner]:
    with make_session.begin() as session:
        job = jobs.claim_next(session, worker)
        assert job is not None
        return job, jobs.Owner.of(job)


def _make_stale(make_session, job_id: int, minutes: float = 5) -> None:
    with make_session.begin() as session:
        session.execute(
            update(models.TrainingJob)
            .where(models.TrainingJob.id == job_id)
            .values(heartbeat_at=jobs.db_now(session, timedelta(minutes=minutes)))
        )


def _taken_over(make_session) -> tuple[int, jobs.Owner, jobs.Owner]:
    """A job claimed by w1, gone stale, recovered and claimed again by w2."""
    with make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"))
    job, first = _claimed(make_session, "w1")
    _make_stale(make_session, job.id)
    with make_session.begin() as session:
        assert jobs.recover_stale(session, timedelta(seconds=60)) == [job.id]
    _, second = _claimed(make_session, "w2")
    assert (first.attempt, second.attempt) == (1, 2)
    return job.id, first, second


def test_a_reclaimed_jobs_old_owner_cannot_beat_finish_or_publish(demo_db_url, tmp_path):
    make_session = session_factory(init_db(demo_db_url))
    job_id, first, second = _taken_over(make_session)
    lost = f"job {job_id} is no longer worker w1's"
    with pytest.raises(jobs.JobLostError, match=lost), make_session.begin() as session:
        jobs.heartbeat(session, job_id, phase="training", progress=0.5, owner=first)
    with make_session.begin() as session:
        assert not jobs.finish(session, job_id, "done", owner=first)
    publisher = modeling.Publisher(
        "w1", job_id, first.attempt, check=lambda s: jobs.require_owner(s, job_id, first)
    )
    with pytest.raises(jobs.JobLostError):
        modeling.train_project(
            make_session, "demo", tmp_path, {}, backend="memory", publisher=publisher
        )
    with make_session() as session:
        assert session.scalar(select(func.count(models.ModelVersion.id))) == 0
        job = session.get(models.TrainingJob, job_id)
        assert (job.status, job.worker_id, job.attempts) == ("running", "w2", 2)
    assert not [p for p in (tmp_path / "demo").iterdir()]  # its folder went too
    with make_session.begin() as session:  # the new owner goes on
        jobs.heartbeat(session, job_id, phase="training", progress=0.5, owner=second)
        assert jobs.finish(session, job_id, "done", owner=second)


def test_a_worker_whose_job_is_taken_over_mid_training_stops_and_registers_nothing(
    demo_db_url, tmp_path
):
    from noteloop.worker import Worker, WorkerConfig

    worker = Worker(WorkerConfig(demo_db_url, tmp_path, heartbeat_seconds=0.05,
                                 stale_after_seconds=1.0, worker_id="w1"))  # fmt: skip
    with worker.make_session.begin() as session:
        demo = projects.get_project(session, "demo")
        settings = {"backend": "memory", "model_config": {"step_seconds": 0.1}}
        projects.update_project_settings(session, demo, settings, "test")
        jobs.enqueue(session, demo)
    job = worker.claim()
    outcome: list[str] = []

    def take_over() -> None:
        time.sleep(0.5)  # training has begun
        with worker.make_session.begin() as session:  # one transaction: no beat between
            stale = jobs.db_now(session, timedelta(minutes=5))
            session.execute(
                update(models.TrainingJob)
                .where(models.TrainingJob.id == job.id)
                .values(heartbeat_at=stale)
            )
            assert jobs.recover_stale(session, timedelta(seconds=60)) == [job.id]
            assert jobs.claim_next(session, "w2") is not None

    thief = threading.Thread(target=take_over)
    thief.start()
    outcome.append(worker.run_job(job))
    thief.join()
    assert outcome == ["lost"]
    with worker.make_session() as session:
        assert session.scalar(select(func.count(models.ModelVersion.id))) == 0
        row = session.get(models.TrainingJob, job.id)
        assert (row.status, row.worker_id, row.attempts) == ("running", "w2", 2)


# --------------------------------------------------------------------------- the clock


def _db_clock(make_session):
    with make_session() as session:
        now = sa.type_coerce(jobs.db_now(session), models.UtcDateTime())
        return session.scalar(select(now))


def test_staleness_is_judged_by_the_database_clock(demo_db_url, monkeypatch):
    make_session = session_factory(init_db(demo_db_url))
    with make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"))
        jobs.enqueue(session, projects.get_project(session, "demo"), kind="predict")
    old, _ = _claimed(make_session, "w1")
    _make_stale(make_session, old.id, minutes=5)
    # This host's clock an hour behind: by it, the old heartbeat would be in the future.
    monkeypatch.setattr(jobs, "now", lambda: jobs.datetime.now(jobs.UTC) - timedelta(hours=1))
    with make_session.begin() as session:
        assert jobs.recover_stale(session, timedelta(seconds=60)) == [old.id]
    # Now an hour ahead: by it, a heartbeat written just now would be stale.
    monkeypatch.setattr(jobs, "now", lambda: jobs.datetime.now(jobs.UTC) + timedelta(hours=1))
    job, owner = _claimed(make_session, "w3")
    with make_session.begin() as session:
        jobs.heartbeat(session, job.id, phase="x", progress=0.1, owner=owner)
    with make_session.begin() as session:
        assert jobs.recover_stale(session, timedelta(seconds=60)) == []


def test_heartbeats_are_stored_in_utc_with_fractions_of_a_second(make_session):
    _project(make_session)
    with make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "p"))
    job, owner = _claimed(make_session, "w1")
    before = _db_clock(make_session)
    time.sleep(0.05)
    with make_session.begin() as session:
        jobs.heartbeat(session, job.id, phase="x", progress=0.1, owner=owner)
    with make_session() as session:
        beat = session.get(models.TrainingJob, job.id).heartbeat_at
    assert beat.tzinfo is not None
    assert timedelta(0) < beat - before < timedelta(seconds=5)
    assert abs(beat - jobs.now()) < timedelta(minutes=1)  # UTC, not the server's zone
    time.sleep(0.05)
    # Within the same second, a beat 50 ms old is older than "now": the stored text keeps
    # the fraction, so it compares in the right order with the cutoff.
    with make_session.begin() as session:
        assert jobs.recover_stale(session, timedelta(0)) == [job.id]


def test_a_beat_in_flight_cannot_overwrite_the_phase_written_after_it(
    make_session, monkeypatch
):
    from noteloop.worker import Heartbeat

    _project(make_session)
    with make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "p"))
    job, owner = _claimed(make_session, "w1")
    real, entered = jobs.heartbeat, threading.Event()

    def slow(session, job_id, *, phase, progress, owner=None):
        if phase == "publishing":  # the thread's beat read the old phase and waits
            entered.set()
            time.sleep(0.3)
        return real(session, job_id, phase=phase, progress=progress, owner=owner)

    monkeypatch.setattr(jobs, "heartbeat", slow)
    beat = Heartbeat(make_session, job.id, interval=60, owner=owner)
    older = threading.Thread(target=beat.set_phase, args=("publishing", 0.9))
    older.start()
    assert entered.wait(5)
    beat.set_phase("kept as a candidate", 1.0)  # the job's last word
    older.join()
    with make_session() as session:
        assert session.get(models.TrainingJob, job.id).phase == "kept as a candidate"
