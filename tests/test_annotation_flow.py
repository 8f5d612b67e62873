"""Next note, claiming, submitting and conflicts, over the seeded demo database."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select, text

from noteloop.annotation import next_document, open_note, submit
from noteloop.core.errors import ConflictError
from noteloop.core.schema import (
    AnnotationStatus,
    Document,
    EntityType,
    LabelSchema,
    Span,
    Suggestion,
)
from noteloop.db import learning, models, repo
from noteloop.db.engine import make_engine, session_factory


@pytest.fixture
def make_demo(demo_db_url):
    return session_factory(make_engine(demo_db_url))


def state_for(note, spans, seconds=12.5):
    return {
        "document_id": str(note.document_row),
        "version": note.view.version,
        "spans": spans,
        "relations": [],
        "decisions": {},
        "seconds": seconds,
        "submitted": True,
    }


def test_the_queue_decides_and_a_claimed_note_goes_to_nobody_else(make_demo):
    with make_demo.begin() as session:
        project = repo.get_project(session, "demo")
        pool = repo.document_ids(session, project)
        wanted = [pool["rad_010"], pool["ed_008"]]
        learning.replace_queue(
            session,
            project,
            [(wanted[0], 0.9, {}), (wanted[1], 0.8, {})],
            strategy="test",
            model_version_id=None,
        )
    with make_demo() as session:
        assert next_document(session, repo.get_project(session, "demo"), "ann") == wanted[0]
    first = open_note(make_demo, "demo", wanted[0], "ann")
    with make_demo() as session:
        project = repo.get_project(session, "demo")
        assert next_document(session, project, "ann") == wanted[0]  # finish this note first
        assert next_document(session, project, "bob") == wanted[1]  # taken by ann
    assert first.view.version == 1


def test_submit_saves_gold_time_and_status(make_demo):
    with make_demo() as session:
        row = next_document(session, repo.get_project(session, "demo"), "ann")
    note = open_note(make_demo, "demo", row, "ann")
    word = note.view.text.split()[0]
    start = note.view.text.index(word)
    span = {
        "id": "T1",
        "label": "Problem",
        "start": start,
        "end": start + len(word),
        "fragments": [[start, start + len(word)]],
        "attributes": {},
        "source": "manual",
        "suggestion_id": None,
        "concept": "",
        "notes": [],
    }
    assert submit(make_demo, note, "ann", state_for(note, [span])) == 2
    with make_demo() as session:
        loaded = repo.load_annotation(session, row, "ann")
    assert loaded.status == AnnotationStatus.SUBMITTED and loaded.seconds_spent == 12.5
    assert [(s.label, s.start, s.source) for s in loaded.document.spans] == [
        ("Problem", start, "manual")
    ]


def test_a_stale_submission_is_refused_and_names_who_saved(make_demo):
    with make_demo() as session:
        row = next_document(session, repo.get_project(session, "demo"), "ann")
    note = open_note(make_demo, "demo", row, "ann")
    with make_demo.begin() as session:  # a lead fixes the same annotation meanwhile
        repo.save_annotation(
            session,
            row,
            "ann",
            [Span("T9", "Drug", 0, 3)],
            [],
            expected_version=1,
            saved_by="lea",
            status=AnnotationStatus.IN_PROGRESS,
        )
    with pytest.raises(ConflictError, match="lea") as caught:
        submit(make_demo, note, "ann", state_for(note, []))
    assert caught.value.saved_by == "lea" and caught.value.current_version == 2
    with make_demo() as session:  # the lead's change is intact
        assert [s.id for s in repo.load_annotation(session, row, "ann").document.spans] == ["T9"]


def test_submit_records_every_decision_on_the_suggestions(make_demo):
    with make_demo.begin() as session:
        project = repo.get_project(session, "demo")
        row = next_document(session, project, "ann")
        text = repo.get_document(session, row).text
        version = repo.register_model_version(session, project, name="m", backend="x", path="-")
        words = [(m.start(), m.end()) for m in re.finditer(r"\w{4,}", text)][:600]
        suggestions = [
            Suggestion(Span(f"S{i}", "Problem", a, b), 0.9) for i, (a, b) in enumerate(words)
        ]
        repo.add_suggestions(session, row, version.id, suggestions)
    note = open_note(make_demo, "demo", row, "ann")
    open_spans = note.view.span_suggestions
    accepted = [
        {"id": f"T{i}", "label": "Problem", "start": s.item.start, "end": s.item.end,
         "source": "accepted", "suggestion_id": s.item.suggestion_id}
        for i, s in enumerate(open_spans[:550])
    ]  # fmt: skip
    state = state_for(note, accepted)
    state["decisions"] = {str(s.item.suggestion_id): "rejected" for s in open_spans[550:560]}
    submit(make_demo, note, "ann", state)
    with make_demo() as session:
        statuses = dict(
            session.execute(select(models.Suggestion.id, models.Suggestion.status)).all()
        )
    ids = [s.item.suggestion_id for s in open_spans]
    assert [statuses[i] for i in ids[:550]] == ["accepted"] * 550  # more than one chunk
    assert [statuses[i] for i in ids[550:560]] == ["rejected"] * 10
    assert {statuses[i] for i in ids[560:]} == {"open"}


def test_opening_a_note_while_the_worker_writes_waits_its_turn(
    make_demo, demo_db_url, monkeypatch
):
    """The worker takes the write lock right after the page read the note: the claim must
    wait for it, not fail (a transaction that began by reading is refused its write when
    another process wrote in between: "database is locked")."""
    with make_demo() as session:
        row = next_document(session, repo.get_project(session, "demo"), "ann")
    worker = session_factory(make_engine(demo_db_url), immediate=True)
    go, locked, release = threading.Event(), threading.Event(), threading.Event()

    def heartbeat() -> None:  # a worker's short write transaction
        go.wait(5)
        with worker.begin() as session:
            session.execute(text("UPDATE projects SET settings = settings"))
            locked.set()
            release.wait(5)

    read = repo.load_annotation

    def read_then_let_the_worker_in(*args, **kwargs):
        loaded = read(*args, **kwargs)
        if not go.is_set():
            go.set()
            locked.wait(5)
            threading.Timer(0.3, release.set).start()
        return loaded

    monkeypatch.setattr(repo, "load_annotation", read_then_let_the_worker_in)
    thread = threading.Thread(target=heartbeat)
    thread.start()
    note = open_note(make_demo, "demo", row, "ann")
    thread.join()
    assert note.view.version == 1


def _submit_empty(make_session, annotator: str) -> int:
    with make_session() as session:
        row = next_document(session, repo.get_project(session, "two"), annotator)
    note = open_note(make_session, "two", row, annotator)
    submit(make_session, note, annotator, state_for(note, []))
    return row


@pytest.fixture
def two_people(make_session):
    """A project of three unannotated notes; ``share`` of them are double-annotated."""

    def make(share: float):
        with make_session.begin() as session:
            project = repo.create_project(
                session, "two", LabelSchema((EntityType("Problem"),)),
                {"double_annotation": share},
            )
            docs = [Document(f"n{i}", f"Note {i}: chest pain for {i} days.") for i in range(3)]
            repo.add_documents(session, project, docs)
        return make_session

    return make


def test_a_note_chosen_for_double_annotation_goes_to_one_second_annotator(two_people):
    make = two_people(1.0)  # every note is chosen
    first = _submit_empty(make, "ann")
    with make() as session:
        project = repo.get_project(session, "two")
        assert next_document(session, project, "ann") != first  # never one's own note again
        assert next_document(session, project, "bob") == first  # agreement first
    second = open_note(make, "two", first, "bob")
    with make() as session:  # bob has it in progress: carol gets another note
        assert next_document(session, repo.get_project(session, "two"), "carol") != first
    submit(make, second, "bob", state_for(second, []))
    with make() as session:  # two versions: nobody gets it a third time
        assert next_document(session, repo.get_project(session, "two"), "carol") != first
        submitted = session.scalars(
            select(models.Annotation.annotator).where(
                models.Annotation.document_id == first,
                models.Annotation.status == AnnotationStatus.SUBMITTED.value,
            )
        ).all()
    assert sorted(submitted) == ["ann", "bob"]


def test_without_a_share_a_submitted_note_goes_to_nobody_else(two_people):
    make = two_people(0.0)
    first = _submit_empty(make, "ann")
    with make() as session:
        assert next_document(session, repo.get_project(session, "two"), "bob") != first


def test_the_share_picks_notes_by_their_text_stably():
    from hashlib import sha256

    from noteloop.core.agreement import chosen_for_double_annotation

    hashes = [sha256(f"note {i}".encode()).hexdigest() for i in range(2000)]
    tenth = [h for h in hashes if chosen_for_double_annotation(h, 0.1)]
    assert 150 < len(tenth) < 250  # about a tenth of the notes
    assert set(tenth) <= {h for h in hashes if chosen_for_double_annotation(h, 0.3)}
    assert not any(chosen_for_double_annotation(h, 0.0) for h in hashes)
    assert all(chosen_for_double_annotation(h, 1.0) for h in hashes)
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\], got 1.5"):
        chosen_for_double_annotation(hashes[0], 1.5)
