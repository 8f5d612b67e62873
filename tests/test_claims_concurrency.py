"""Eight annotators asking for notes at once, as the Annotate page does: nobody ever gets
a note someone else holds or submitted (double annotation aside).

Each child process opens its own engine on the same SQLite file, as separate app
processes do, and loops: ask for the next note, submit it, ask again, 100 times. The
children start with "spawn" and share nothing with the test process but the file.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from noteloop.core.schema import AnnotationStatus, Document, EntityType, LabelSchema
from noteloop.db import claims, documents, gold, models, projects
from noteloop.db.engine import begin_write, init_db, make_engine, session_factory
from noteloop.screen import annotate_flow

PEOPLE = 8
ASKS = 100


def _setup(db_url: str, n_notes: int, share: float) -> None:
    engine = init_db(db_url)
    with session_factory(engine).begin() as session:
        project = projects.create_project(
            session, "p", LabelSchema((EntityType("Problem"),)), {"double_annotation": share}
        )
        docs = [Document(f"n{i}", f"Note {i}: cough for {i % 30} days.") for i in range(n_notes)]
        documents.add_documents(session, project, docs)
    engine.dispose()


def _annotate(db_url: str, name: str, barrier: Any, results: Any) -> None:
    """Ask, submit, ask again: what an annotator does on the Annotate page."""
    engine = make_engine(db_url)
    factory = session_factory(engine)
    got: list[int] = []
    barrier.wait(timeout=120)
    try:
        for _ in range(ASKS):
            row = annotate_flow.claim_next(factory, "p", name)
            if row is None:
                break
            got.append(row)
            with factory.begin() as session:
                begin_write(session)
                claims.require_held(session, row, name)
                gold.save_annotation(session, row, name, [], [], expected_version=0)
                claims.finish(session, row, name)
        results.put((name, got, ""))
    except Exception as exc:  # reported to the test, which fails with it
        results.put((name, got, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def _run(db_url: str) -> dict[str, list[int]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(PEOPLE), ctx.Queue()
    procs = [
        ctx.Process(target=_annotate, args=(db_url, f"a{i}", barrier, results))
        for i in range(PEOPLE)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [f"{name}: {err}" for name, _, err in out if err]
    assert not errors, errors
    return {name: got for name, got, _ in out}


def _submitted_by(db_url: str) -> dict[int, list[str]]:
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        rows = session.execute(
            select(models.Annotation.document_id, models.Annotation.annotator).where(
                models.Annotation.status == AnnotationStatus.SUBMITTED.value
            )
        ).all()
    engine.dispose()
    out: dict[int, list[str]] = {}
    for doc, who in rows:
        out.setdefault(doc, []).append(who)
    return out


pytestmark = pytest.mark.both_databases


def test_eight_annotators_asking_100_times_never_share_a_note(db_url):
    _setup(db_url, PEOPLE * ASKS + 50, share=0.0)
    got = _run(db_url)
    asks = [row for rows in got.values() for row in rows]
    assert len(asks) == PEOPLE * ASKS  # every ask was answered
    assert max(Counter(asks).values()) == 1  # and no note went to two people
    assert all(len(who) == 1 for who in _submitted_by(db_url).values())


def test_double_annotation_gives_a_chosen_note_to_exactly_two_people(db_url):
    _setup(db_url, 150, share=0.3)
    _run(db_url)
    with_two = {doc: who for doc, who in _submitted_by(db_url).items() if len(who) == 2}
    assert with_two  # the chosen notes got their second annotator
    assert all(len(who) <= 2 for who in _submitted_by(db_url).values())
    assert all(len(set(who)) == len(who) for who in with_two.values())  # two different people
