"""Claiming the next note, drafts, deliberate submits and conflicts, over the seeded demo
database (the database rules themselves: tests/test_claims.py, tests/test_gold_lifecycle.py)."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select, text

from noteloop.core.errors import ConflictError
from noteloop.core.schema import (
    AnnotationStatus,
    Document,
    EntityType,
    LabelSchema,
    Span,
    Suggestion,
)
from noteloop.db import (
    claims,
    documents,
    gold,
    gold_versions,
    learning,
    model_versions,
    models,
    projects,
    suggestions,
)
from noteloop.db.engine import make_engine, session_factory
from noteloop.screen.annotate_flow import claim_next, discard_draft, open_note, save_draft, submit
from noteloop.screen.components.annotator import EmptySubmitError, UndecidedSuggestionsError

pytestmark = pytest.mark.both_databases


@pytest.fixture
def make_demo(demo_db_url):
    return session_factory(make_engine(demo_db_url))


def state_for(note, spans, seconds=12.5, *, empty=False, reject_open=False):
    return {
        "document_id": str(note.document_row),
        "version": note.view.version,
        "spans": spans,
        "relations": [],
        "decisions": {},
        "seconds": seconds,
        "submitted": True,
        "confirm": {"reject_open": reject_open, "empty": empty},
    }


def first_word_span(note) -> dict:
    word = note.view.text.split()[0]
    start = note.view.text.index(word)
    return {
        "id": "T1", "label": "Problem", "start": start, "end": start + len(word),
        "fragments": [[start, start + len(word)]], "attributes": {}, "source": "manual",
        "suggestion_id": None, "concept": "", "notes": [],
    }  # fmt: skip


def with_suggestions(make_demo, row: int, n: int, name: str = "m") -> None:
    with make_demo.begin() as session:
        project = projects.get_project(session, "demo")
        text = documents.get_document(session, row).text
        version = model_versions.register_model_version(
            session, project, name=name, backend="x", path="-"
        )
        words = [(m.start(), m.end()) for m in re.finditer(r"\w{4,}", text)][:n]
        batch = [Suggestion(Span(f"S{i}", "Problem", a, b), 0.9) for i, (a, b) in enumerate(words)]
        suggestions.add_suggestions(session, row, version.id, batch)


def test_the_queue_decides_and_a_claimed_note_goes_to_nobody_else(make_demo):
    with make_demo.begin() as session:
        project = projects.get_project(session, "demo")
        pool = documents.document_ids(session, project)
        wanted = [pool["rad_010"], pool["ed_008"]]
        learning.replace_queue(
            session,
            project,
            [(wanted[0], 0.9, {}), (wanted[1], 0.8, {})],
            strategy="test",
            model_version_id=None,
        )
    assert claim_next(make_demo, "demo", "ann") == wanted[0]
    first = open_note(make_demo, "demo", wanted[0], "ann")
    assert claim_next(make_demo, "demo", "ann") == wanted[0]  # finish this note first
    assert claim_next(make_demo, "demo", "bob") == wanted[1]  # taken by ann
    assert first.view.version == 0 and first.purpose == "annotate"
    with make_demo() as session:  # opening a note writes no gold
        assert gold.load_annotation(session, wanted[0], "ann").version == 0


def test_submit_saves_gold_time_status_and_a_kept_version(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    note = open_note(make_demo, "demo", row, "ann")
    span = first_word_span(note)
    save_draft(make_demo, note, "ann", state_for(note, [span], seconds=3.0))
    assert submit(make_demo, note, "ann", state_for(note, [span])) == 1
    with make_demo() as session:
        loaded = gold.load_annotation(session, row, "ann")
        kept = gold_versions.history(session, row, "ann")
        assert claims.holder(session, row, "ann") is None  # the claim ends at submit
        assert session.scalar(select(models.Draft)) is None  # and so does the draft
    assert loaded.status == AnnotationStatus.SUBMITTED and loaded.seconds_spent == 12.5
    assert [(s.label, s.start, s.source) for s in loaded.document.spans] == [
        ("Problem", span["start"], "manual")
    ]
    assert [(v.version, v.saved_by, v.n_spans) for v in kept] == [(1, "ann", 1)]


def test_an_empty_or_undecided_submit_is_refused_until_confirmed(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    with_suggestions(make_demo, row, 3)
    note = open_note(make_demo, "demo", row, "ann")
    with pytest.raises(UndecidedSuggestionsError, match="3 suggestions are still open"):
        submit(make_demo, note, "ann", state_for(note, [first_word_span(note)]))
    with pytest.raises(EmptySubmitError, match="nothing to annotate"):
        submit(make_demo, note, "ann", state_for(note, [], reject_open=True))
    with make_demo() as session:
        assert gold.load_annotation(session, row, "ann").version == 0  # nothing saved
    assert submit(make_demo, note, "ann", state_for(note, [], reject_open=True, empty=True)) == 1
    with make_demo() as session:
        statuses = set(session.scalars(select(models.SuggestionDecision.status)))
    assert statuses == {"rejected"}  # left open at submit: rejected, and counted so


def test_a_stale_submission_is_refused_and_names_who_saved(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    note = open_note(make_demo, "demo", row, "ann")
    with make_demo.begin() as session:  # a lead fixes the same annotation meanwhile
        gold.save_annotation(
            session, row, "ann", [Span("T9", "Drug", 0, 3)], [], expected_version=0,
            saved_by="lea",
        )  # fmt: skip
    with pytest.raises(ConflictError, match="lea") as caught:
        submit(make_demo, note, "ann", state_for(note, [], empty=True))
    assert caught.value.saved_by == "lea" and caught.value.current_version == 1
    with make_demo() as session:  # the lead's change is intact
        assert [s.id for s in gold.load_annotation(session, row, "ann").document.spans] == ["T9"]


def test_submit_records_every_decision_on_the_suggestions(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    with_suggestions(make_demo, row, 600)
    note = open_note(make_demo, "demo", row, "ann")
    open_spans = note.view.span_suggestions
    accepted = [
        {"id": f"T{i}", "label": "Problem", "start": s.item.start, "end": s.item.end,
         "source": "accepted", "suggestion_id": s.item.suggestion_id}
        for i, s in enumerate(open_spans[:550])
    ]  # fmt: skip
    state = state_for(note, accepted, reject_open=True)
    state["decisions"] = {str(s.item.suggestion_id): "rejected" for s in open_spans[550:560]}
    submit(make_demo, note, "ann", state)
    with make_demo() as session:
        ids = [s.item.suggestion_id for s in open_spans]
        statuses = suggestions.decided(session, "ann", ids)
    assert [statuses[i] for i in ids[:550]] == ["accepted"] * 550  # more than one chunk
    assert [statuses[i] for i in ids[550:]] == ["rejected"] * (len(ids) - 550)


def test_a_draft_replays_on_the_batch_it_was_made_on(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    with_suggestions(make_demo, row, 5, "m1")
    note = open_note(make_demo, "demo", row, "ann")
    state = state_for(note, [first_word_span(note)])
    state["decisions"] = {str(note.view.span_suggestions[0].item.suggestion_id): "rejected"}
    save_draft(make_demo, note, "ann", state)
    with_suggestions(make_demo, row, 2, "m2")  # a new model suggests meanwhile
    again = open_note(make_demo, "demo", row, "ann")  # a reload
    assert again.view.draft == state and again.batch == note.batch
    assert [s.item.id for s in again.view.span_suggestions] == [
        s.item.id for s in note.view.span_suggestions
    ]
    fresh = discard_draft(make_demo, "demo", again, "ann")
    assert fresh.view.draft is None and fresh.batch != note.batch  # the newest batch now
    assert fresh.key != again.key  # a new widget mount


def test_a_draft_of_an_older_version_is_offered_not_replayed(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    note = open_note(make_demo, "demo", row, "ann")
    state = state_for(note, [first_word_span(note)])
    save_draft(make_demo, note, "ann", state)
    with make_demo.begin() as session:
        gold.save_annotation(session, row, "ann", [], [], expected_version=0, saved_by="lea")
    again = open_note(make_demo, "demo", row, "ann")
    assert again.view.draft is None and again.stale_draft == state


def test_a_lost_claim_refuses_the_submit_and_keeps_the_draft(make_demo):
    row = claim_next(make_demo, "demo", "ann")
    note = open_note(make_demo, "demo", row, "ann")
    state = state_for(note, [first_word_span(note)])
    with make_demo.begin() as session:
        claims.release(session, row, "ann", by="lea")
    saved = save_draft(make_demo, note, "ann", state)
    assert saved.holds_claim is False
    with pytest.raises(claims.ClaimLostError, match="is no longer yours"):
        submit(make_demo, note, "ann", state)
    with make_demo() as session:
        assert session.scalar(select(models.Draft.state)) == state


def test_opening_a_note_while_the_worker_writes_waits_its_turn(make_demo, demo_db_url, monkeypatch):
    """The worker takes the write lock right after the page read the note: the claim must
    wait for it, not fail (a transaction that began by reading is refused its write when
    another process wrote in between: "database is locked")."""
    row = claim_next(make_demo, "demo", "ann")
    worker = session_factory(make_engine(demo_db_url), immediate=True)
    go, locked, release = threading.Event(), threading.Event(), threading.Event()

    def heartbeat() -> None:  # a worker's short write transaction
        go.wait(5)
        with worker.begin() as session:
            session.execute(text("UPDATE projects SET settings = settings"))
            locked.set()
            release.wait(5)

    read = gold.load_annotation

    def read_then_let_the_worker_in(*args, **kwargs):
        loaded = read(*args, **kwargs)
        if not go.is_set():
            go.set()
            locked.wait(5)
            threading.Timer(0.3, release.set).start()
        return loaded

    monkeypatch.setattr(gold, "load_annotation", read_then_let_the_worker_in)
    thread = threading.Thread(target=heartbeat)
    thread.start()
    note = open_note(make_demo, "demo", row, "ann")
    thread.join()
    assert note.view.version == 0


def _submit_empty(make_session, annotator: str) -> int:
    row = claim_next(make_session, "two", annotator)
    note = open_note(make_session, "two", row, annotator)
    submit(make_session, note, annotator, state_for(note, [], empty=True))
    return row


@pytest.fixture
def two_people(make_session):
    """A project of three unannotated notes; ``share`` of them are double-annotated."""

    def make(share: float):
        with make_session.begin() as session:
            project = projects.create_project(
                session,
                "two",
                LabelSchema((EntityType("Problem"),)),
                {"double_annotation": share},
            )
            docs = [Document(f"n{i}", f"Note {i}: chest pain for {i} days.") for i in range(3)]
            documents.add_documents(session, project, docs)
        return make_session

    return make


def test_a_note_chosen_for_double_annotation_goes_to_one_second_annotator(two_people):
    make = two_people(1.0)  # every note is chosen
    first = _submit_empty(make, "ann")
    assert claim_next(make, "two", "ann") != first  # never one's own note again
    assert claim_next(make, "two", "bob") == first  # agreement first
    second = open_note(make, "two", first, "bob")
    assert second.purpose == "second"
    assert claim_next(make, "two", "carol") != first  # bob holds it: carol gets another
    submit(make, second, "bob", state_for(second, [], empty=True))
    assert claim_next(make, "two", "dave") != first  # two versions: nobody gets a third
    with make() as session:
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
    assert claim_next(make, "two", "bob") != first


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
