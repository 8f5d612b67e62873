"""The worker's job lifecycle over a real SQLite file, with a fake extractor that learns."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import MEMORY_BACKEND, RESTARTING_BACKEND
from sqlalchemy import func, select

from noteloop.core import job_progress
from noteloop.core.schema import Document, Split
from noteloop.db import (
    documents,
    gold,
    jobs,
    learning,
    models,
    projects,
    serving,
    suggestions,
    training,
)
from noteloop.usecases import modeling
from noteloop.worker import Worker, WorkerConfig

pytestmark = pytest.mark.both_databases


@pytest.fixture(autouse=True)
def memory_backend():
    modeling.register_backend("memory", MEMORY_BACKEND)
    yield
    modeling.BACKENDS.pop("memory", None)


@pytest.fixture
def worker(demo_db_url, tmp_path) -> Worker:
    w = Worker(
        WorkerConfig(
            demo_db_url,
            tmp_path / "models",
            poll_seconds=0.05,
            heartbeat_seconds=0.05,
            stale_after_seconds=1.0,
            max_jobs=1,
        )
    )
    set_settings(w, backend="memory")
    return w


def set_settings(w: Worker, **changes) -> None:
    with w.make_session.begin() as session:
        demo = projects.get_project(session, "demo")
        projects.update_project_settings(session, demo, changes, "test")


def job_rows(w: Worker) -> list[models.TrainingJob]:
    with w.make_session() as session:
        return list(session.scalars(select(models.TrainingJob).order_by(models.TrainingJob.id)))


def run_in_thread(w: Worker) -> threading.Thread:
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    return thread


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_trigger_fires_after_n_new_gold_notes_and_one_job_per_project(worker):
    with worker.make_session() as session:
        state = jobs.trigger_state(session, projects.get_project(session, "demo"))
    assert state.gold_in_pool == 19 and state.trained_on == 0 and state.due
    first = worker.queue_due_projects()
    assert len(first) == 1 and worker.queue_due_projects() == []  # already queued
    with worker.make_session.begin() as session:
        job, created = jobs.enqueue(session, projects.get_project(session, "demo"), reason="now")
    assert not created and job.id == first[0]


def test_a_job_trains_evaluates_predicts_ranks_and_is_done(worker):
    assert worker.run() == 1
    (job,) = job_rows(worker)
    assert (job.status, job.progress, job.error) == ("done", 1.0, "")
    assert job.attempts == 1 and job.model_version_id is not None
    with worker.make_session() as session:
        project = projects.get_project(session, "demo")
        version = serving.serving_version(session, project)
        assert version.id == job.model_version_id and version.n_train_docs == 19
        assert Path(version.path, "noteloop.json").is_file()
        queue = learning.queue(session, project)
        pending = modeling.unannotated_pool(session, "demo")
        assert sorted(q.document_id for q in queue) == sorted(row for row, _ in pending)
        assert queue[0].details["strategy"] == "breaking-ties" and queue[0].details["reason"]
        for q in queue:  # the queue's "why" speaks of the uncertainty its column shows
            assert f"uncertainty {q.details['uncertainty']:.2f}" in q.details["reason"]
        assert suggestions.suggestions_for(session, pending[0][0])  # suggestions for the pool
        points = learning.curve(session, project)
        assert {(p["task"], p["metric"]) for p in points} >= {
            ("entity", "strict_f1"),
            ("relation", "f1"),
        }
        assert points[0]["n_gold_docs"] == 19


def test_suggestions_are_stored_in_queue_order_a_few_notes_at_a_time(worker, tmp_path):
    modeling.train_project(worker.make_session, "demo", tmp_path / "models", {}, backend="memory")
    with worker.make_session.begin() as session:
        project = projects.get_project(session, "demo")
        rows = [row for row, _ in modeling.unannotated_pool(session, "demo")][::-1]
        learning.replace_queue(
            session, project, [(r, 1.0, {}) for r in rows], strategy="t", model_version_id=None
        )
    seen = []

    def suggested_after(done: int, total: int) -> None:
        with worker.make_session() as session:
            seen.append({r for r in rows if suggestions.suggestions_for(session, r)})

    modeling.predict_project(
        worker.make_session, "demo", on_progress=suggested_after, notes_per_commit=5
    )
    assert seen[0] == set(rows[:5])  # the queue's first five, committed before the rest
    assert seen[1] == set(rows[:10]) and seen[-1] == set(rows)


def test_test_documents_never_enter_training(worker):
    worker.run()
    with worker.make_session() as session:
        project = projects.get_project(session, "demo")
        test_ids = {d.id for d in gold.gold_documents(session, project, split=Split.TEST)}
        trained = json.loads(
            Path(
                serving.serving_version(session, project).path, "noteloop.json"
            ).read_text()
        )["trained_on"]
    assert len(test_ids) == 6 and len(trained) == 19
    assert test_ids.isdisjoint(trained)


def test_the_log_says_when_a_job_starts_and_how_it_ended(worker, caplog):
    caplog.set_level(logging.INFO, logger="noteloop.worker")
    worker.run()
    set_settings(worker, model_config={"fail": "out of memory\nin the relation head"})
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    first, second = job_rows(worker)
    with worker.make_session() as session:
        version = session.get(models.ModelVersion, first.model_version_id).name
    lines = [r.getMessage() for r in caplog.records if r.name == "noteloop.worker"]
    assert [line for line in lines if " started: " in line] == [
        f"job {first.id} started: project demo, kind train, reason {first.reason!r}, attempt 1",
        f"job {second.id} started: project demo, kind train, reason 'train now', attempt 1",
    ]
    ended = [line for line in lines if re.match(r"job \d+ \w+ after ", line)]
    assert len(ended) == 2
    # The heartbeat stops before the end is written: no beat finds the job "no longer ours".
    assert not [line for line in lines if "no longer" in line]
    done = rf"job {first.id} done after \d+\.\ds: model version {re.escape(version)}"
    assert re.fullmatch(done, ended[0])
    # The error's first line only: the traceback is logged apart, at ERROR.
    assert re.fullmatch(
        rf"job {second.id} failed after \d+\.\ds: RuntimeError: out of memory", ended[1]
    )


def test_a_failed_job_keeps_the_last_good_model_serving(worker):
    worker.run()
    with worker.make_session() as session:
        good = serving.serving_version(
            session, projects.get_project(session, "demo")
        ).id
    set_settings(worker, model_config={"fail": "out of memory in the relation head"})
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    failed = job_rows(worker)[-1]
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: out of memory in the relation head"
    with worker.make_session() as session:
        version_id, _ = modeling.latest_version(session, "demo")
    assert version_id == good
    assert not list((worker.config.models_dir / "demo").glob(".tmp-*"))


def test_a_round_far_below_the_serving_model_is_not_published(worker):
    worker.run()
    with worker.make_session() as session:
        project = projects.get_project(session, "demo")
        good = serving.serving_version(session, project)
        n_points = len(learning.curve(session, project))
    assert good.metrics["evaluation"]["entity"]["strict"]["f1"] >= modeling.REGRESSION_FLOOR
    set_settings(worker, model_config={"forget": True})  # learns nothing: F1 0
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    failed = job_rows(worker)[-1]
    assert failed.status == "failed" and failed.error.startswith(
        "RegressionError: the new model scored 0.000"
    )
    assert f"{good.name} keeps serving" in failed.error
    assert failed.error.endswith("Trained with seeds 0-2: each fell short.")  # the budget: 2
    with worker.make_session() as session:
        project = projects.get_project(session, "demo")
        assert serving.serving_version(session, project).id == good.id
        assert len(learning.curve(session, project)) == n_points
    assert [p.name for p in (worker.config.models_dir / "demo").iterdir()] == [good.name]


def test_one_retry_budget_covers_the_backends_restarts_and_the_retrains(worker):
    """A backend that restarted a collapsed run twice has spent the job's budget: a round
    that still falls short is reported, not trained a fourth time."""
    worker.run()
    modeling.register_backend("memory", RESTARTING_BACKEND)
    set_settings(worker, model_config={"collapses": 3})  # collapses even after 2 restarts
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    failed = job_rows(worker)[-1]
    assert failed.status == "failed"
    assert failed.error.endswith("Trained with seeds 0-2: each fell short.")
    set_settings(worker, model_config={"collapses": 1})  # one restart, then it learns
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    assert job_rows(worker)[-1].status == "done"
    with worker.make_session() as session:
        new = serving.serving_version(session, projects.get_project(session, "demo"))
    assert new.config["restarts"] == 2  # what the job left the backend: all of its budget
    assert new.metrics["train"]["restarts"] == 1 and new.metrics["train"]["regression_retries"] == 0


def test_an_unlucky_round_is_retrained_with_the_next_seed_in_the_same_job(worker):
    worker.run()
    with worker.make_session() as session:
        good = serving.serving_version(session, projects.get_project(session, "demo"))
    set_settings(worker, model_config={"seed": 5, "forget_seeds": [5]})  # seed 6 learns
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    assert job_rows(worker)[-1].status == "done"
    with worker.make_session() as session:
        new = serving.serving_version(session, projects.get_project(session, "demo"))
    assert new.id != good.id and new.config["seed"] == 6
    assert new.metrics["train"]["regression_retries"] == 1
    assert new.metrics["train"]["int8_check"] is None  # a backend without int8 weights
    assert new.metrics["train"]["warm_from"] == ""  # the retry starts from the base model
    assert new.metrics["evaluation"]["entity"]["strict"]["f1"] == pytest.approx(
        good.metrics["evaluation"]["entity"]["strict"]["f1"]
    )


def test_the_next_round_continues_from_the_serving_version(worker):
    worker.run()
    with worker.make_session() as session:
        first = serving.serving_version(session, projects.get_project(session, "demo"))
    assert first.metrics["train"]["warm_from"] == ""  # nothing served yet: the base model
    with worker.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    worker.run()
    with worker.make_session() as session:
        second = serving.serving_version(session, projects.get_project(session, "demo"))
    assert second.id != first.id
    assert Path(second.metrics["train"]["warm_from"]) == Path(first.path)
    with worker.make_session() as session:  # the Model page and `model list` say so
        rows = training.version_rows(session, projects.get_project(session, "demo"))
    assert [r.trained_from for r in rows] == [first.name, "base model"]
    assert rows[0].shown()["trained from"] == first.name


def test_only_a_backend_that_can_continue_is_handed_the_serving_version(worker):
    worker.run()
    models_dir = worker.config.models_dir

    def start() -> Path | None:
        return modeling._warm_start(worker.make_session, "demo", "memory", models_dir, "w")

    with worker.make_session() as session:
        serving_now = serving.serving_version(
            session, projects.get_project(session, "demo"))
    assert start() == Path(serving_now.path)
    modeling.register_backend("memory", dataclasses.replace(MEMORY_BACKEND, continues=False))
    assert start() is None


def test_a_failed_round_waits_for_new_gold_instead_of_looping(worker):
    set_settings(worker, model_config={"fail": "the schema has no entity type"})
    worker.run()  # the 19 gold notes trigger a round, which fails
    assert [j.status for j in job_rows(worker)] == ["failed"]
    with worker.make_session() as session:
        state = jobs.trigger_state(session, projects.get_project(session, "demo"))
    assert not state.due and "since job 1 failed" in state.reason
    assert worker.queue_due_projects() == []  # not the same gold again
    with worker.make_session.begin() as session:
        pending = [row for row, _ in modeling.unannotated_pool(session, "demo")]
    for row in pending[:4]:
        with worker.make_session.begin() as session:
            gold.save_annotation(session, row, "ann", [], [], expected_version=0)
    assert worker.queue_due_projects() == []  # 4 of 5
    with worker.make_session.begin() as session:
        gold.save_annotation(session, pending[4], "ann", [], [], expected_version=0)
    assert len(worker.queue_due_projects()) == 1


def test_a_running_job_can_be_cancelled(worker):
    set_settings(worker, model_config={"step_seconds": 0.5})
    thread = run_in_thread(worker)
    wait_for(
        lambda: any(
            j.status == "running" and j.phase.startswith("training") for j in job_rows(worker)
        )
    )
    with worker.make_session.begin() as session:
        assert jobs.request_cancel(session, job_rows(worker)[0].id) == "running"
    thread.join(timeout=30)
    (job,) = job_rows(worker)
    assert job.status == "cancelled" and job.model_version_id is None
    with worker.make_session() as session:
        assert (
            serving.serving_version(session, projects.get_project(session, "demo"))
            is None
        )
    assert worker.queue_due_projects() == []  # a cancelled round does not start again


def test_the_progress_bar_moves_while_training(worker):
    set_settings(worker, model_config={"step_seconds": 0.1})  # 19 notes: about 2 s
    thread = run_in_thread(worker)
    seen: list[float] = []

    def training_progress() -> bool:
        seen.extend(j.progress for j in job_rows(worker) if j.phase.startswith("training"))
        return any(0 < p < end for p in seen)

    end = job_progress.TRAIN_STEPS[1]
    wait_for(training_progress)
    thread.join(timeout=120)
    assert all(0 <= p <= end for p in seen)  # training steps hold the first part of the bar
    assert (job_rows(worker)[0].status, job_rows(worker)[0].progress) == ("done", 1.0)


def test_a_queued_job_cancels_at_once(worker):
    with worker.make_session.begin() as session:
        job, _ = jobs.enqueue(session, projects.get_project(session, "demo"))
    with worker.make_session.begin() as session:
        assert jobs.request_cancel(session, job.id) == "cancelled"
    assert job_rows(worker)[0].status == "cancelled"


def test_stale_jobs_are_requeued_then_failed_after_three_attempts(worker):
    with worker.make_session.begin() as session:
        job, _ = jobs.enqueue(session, projects.get_project(session, "demo"))
    for attempt in range(1, 4):
        with worker.make_session.begin() as session:
            claimed = jobs.claim_next(session, f"dead-worker-{attempt}")
            assert claimed is not None and claimed.attempts == attempt
            claimed.heartbeat_at = jobs.now() - timedelta(minutes=5)
        with worker.make_session.begin() as session:
            assert jobs.recover_stale(session, timedelta(seconds=60)) == [job.id]
    (row,) = job_rows(worker)
    assert row.status == "failed" and "died 3 times" in row.error


def test_cold_start_queue_before_any_model(worker):
    worker.cold_start_queues()
    with worker.make_session() as session:
        queue = learning.queue(session, projects.get_project(session, "demo"))
    assert len(queue) == 43 and queue[0].strategy == "cold-start"
    assert len({q.document_id for q in queue}) == 43


def test_worker_config_refuses_a_heartbeat_too_slow_for_the_stale_limit(tmp_path):
    with pytest.raises(ValueError, match="`stale_after_seconds` must be at least 3 heartbeats"):
        WorkerConfig("sqlite://", tmp_path, heartbeat_seconds=30, stale_after_seconds=60)


# --------------------------------------------------------------------------- serving


def train_now(w: Worker) -> models.TrainingJob:
    with w.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
    w.run()
    return job_rows(w)[-1]


def suggestions_of(w: Worker, version_id: int) -> dict[int, int]:
    """Document row id -> the row id of its first suggestion from the version."""
    with w.make_session() as session:
        rows = session.execute(
            select(models.Suggestion.document_id, func.min(models.Suggestion.id))
            .where(models.Suggestion.model_version_id == version_id)
            .group_by(models.Suggestion.document_id)
        ).all()
    return dict(rows)


def queued_with(w: Worker) -> set[int | None]:
    with w.make_session() as session:
        project = projects.get_project(session, "demo")
        return {q.model_version_id for q in learning.queue(session, project)}


def test_a_round_worse_beyond_the_noise_waits_as_a_candidate_and_predicts_nothing(worker):
    worker.run()
    with worker.make_session.begin() as session:
        v1 = serving.serving_version(session, projects.get_project(session, "demo"))
        assert v1.verdict == "serves: the project's first trained version"
        # v1 scored above what the same gold trains again: a retrain falls below its interval
        metrics = copy.deepcopy(v1.metrics)
        f1 = metrics["evaluation"]["entity"]["strict"]["f1"]
        metrics["evaluation"]["entity"]["strict"]["f1"] = f1 + 0.05
        metrics["evaluation"]["ci"]["entity_strict"] = [f1 + 0.02, f1 + 0.08]
        v1.metrics = metrics
        v1_id, v1_name = v1.id, v1.name
    v1_suggested = suggestions_of(worker, v1_id)
    job = train_now(worker)
    with worker.make_session() as session:
        project = projects.get_project(session, "demo")
        candidate = session.get(models.ModelVersion, job.model_version_id)
        assert serving.serving_version(session, project).id == v1_id  # v1 keeps serving
        assert [r.serving for r in training.version_rows(session, project)] == [False, True]
    assert candidate.status == "ready" and candidate.id != v1_id
    assert candidate.verdict == (
        f"candidate: entity strict F1 {f1:.3f} is below {v1_name}'s 95% interval "
        f"[{f1 + 0.02:.3f}, {f1 + 0.08:.3f}] on the same 6 test notes; a lead can serve it "
        "on the Model page"
    )
    assert (job.status, job.progress) == ("done", 1.0)
    assert job.phase == f"{candidate.name} kept as a {candidate.verdict}"
    assert suggestions_of(worker, candidate.id) == {}  # the pool was not predicted
    assert suggestions_of(worker, v1_id) == v1_suggested
    assert queued_with(worker) == {v1_id}  # nor re-ranked


def test_manual_serves_the_first_version_then_keeps_new_ones_as_candidates(worker):
    set_settings(worker, model_rule="manual")
    worker.run()
    first = job_rows(worker)[-1]
    job = train_now(worker)
    with worker.make_session() as session:
        serving_now = serving.serving_version(
            session, projects.get_project(session, "demo")
        )
        candidate = session.get(models.ModelVersion, job.model_version_id)
    assert serving_now.id == first.model_version_id
    assert candidate.verdict.startswith(
        f"candidate: the project's rule is 'manual' and {serving_now.name} serves"
    )


def test_a_predict_job_suggests_with_the_chosen_version_where_it_has_not(worker):
    worker.run()
    v1 = job_rows(worker)[-1].model_version_id
    v1_suggested = suggestions_of(worker, v1)
    assert len(v1_suggested) == 43
    with worker.make_session.begin() as session:  # two notes v1 never saw, with its words
        pool = modeling.unannotated_pool(session, "demo")
        late = [
            Document(f"late-{i}", f"{doc.text} Seen again.") for i, (_, doc) in enumerate(pool[:2])
        ]
        added = documents.add_documents(session, projects.get_project(session, "demo"), late).added
    set_settings(worker, model_rule="newest")
    v2 = train_now(worker).model_version_id
    assert v2 != v1 and len(suggestions_of(worker, v2)) == 45
    with worker.make_session.begin() as session:
        _, job, _ = serving.choose_version(session, "demo", v1_name(worker, v1), "lea", "back")
    worker.run()
    (done,) = [j for j in job_rows(worker) if j.id == job.id]
    assert (done.kind, done.status, done.model_version_id, done.error) == (
        "predict", "done", v1, "",
    )  # fmt: skip
    after = suggestions_of(worker, v1)
    assert {row: after[row] for row in v1_suggested} == v1_suggested  # kept, not redone
    assert set(after) - set(v1_suggested) == set(added)  # the notes that lacked them
    assert queued_with(worker) == {v1}
    with worker.make_session() as session:
        queue = learning.queue(session, projects.get_project(session, "demo"))
    assert len(queue) == 45


def v1_name(w: Worker, version_id: int) -> str:
    with w.make_session() as session:
        return session.get(models.ModelVersion, version_id).name


def test_predicting_again_stores_nothing_twice(worker, tmp_path):
    modeling.train_project(worker.make_session, "demo", tmp_path / "models", {}, backend="memory")
    first, predicted = modeling.predict_project(worker.make_session, "demo")
    again, predicted_again = modeling.predict_project(worker.make_session, "demo")
    assert first > 0 and again == 0
    assert len(predicted) == len(predicted_again) == 43  # every note ranks


def test_a_stopped_heartbeat_beats_no_more():
    from noteloop.worker import _Beats

    class Counting(_Beats):
        ticks = 0

        def tick(self) -> bool:
            self.ticks += 1
            return True

    with Counting(0.001, "counting") as beats:
        time.sleep(0.05)
        beats.stop()
        stopped_at = beats.ticks
        time.sleep(0.05)
        assert beats.ticks == stopped_at > 0
