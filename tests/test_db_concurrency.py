"""Two real processes saving the same annotation: one wins, none is lost.

Each child process opens its own engine on the same SQLite file, as the app and the
worker do. The children are started with "spawn", so they share nothing with the test
process but the file.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from noteloop.core.errors import ConflictError
from noteloop.core.schema import Document, EntityType, LabelSchema, Span
from noteloop.db import documents, gold, models, projects
from noteloop.db.engine import init_db, make_engine, session_factory

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema((EntityType("Drug"),))
TEXT = "Aspirin 100 mg, then aspirin again."
ANNOTATOR = "alice"


def _setup(db_url: str, first_save: bool) -> int:
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        project = projects.create_project(session, "p", SCHEMA)
        doc_id = documents.add_documents(session, project, [Document("n1", TEXT)]).added[0]
    if first_save:
        with session_factory(engine).begin() as session:
            spans = [Span("T0", "Drug", 0, 7)]
            gold.save_annotation(session, doc_id, ANNOTATOR, spans, [], expected_version=0)
    engine.dispose()
    return doc_id


def _spans_of(name: str) -> list[Span]:
    return [Span(f"{name}{i}", "Drug", 0, 7) for i in range(3)]


def _save_at_the_barrier(
    db_url: str, doc_id: int, name: str, expected: int, barrier: Any, results: Any
) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    spans = _spans_of(name)
    barrier.wait(timeout=60)
    try:
        with factory() as session:
            gold.save_annotation(
                session, doc_id, ANNOTATOR, spans, [], expected_version=expected, saved_by=name
            )
            session.commit()
        results.put((name, "saved", ""))
    except ConflictError as exc:
        results.put((name, "conflict", f"{exc.saved_by}|{exc.current_version}|{exc}"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("expected", [0, 1])
def test_two_processes_saving_the_same_version_one_wins(db_url: str, expected: int) -> None:
    doc_id = _setup(db_url, first_save=expected == 1)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_save_at_the_barrier, args=(db_url, doc_id, name, expected, barrier, results)
        )
        for name in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    outcome = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    kinds = sorted(kind for _, kind, _ in outcome)
    assert kinds == ["conflict", "saved"], outcome
    winner = next(name for name, kind, _ in outcome if kind == "saved")
    saved_by, current, message = next(d for _, k, d in outcome if k == "conflict").split("|", 2)
    assert (saved_by, int(current)) == (winner, expected + 1)
    assert f"{winner} saved alice's annotation" in message
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        loaded = gold.load_annotation(session, doc_id, ANNOTATOR)
        assert loaded.document.spans == tuple(_spans_of(winner))
        assert (loaded.version, loaded.saved_by) == (expected + 1, winner)
    engine.dispose()


def _append_spans(db_url: str, doc_id: int, name: str, n: int, barrier: Any, results: Any) -> None:
    """Save ``n`` times, each time the loaded spans plus one new one; retry on conflict."""
    engine = make_engine(db_url)
    factory = session_factory(engine)
    saved = conflicts = 0
    barrier.wait(timeout=60)
    while saved < n:
        with factory() as session:
            loaded = gold.load_annotation(session, doc_id, ANNOTATOR)
        spans = [*loaded.document.spans, Span(f"{name}-{saved}", "Drug", 0, 7)]
        try:
            with factory() as session:
                gold.save_annotation(
                    session,
                    doc_id,
                    ANNOTATOR,
                    spans,
                    [],
                    expected_version=loaded.version,
                    saved_by=name,
                )
                session.commit()
            saved += 1
        except ConflictError:
            conflicts += 1
    engine.dispose()
    results.put((name, saved, conflicts))


def test_a_thousand_interleaved_saves_lose_nothing(db_url: str) -> None:
    doc_id = _setup(db_url, first_save=False)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    per_process = 500
    procs = [
        ctx.Process(
            target=_append_spans, args=(db_url, doc_id, name, per_process, barrier, results)
        )
        for name in ("p1", "p2")
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    outcome = sorted(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    elapsed = time.perf_counter() - started
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        loaded = gold.load_annotation(session, doc_id, ANNOTATOR)
        audits = session.scalar(select(func.count()).select_from(models.AuditLog))
    engine.dispose()
    expected_ids = {f"{name}-{i}" for name in ("p1", "p2") for i in range(per_process)}
    assert {s.id for s in loaded.document.spans} == expected_ids
    assert len(loaded.document.spans) == 2 * per_process
    assert loaded.version == 2 * per_process
    assert audits == 2 * per_process
    assert [saved for _, saved, _ in outcome] == [per_process, per_process]
    print(f"1000 saves in {elapsed:.1f} s, conflicts retried: {[c for *_, c in outcome]}")
