"""A worker killed with SIGKILL mid-training: no half model, and a new worker finishes the job.

This runs the real ``noteloop worker`` command with the real MiniLM model, in subprocesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from noteloop.db import model_versions, models, projects
from noteloop.db.engine import make_engine, session_factory

pytestmark = [pytest.mark.both_databases, pytest.mark.slow]


def start_worker(db_url: str, models_dir: Path, log: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NOTELOOP_DB": db_url}
    command = [
        sys.executable,
        "-m",
        "noteloop.cli",
        "worker",
        "--threads",
        str(threads),
        "--poll",
        "0.2",
        "--stale-after",
        "10",
        "--max-jobs",
        "1",
        "--models-dir",
        str(models_dir),
    ]
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def the_job(make_session) -> models.TrainingJob | None:
    with make_session() as session:
        return session.scalars(select(models.TrainingJob)).first()


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_kill_9_mid_training_leaves_no_half_model_and_a_new_worker_recovers(demo_db_url, tmp_path):
    make_session = session_factory(make_engine(demo_db_url))
    with make_session.begin() as session:
        project = projects.get_project(session, "demo")
        # one short epoch: the test is about the kill, not about what the model learns
        config = {"epochs": 1, "relation_on_predicted": False}
        projects.update_project_settings(session, project, {"model_config": config}, "test")
    models_dir, log = tmp_path / "models", tmp_path / "worker.log"

    # one thread while the test polls beside it; the second worker runs alone and has both
    first = start_worker(demo_db_url, models_dir, log, threads=1)

    def training() -> bool:
        job = the_job(make_session)
        return job is not None and job.phase.startswith("training: epoch")

    wait_for(training, 300, "training to start", log)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    killed = the_job(make_session)
    assert killed.status == "running" and killed.attempts == 1  # orphaned, not finished
    with make_session() as session:
        assert session.scalars(select(models.ModelVersion)).first() is None
    assert not [p for p in models_dir.glob("demo/*") if not p.name.startswith(".tmp-")]

    second = start_worker(demo_db_url, models_dir, log, threads=2)
    assert second.wait(timeout=600) == 0, log.read_text()[-3000:]
    job = the_job(make_session)
    assert (job.status, job.attempts, job.error) == ("done", 2, "")
    with make_session() as session:
        (version,) = session.scalars(select(models.ModelVersion)).all()
    assert job.model_version_id == version.id
    assert Path(version.path, "noteloop.json").is_file()
    with make_session() as session:  # readable by a worker on any other host
        assert model_versions.has_files(session, version.id)
    assert not list(models_dir.glob("demo/.tmp-*"))
