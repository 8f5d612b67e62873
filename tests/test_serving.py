"""Which model version serves: the publish rule (pure), and the one writer over a real
SQLite file (its audit row, its refusals, the one row it keeps per project)."""

from __future__ import annotations

import itertools
import multiprocessing
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NotFoundError
from noteloop.core.schema import LabelSchema
from noteloop.core.serving_rule import Decision, Scores, decide
from noteloop.db import model_versions, models, projects, serving
from noteloop.db.engine import init_db, make_engine, session_factory
from noteloop.db.errors import StoreError

NOTES = ("n1", "n2", "n3", "n4", "n5", "n6")
V1 = Scores("v1", 0.639, (0.612, 0.668), NOTES)


def scored(f1: float | None, notes: tuple[str, ...] = NOTES) -> Scores:
    return Scores("v2", f1, None if f1 is None else (f1 - 0.03, f1 + 0.03), notes)


# --------------------------------------------------------------------------- the rule


def test_ci_keeps_a_version_below_the_interval_as_a_candidate():
    assert decide("ci", scored(0.580), V1) == Decision(
        False,
        "candidate: entity strict F1 0.580 is below v1's 95% interval [0.612, 0.668] on the "
        "same 6 test notes; a lead can serve it on the Model page",
    )


def test_ci_serves_at_the_lower_end_of_the_interval_and_above():
    at_edge = decide("ci", scored(0.612), V1)
    assert at_edge.serves and at_edge.verdict == (
        "serves: entity strict F1 0.612 is not below v1's 95% interval [0.612, 0.668] on "
        "the same 6 test notes"
    )
    assert not decide("ci", scored(0.6119), V1).serves
    assert decide("ci", scored(0.70), V1).serves


def test_ci_serves_when_the_scores_do_not_compare():
    other_notes = decide("ci", scored(0.1, NOTES[:5]), V1)
    assert other_notes.serves
    assert other_notes.verdict == (
        "serves: it was tested on other test notes than v1 (5 against 6), so their scores "
        "do not compare"
    )
    assert decide("ci", scored(None, ()), V1).verdict == (
        "serves: it has no test score to compare with v1's"
    )
    unscored = Scores("v1", None, None, ())
    assert decide("ci", scored(0.1), unscored).serves
    no_interval = Scores("v1", 0.639, None, NOTES)  # evaluated without a bootstrap
    assert decide("ci", scored(0.1), no_interval).verdict == (
        "serves: v1 has no test score with an interval to compare with"
    )


def test_newest_always_serves_and_manual_never_once_something_serves():
    assert decide("newest", scored(0.1), V1) == Decision(
        True, "serves: the project's rule is 'newest' (it replaced v1)"
    )
    assert decide("manual", scored(0.9), V1) == Decision(
        False,
        "candidate: the project's rule is 'manual' and v1 serves; a lead can serve it on the "
        "Model page",
    )
    for rule in ("ci", "newest", "manual"):
        assert decide(rule, scored(0.0), None) == Decision(
            True, "serves: the project's first trained version"
        )


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="`model_rule` must be one of ci, newest, manual"):
        decide("best", scored(0.5), V1)


def test_scores_are_read_from_stored_metrics():
    metrics: dict[str, Any] = {
        "evaluation": {"entity": {"strict": {"f1": 0.5}}, "ci": {"entity_strict": [0.4, 0.6]}},
        "tested_on": list(NOTES),
    }
    assert Scores.from_metrics("v", metrics) == Scores("v", 0.5, (0.4, 0.6), NOTES)
    assert Scores.from_metrics("v", {"evaluation": None}) == Scores("v", None, None, ())


# --------------------------------------------------------------------------- the writer


@pytest.fixture
def project(make_session: sessionmaker[Session]) -> str:
    with make_session.begin() as session:
        p = projects.create_project(session, "p", LabelSchema())
        for name, backend, status in (
            ("v1", "encoder", "ready"),
            ("v2", "encoder", "ready"),
            ("v3", "encoder", "pending"),
            ("import:a.jsonl", "import", "ready"),
        ):
            model_versions.register_model_version(
                session, p, name=name, backend=backend, path=f"/{name}", status=status
            )
    return "p"


def use(make_session: sessionmaker[Session], name: str, reason: str = "") -> str:
    with make_session.begin() as session:
        p = projects.get_project(session, "p")
        return serving.use_version(session, p, name, "lea", reason).name


def served(make_session: sessionmaker[Session]) -> str | None:
    with make_session() as session:
        version = serving.serving_version(session, projects.get_project(session, "p"))
        return None if version is None else version.name


