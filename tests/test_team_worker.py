"""Workers on several hosts: their own temporary folders, models read from the database,
a pool predicted in chunks by several workers, a pinned GPU, short suggestion writes."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fakes import MEMORY_BACKEND, MemoryExtractor
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.db import chunks, jobs, learning, model_versions, models, projects, suggestions
from noteloop.usecases import modeling
from noteloop.worker import DeviceError, Worker, WorkerConfig, pin_gpu

pytestmark = pytest.mark.both_databases


@pytest.fixture(autouse=True)
def memory_backend():
    modeling.register_backend("memory", MEMORY_BACKEND)
    yield
    modeling.BACKENDS.pop("memory", None)


def make_worker(
    db_url: str, models_dir: Path, name: str, stale_after: float = 1.0, **extra
) -> Worker:
    config = WorkerConfig(db_url, models_dir, poll_seconds=0.05, heartbeat_seconds=0.05,
                          stale_after_seconds=stale_after, worker_id=name, **extra)  # fmt: skip
    return Worker(config)


def use_memory(w: Worker) -> None:
    with w.make_session.begin() as session:
        demo = projects.get_project(session, "demo")
        projects.update_project_settings(session, demo, {"backend": "memory"}, "test")


# --------------------------------------------------------------------------- temp folders


def test_a_starting_worker_removes_only_folders_no_live_worker_writes(demo_db_url, tmp_path):
    me = make_worker(demo_db_url, tmp_path, "host-a:1")
    with me.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"))
    with me.make_session.begin() as session:
        running = jobs.claim_next(session, "host-b:7")
    demo = tmp_path / "demo"
    folders = {
        "other, running": modeling.temp_name("host-b:7", "v1", running.id, 1),
        "other, fetching": modeling.temp_name("host-b:7", "v2"),
        "mine": modeling.temp_name("host-a:1", "v3", 99, 1),
        "attempt over": modeling.temp_name("host-c:3", "v4", running.id + 1, 1),
        "old": modeling.temp_name("host-b:7", "v5"),
    }
    for name in folders.values():
        (demo / name).mkdir(parents=True)
        (demo / name / "noteloop.json").write_text("{}")
    two_days_ago = time.time() - 2 * 86400
    os.utime(demo / folders["old"], (two_days_ago, two_days_ago))
    removed = {p.name for p in me.sweep_temp_folders()}
    assert removed == {folders["mine"], folders["attempt over"], folders["old"]}
    assert (demo / folders["other, running"] / "noteloop.json").is_file()
    assert (demo / folders["other, fetching"]).is_dir()


def test_temp_names_carry_worker_job_and_attempt():
    name = modeling.temp_name("gpu-box.lab:4711", "v20261205-1", 12, 3)
    assert name == ".tmp-gpu-box_lab_4711.12.3.v20261205-1"
    assert modeling.temp_owner(name) == modeling.TempOwner("gpu-box_lab_4711", 12, 3)
    assert modeling.temp_owner(".tmp-v20261205-1") is None  # an older worker's name


# --------------------------------------------------------------------------- shared models


def test_a_model_published_on_one_host_loads_on_another_from_the_database(
    demo_db_url, tmp_path
):
    host_a, host_b = tmp_path / "a", tmp_path / "b"
    w = make_worker(demo_db_url, host_a, "a:1")
    trained = modeling.train_project(w.make_session, "demo", host_a, {}, backend="memory")
    with w.make_session() as session:
        stored = dict(model_versions.files_of(session, trained.version_id))
    assert set(stored) == {"noteloop.json"}
    assert stored["noteloop.json"] == (trained.path / "noteloop.json").read_bytes()
    folder = modeling.version_folder(w.make_session, trained.version_id, host_b, "b:1")
    assert folder == host_b / "demo" / trained.name
    assert (folder / "noteloop.json").read_bytes() == stored["noteloop.json"]
    assert not list((host_b / "demo").glob(".tmp-*"))
    on_a = modeling.load_extractor(trained.path)
    on_b = modeling.load_version(w.make_session, trained.version_id, host_b)
    assert isinstance(on_b, MemoryExtractor) and on_b.lexicon == on_a.lexicon
    # Host b predicts the pool with it, with host a's folder gone.
    for f in trained.path.iterdir():
        f.unlink()
    trained.path.rmdir()
    stored_b, predicted = modeling.predict_project(w.make_session, "demo", models_dir=host_b)
    assert stored_b > 0 and len(predicted) == 43


def test_the_command_line_on_another_host_evaluates_from_the_database(demo_db_url, tmp_path):
    w = make_worker(demo_db_url, tmp_path / "a", "a:1")
    trained = modeling.train_project(w.make_session, "demo", tmp_path / "a", {}, backend="memory")
    shutil.rmtree(trained.path)  # only the database has the version now
    result = CliRunner().invoke(
        app,
        ["evaluate", "--project", "demo", "--models-dir", str(tmp_path / "b"),
         "--db", demo_db_url],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "entity strict" in result.output
    assert (tmp_path / "b" / "demo" / trained.name / "noteloop.json").exists()


def test_a_version_without_stored_files_loads_from_its_path_or_says_why(demo_db_url, tmp_path):
    w = make_worker(demo_db_url, tmp_path / "a", "a:1")
    trained = modeling.train_project(w.make_session, "demo", tmp_path / "a", {}, backend="memory")
    with w.make_session.begin() as session:  # as a version published before 0005
        session.query(models.ModelFile).delete()
    assert modeling.version_folder(w.make_session, trained.version_id, tmp_path / "b") == (
        trained.path
    )
    (trained.path / "noteloop.json").unlink()
    with pytest.raises(modeling.NoteloopError, match="the database holds none of its files"):
        modeling.version_folder(w.make_session, trained.version_id, tmp_path / "b")


# --------------------------------------------------------------------------- chunks


def test_two_workers_predict_a_pool_in_chunks_exactly_once(demo_db_url, tmp_path, monkeypatch):
    # Live chunks must not look stale: on a loaded 2-core machine a heartbeat can wait
    # over a second for SQLite's write lock, and a chunk taken over is run twice.
    owner = make_worker(demo_db_url, tmp_path / "a", "a:1", stale_after=10.0, chunk_notes=5)
    helper = make_worker(demo_db_url, tmp_path / "b", "b:1", stale_after=10.0, chunk_notes=5)
    use_memory(owner)
    version = modeling.train_project(owner.make_session, "demo", tmp_path / "a", {},
                                     backend="memory")  # fmt: skip
    slow_predict = MemoryExtractor.predict

    def predict(self, docs, **kwargs):
        time.sleep(0.02 * len(docs))  # long enough for the helper to take chunks
        return slow_predict(self, docs, **kwargs)

    monkeypatch.setattr(MemoryExtractor, "predict", predict)
    taken: list[tuple[str, list[int]]] = []
    run_chunk = Worker.run_chunk

    def recorded(self, chunk):
        taken.append((self.config.worker_id, list(chunk.document_ids)))
        return run_chunk(self, chunk)

    monkeypatch.setattr(Worker, "run_chunk", recorded)
    with owner.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"), kind="predict")
    claimed = owner.claim()
    helping = threading.Thread(target=helper.run, daemon=True)
    helping.start()
    assert owner.run_job(claimed) == "done"
    helper.stop.set()
    helping.join(timeout=30)
    rows = [row for _, ids in taken for row in ids]
    with owner.make_session() as session:
        pool = {row for row, _ in modeling.unannotated_pool(session, "demo")}
        per_note = Counter(
            session.scalars(
                select(models.Suggestion.document_id)
                .where(models.Suggestion.model_version_id == version.version_id)
            )
        )  # fmt: skip
        queue = learning.queue(session, projects.get_project(session, "demo"))
        left = session.scalar(select(func.count(models.PredictChunk.id)))
    assert sorted(rows) == sorted(pool)  # every note once
    assert {who for who, _ in taken} == {"a:1", "b:1"}  # both workers predicted
    assert len(taken) == 9  # 43 notes, 5 a chunk
    assert sorted(q.document_id for q in queue) == sorted(pool)
    assert left == 0  # chunks go with their job
    # The same suggestions as one process predicting alone: none stored twice.
    again, _ = modeling.predict_project(owner.make_session, "demo")
    assert again == 0 and set(per_note) <= pool


def test_a_small_pool_is_one_chunk(demo_db_url, tmp_path):
    w = make_worker(demo_db_url, tmp_path, "a:1")
    with w.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"))
    job = w.claim()
    version = modeling.train_project(w.make_session, "demo", tmp_path, {}, backend="memory")
    with w.make_session.begin() as session:
        owner = jobs.Owner.of(job)
        assert chunks.split(session, job.id, owner, version.version_id, list(range(43)), 64) == 1


def test_a_chunk_whose_worker_died_is_taken_again(demo_db_url, tmp_path):
    w = make_worker(demo_db_url, tmp_path, "a:1")
    with w.make_session.begin() as session:
        jobs.enqueue(session, projects.get_project(session, "demo"))
    job = w.claim()
    version = modeling.train_project(w.make_session, "demo", tmp_path, {}, backend="memory")
    with w.make_session.begin() as session:
        chunks.split(session, job.id, jobs.Owner.of(job), version.version_id, [1, 2, 3], 2)
    with w.make_session.begin() as session:
        dead = chunks.claim(session, "dead:1")
    time.sleep(1.1)
    assert w.recover_stale() == [job.id]  # the job too: nobody beat for it either
    with w.make_session.begin() as session:
        assert chunks.claim(session, "b:1") is None  # a chunk of an attempt that ended
    with pytest.raises(jobs.JobLostError), w.make_session.begin() as session:
        chunks.heartbeat(session, dead.id, chunks.owner_of(dead))


# --------------------------------------------------------------------------- device


def test_worker_device_is_checked_and_pins_one_gpu(tmp_path):
    with pytest.raises(ValueError, match=r"`device` must be 'cpu', 'cuda', 'cuda:N' .* got 'gpu1'"):
        WorkerConfig("sqlite://", tmp_path, device="gpu1")
    config = WorkerConfig("sqlite://", tmp_path, device="cuda:1")
    assert (config.gpu, config.overrides()) == (1, {"device": "cuda"})
    assert WorkerConfig("sqlite://", tmp_path).overrides() == {}  # the project's own choice
    environ: dict[str, str] = {}
    assert pin_gpu(1, environ) == "1" and environ == {"CUDA_VISIBLE_DEVICES": "1"}
    environ = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert pin_gpu(1, environ) == "3"
    with pytest.raises(DeviceError, match="lets this process see 1 GPU"):
        pin_gpu(1, {"CUDA_VISIBLE_DEVICES": "3"})


def test_noteloop_worker_refuses_an_unknown_device(tmp_path):
    result = CliRunner().invoke(
        app, ["worker", "--device", "cuda:x", "--db", str(tmp_path / "n.db")]
    )
    assert result.exit_code == 1
    assert "--device must be 'cpu', 'cuda', 'cuda:N'" in result.output
    assert "got 'cuda:x'" in result.output


# --------------------------------------------------------------------------- short writes


def test_suggestions_are_written_a_few_notes_per_transaction(demo_db_url, tmp_path, monkeypatch):
    w = make_worker(demo_db_url, tmp_path, "a:1")
    modeling.train_project(w.make_session, "demo", tmp_path, {}, backend="memory")
    sizes: list[int] = []
    write = suggestions.add_checked_suggestions

    def recorded(session, version_id, batches):
        sizes.append(len(batches))
        return write(session, version_id, batches)

    monkeypatch.setattr(suggestions, "add_checked_suggestions", recorded)
    stored, _ = modeling.predict_project(w.make_session, "demo")
    assert stored > 0 and sum(sizes) == 43
    assert max(sizes) == modeling.NOTES_PER_COMMIT == 4


def test_checked_suggestions_skip_notes_that_have_them(demo_db_url, tmp_path):
    w = make_worker(demo_db_url, tmp_path, "a:1")
    trained = modeling.train_project(w.make_session, "demo", tmp_path, {}, backend="memory")
    _, predictions = modeling.predict_project(w.make_session, "demo")
    batches = [(row, [*p.spans, *p.relations]) for row, p in predictions[:3]]
    with w.make_session.begin() as session:
        assert suggestions.add_checked_suggestions(session, trained.version_id, batches) == 0


# --------------------------------------------------------------------------- database errors


def test_a_database_error_in_the_loop_is_logged_and_the_loop_goes_on(
    demo_db_url, tmp_path, monkeypatch, caplog
):
    w = make_worker(demo_db_url, tmp_path, "a:1", max_jobs=1)
    use_memory(w)
    calls = []
    claim = Worker.claim

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return claim(self)

    monkeypatch.setattr(Worker, "claim", flaky)
    assert w.run() == 1
    (line,) = [r.getMessage() for r in caplog.records if "loop could not" in r.getMessage()]
    assert line.startswith("the worker's loop could not use the database: the database ")
    assert "server closed the connection" in line and "Traceback" not in line


def test_a_database_error_in_a_job_fails_it_with_a_readable_error(
    demo_db_url, tmp_path, monkeypatch
):
    w = make_worker(demo_db_url, tmp_path, "a:1", max_jobs=1)
    use_memory(w)

    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("could not write to file: No space left"))

    monkeypatch.setattr(modeling, "train_project", broken)
    assert w.run() == 1
    with w.make_session() as session:
        (job,) = session.scalars(select(models.TrainingJob)).all()
    assert job.status == "failed" and job.error.startswith("the database ")
    assert "could not write to file: No space left; nothing was saved" in job.error
    assert "[SQL:" not in job.error