def test_use_version_points_the_project_at_a_version_and_audits_it(make_session, project):
    assert served(make_session) is None
    assert use(make_session, "v2") == "v2"
    assert use(make_session, "v1", "v2 misses drug names") == "v1"
    assert served(make_session) == "v1"
    with make_session() as session:
        p = projects.get_project(session, "p")
        assert serving.serving_version(session, p).name == "v1"  # the same lookup
        row = session.get(models.ServingModel, p.id)
        assert (row.chosen_by, row.reason) == ("lea", "v2 misses drug names")
        assert session.scalar(select(func.count()).select_from(models.ServingModel)) == 1
        audits = session.scalars(
            select(models.AuditLog)
            .where(models.AuditLog.action == "use_model_version")
            .order_by(models.AuditLog.id)
        ).all()
    assert [(a.user, a.entity, a.entity_id) for a in audits] == [
        ("lea", "serving_models", p.id),
        ("lea", "serving_models", p.id),
    ]
    assert (audits[0].before, audits[0].after) == (
        {"version": None},
        {"version": "v2", "reason": ""},
    )
    assert (audits[1].before, audits[1].after) == (
        {"version": "v2"},
        {"version": "v1", "reason": "v2 misses drug names"},
    )


def test_use_version_refuses_what_cannot_serve_and_changes_nothing(make_session, project):
    use(make_session, "v1")
    with pytest.raises(
        NotFoundError,
        match=r"project p has no model version 'v9'; its versions: import:a\.jsonl, v3, v2, v1$",
    ):
        use(make_session, "v9")
    with pytest.raises(StoreError, match="model version v3 is pending, not ready: only a version"):
        use(make_session, "v3")
    with pytest.raises(
        StoreError, match=r"model version import:a\.jsonl holds imported suggestions, not a"
    ):
        use(make_session, "import:a.jsonl")
    assert served(make_session) == "v1"
    with make_session() as session:
        n = session.scalar(
            select(func.count())
            .select_from(models.AuditLog)
            .where(models.AuditLog.action == "use_model_version")
        )
    assert n == 1


def test_a_project_without_versions_says_so(make_session):
    with make_session.begin() as session:
        p = projects.create_project(session, "empty", LabelSchema())
        with pytest.raises(NotFoundError, match="project empty has no model version 'v1': it has"):
            serving.use_version(session, p, "v1", "lea", "")


def test_choosing_a_version_queues_one_predict_job(make_session, project):
    with make_session.begin() as session:
        version, job, created = serving.choose_version(session, "p", "v2", "lea", "rollback")
        assert (version.name, job.kind, job.status, created) == ("v2", "predict", "queued", True)
        assert job.reason == "lea chose v2"
    with make_session.begin() as session:
        _, again, created = serving.choose_version(session, "p", "v1", "lea")
    assert (again.id, created) == (job.id, False)  # the queued job predicts with v1 then
    assert served(make_session) == "v1"


# --------------------------------------------------------------------------- PostgreSQL


def _choose_repeatedly(url: str, name: str, times: int, barrier: Any) -> None:
    engine = make_engine(url)
    factory = session_factory(engine, immediate=True)  # the write lock first on SQLite
    barrier.wait(timeout=60)
    for _ in range(times):
        with factory.begin() as session:
            serving.use_version(session, projects.get_project(session, "race"), name, name, "race")
    engine.dispose()


@pytest.mark.both_databases
def test_two_processes_choosing_at_once_leave_one_row_and_a_true_audit(db_url):
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        session.execute(delete(models.Project).where(models.Project.name == "race"))
        p = projects.create_project(session, "race", LabelSchema())
        for version in ("v1", "v2"):
            model_versions.register_model_version(session, p, name=version, backend="b", path="/x")
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    racers = [
        spawn.Process(target=_choose_repeatedly, args=(db_url, v, 20, barrier))
        for v in ("v1", "v2")
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
    assert [r.exitcode for r in racers] == [0, 0]
    with session_factory(engine)() as session:
        p = projects.get_project(session, "race")
        rows = session.scalars(
            select(models.ServingModel).where(models.ServingModel.project_id == p.id)
        ).all()
        audits = session.scalars(
            select(models.AuditLog)
            .where(models.AuditLog.action == "use_model_version", models.AuditLog.entity_id == p.id)
            .order_by(models.AuditLog.id)
        ).all()
    engine.dispose()
    assert len(rows) == 1 and len(audits) == 40
    assert audits[0].before == {"version": None}
    # Each choice saw the one made just before it: the two never overlapped.
    pairs = itertools.pairwise(audits)
    assert all(now.before["version"] == then.after["version"] for then, now in pairs)
