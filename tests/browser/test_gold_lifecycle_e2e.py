"""The gold lifecycle in a real headless Chromium, on the served app (``conftest.py``'s
``app``: the seeded demo, a fake model's suggestions, a ranked queue).

Each test proves one promise of the lifecycle from the browser and checks the database:
logins and drafts survive a reload, a submit is deliberate, a reopened note's earlier
version can be restored, skip and release give a note back, a lead's login claims
nothing, a retired document leaves the queue and the export, and serving an older model
version changes the suggestions annotators see. Every test annotates as annotators of
its own (added to the demo project), so no test finds another's claims, skips or drafts.
Screenshots of the key screens go under artifacts/.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from app_server import (
    WIDGET,
    SeededApp,
    accept_first,
    add_annotator,
    choose,
    draw_span,
    get_next_note,
    held_note,
    log_in,
    plan,
    wait_for_note,
)
from fakes import MEMORY_BACKEND, MemoryExtractor
from sqlalchemy import select
from widget_driver import answer, picture, question

from noteloop.core.schema import AnnotationStatus
from noteloop.db import (
    accounts,
    claims,
    documents,
    gold,
    gold_versions,
    model_versions,
    models,
    projects,
    serving,
    suggestions,
)
from noteloop.usecases import modeling
from noteloop.worker import Worker, WorkerConfig

pytestmark = pytest.mark.browser


# --------------------------------------------------------------------------- helpers


def claim_rows(sessions: Any) -> list[tuple[int, str]]:
    """Every claim in the database: (document row, annotator)."""
    with sessions() as session:
        return list(session.execute(select(models.Claim.document_id, models.Claim.annotator)))


def gold_of(sessions: Any, row: int, annotator: str) -> set[tuple[str, int, int, str]]:
    """The annotator's current gold spans of the note: (label, start, end, source)."""
    with sessions() as session:
        doc = gold.load_annotation(session, row, annotator).document
    return {(s.label, s.start, s.end, s.source.value) for s in doc.spans}


def external_id(sessions: Any, row: int) -> str:
    with sessions() as session:
        return documents.get_document(session, row).external_id


def wait_for_draft(
    sessions: Any, row: int, annotator: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The annotator's draft of the note once ``done`` says it holds what the widget shows
    (the widget sends its state about a second after the last change)."""
    deadline = time.monotonic() + 15
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        with sessions() as session:
            draft = session.scalar(
                select(models.Draft).where(
                    models.Draft.document_id == row, models.Draft.annotator == annotator
                )
            )
            state = dict(draft.state) if draft is not None else None
        if state is not None and done(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"no draft of note {row} by {annotator} as expected: {state}")


def focus_widget(page: Any) -> None:
    """Put the keyboard focus in the widget without selecting anything."""
    page.locator("#nl-ann-text").click(position={"x": 5, "y": 5})


def queue_order(sessions: Any) -> list[int]:
    """Every note the queue would still hand out, in order: claimed for stand-ins, one
    each, in a transaction that is rolled back."""
    with sessions() as session:
        project = projects.get_project(session, "demo")
        out = []
        for i in itertools.count():
            row = claims.claim_next(session, project, f"stand-in-{i}")
            if row is None:
                break
            out.append(row)
        session.rollback()
    return out


def release(page: Any) -> None:
    page.get_by_role("button", name="Release").click()
    page.get_by_role("button", name="Release this note").click()
    page.get_by_role("button", name="Get the next note").wait_for()
    page.locator(WIDGET).wait_for(state="detached")  # the run that gave it back is over


# --------------------------------------------------------------------------- logins


def test_a_login_claims_nothing_and_a_lead_lands_on_the_dashboard(page, app, sessions, new_page):
    before = claim_rows(sessions)
    log_in(page, app.url, "lea")
    page.get_by_role("heading", name="Dashboard").wait_for()
    active = page.locator("[data-testid='stSidebarNav'] a[aria-current='page']")
    assert active.inner_text().split()[-1] == "Dashboard"  # after the icon's name
    # An annotator lands on Annotate, which claims nothing until they ask.
    annotator = new_page()
    log_in(annotator, app.url, add_annotator(app.db_url, "ian"))
    annotator.get_by_role("button", name="Get the next note").wait_for()
    annotator.wait_for_timeout(1000)  # a rerun that claimed would have written by now
    assert claim_rows(sessions) == before
    assert annotator.locator(WIDGET).count() == 0


def test_a_reload_keeps_the_login_and_every_change(page, app, sessions, artifacts: Path):
    name = add_annotator(app.db_url, "rea")
    log_in(page, app.url, name)
    get_next_note(page)
    row = held_note(sessions, name)
    todo = plan(sessions, row, name)
    page.wait_for_timeout(300)
    accept_first(page, todo)
    draw_span(page, todo)
    shown = picture(page)
    draft = wait_for_draft(sessions, row, name, lambda s: len(s["spans"]) == 2)
    first = todo["first"]
    assert {(s["label"], s["start"], s["end"], s["source"]) for s in draft["spans"]} == {
        (first.label, first.start, first.end, "accepted"),
        (todo["label"], *todo["word_at"], "manual"),
    }

    page.reload()  # the same login, the same note, every change replayed
    wait_for_note(page)
    page.locator("#nl-ann-msg").get_by_text("Your draft of this note was restored.").wait_for()
    assert page.get_by_label("User name").count() == 0
    assert held_note(sessions, name) == row
    assert picture(page) == shown
    page.screenshot(path=str(artifacts / "lifecycle_draft_restored.png"))

    tab = page.context.new_page()  # a second tab of the same browser: logged in too
    tab.goto(app.url)
    wait_for_note(tab)
    assert picture(tab) == shown

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").wait_for()
    page.wait_for_function("() => !document.cookie.includes('noteloop_login=')")
    page.reload()
    page.get_by_label("User name").wait_for()
    tab.reload()  # the login ended for every tab
    tab.get_by_label("User name").wait_for()
    assert page.locator(WIDGET).count() == tab.locator(WIDGET).count() == 0
    with sessions() as session:
        user = accounts.get_user(session, name)
        ended = session.scalars(
            select(models.Login.ended_at).where(models.Login.user_id == user.id)
        )
        assert all(at is not None for at in ended)
    assert held_note(sessions, name) == row  # logging out gives no work away


# --------------------------------------------------------------------------- submits


def nothing_saved(sessions: Any, row: int, annotator: str, shown: list[int]) -> None:
    with sessions() as session:
        saved = session.scalar(
            select(models.Annotation.id).where(
                models.Annotation.document_id == row, models.Annotation.annotator == annotator
            )
        )
        assert saved is None
        assert suggestions.decided(session, annotator, shown) == {}
    assert held_note(sessions, annotator) == row


def test_an_untouched_submit_asks_first_and_saves_nothing_until_confirmed(
    page, app, sessions, artifacts: Path
):
    name = add_annotator(app.db_url, "ute")
    log_in(page, app.url, name)
    mounted = get_next_note(page)
    row = held_note(sessions, name)
    with sessions() as session:
        shown = sorted(suggestions.suggestion_row_ids(session, row).values())
    n = len(shown)
    assert n > 1

    focus_widget(page)
    page.keyboard.press("Control+Enter")
    question(page).wait_for()
    text = f"{n} suggestions are still open: reject them and submit, or go back"
    assert question(page).locator("#nl-ann-confirm-text").inner_text() == text
    assert answer(page, "yes").inner_text() == f"Reject {n} and submit"
    page.screenshot(path=str(artifacts / "lifecycle_submit_question.png"))
    answer(page, "back").click()
    question(page).wait_for(state="hidden")
    page.wait_for_timeout(1500)  # a submit would have reached the database by now
    nothing_saved(sessions, row, name, shown)

    # Confirmed, the note has no span left: the widget asks about that too.
    page.keyboard.press("Control+Enter")
    answer(page, "yes").click()
    question(page).get_by_text("This note has no span.").wait_for()
    assert answer(page, "yes").inner_text() == "Nothing to annotate: submit"
    page.screenshot(path=str(artifacts / "lifecycle_submit_empty_question.png"))
    page.wait_for_timeout(1000)
    nothing_saved(sessions, row, name, shown)
    answer(page, "yes").click()
    wait_for_note(page, mounted)  # the next note

    with sessions() as session:
        loaded = gold.load_annotation(session, row, name)
        assert (loaded.status, loaded.version) == (AnnotationStatus.SUBMITTED, 1)
        assert loaded.document.spans == ()
        assert suggestions.decided(session, name, shown) == dict.fromkeys(shown, "rejected")
    assert held_note(sessions, name) not in (None, row)


# --------------------------------------------------------------------------- versions


def test_a_reopened_note_is_restored_to_an_earlier_version(
    page, app, sessions, new_page, artifacts: Path
):
    name = add_annotator(app.db_url, "roy")
    log_in(page, app.url, name)
    mounted = get_next_note(page)
    row = held_note(sessions, name)
    todo = plan(sessions, row, name)
    first = todo["first"]
    page.wait_for_timeout(300)
    accept_first(page, todo)
    page.keyboard.press("Control+Enter")
    answer(page, "yes").click()  # reject the others
    mounted = wait_for_note(page, mounted)
    version_1 = gold_of(sessions, row, name)
    assert version_1 == {(first.label, first.start, first.end, "accepted")}

    # Reopened from "Your submitted notes", changed, submitted again: version 2.
    page.get_by_text("Your submitted notes").click()
    page.get_by_role("button", name="Reopen").click()
    mounted = wait_for_note(page, mounted)
    page.get_by_text("reopened for changes").wait_for()
    draw_span(page, todo)
    page.keyboard.press("Control+Enter")  # nothing open, a span: no question
    wait_for_note(page, mounted)
    assert gold_of(sessions, row, name) == version_1 | {(todo["label"], *todo["word_at"], "manual")}

    # A lead restores version 1 from the note's history on the Documents page.
    lead = new_page()
    log_in(lead, app.url, "lea", path="documents")
    choose(lead, "Document", external_id(sessions, row))
    lead.get_by_role("button", name=f"Reopen for {name}").wait_for()  # this note's history
    lead.get_by_role("button", name="Restore version 1").click()
    lead.get_by_text(f"Version 1 of {name}'s gold is the newest again.").wait_for()
    history = lead.locator("[data-testid='stDataFrame']").last  # below the note's spans
    history.locator("tr[aria-rowindex='4']").wait_for(state="attached")  # 3 versions
    history.scroll_into_view_if_needed()
    lead.mouse.move(0, 0)  # no table toolbar, shown on hover, over the picture
    lead.wait_for_timeout(500)  # the table draws on a canvas
    lead.screenshot(path=str(artifacts / "lifecycle_history.png"))

    assert gold_of(sessions, row, name) == version_1
    with sessions() as session:
        kept = gold_versions.history(session, row, name)
    assert [(v.version, v.saved_by, v.restored_from, v.current) for v in kept] == [
        (3, "lea", 1, True),
        (2, name, None, False),
        (1, name, None, False),
    ]


# --------------------------------------------------------------------------- the queue


def test_skip_and_release_give_a_note_back_and_the_skipper_never_gets_it_again(
    page, app, sessions, new_page, artifacts: Path
):
    sam, tia = add_annotator(app.db_url, "sam"), add_annotator(app.db_url, "tia")
    log_in(page, app.url, sam)
    mounted = get_next_note(page)
    skipped = held_note(sessions, sam)
    page.get_by_role("button", name="Skip this note").click()
    page.get_by_label("Why (optional)").fill("not my specialty")
    page.get_by_role("button", name="Skip: give it to someone else").click()
    wait_for_note(page, mounted)  # skipping goes on to the next note
    kept = held_note(sessions, sam)
    assert kept not in (None, skipped)

    other = new_page()
    log_in(other, app.url, tia)
    get_next_note(other)
    assert held_note(sessions, tia) == skipped  # back in the queue, first in line

    release(other)
    release(page)
    assert held_note(sessions, tia) is held_note(sessions, sam) is None
    get_next_note(page)  # both notes are free; the skipped one ranks first
    assert held_note(sessions, sam) == kept
    get_next_note(other)
    assert held_note(sessions, tia) == skipped
    with sessions() as session:
        reasons = session.scalars(select(models.Skip.reason).where(models.Skip.annotator == sam))
        assert list(reasons) == ["not my specialty"]

    lead = new_page()
    log_in(lead, app.url, "lea", path="queue")
    lead.get_by_role("heading", name="Claims").wait_for()
    for who, row in ((sam, kept), (tia, skipped)):
        lead.get_by_text(f"held by {who}", exact=True).first.wait_for(state="attached")
        lead.get_by_text(external_id(sessions, row), exact=True).first.wait_for(state="attached")
    lead.set_viewport_size({"width": 1280, "height": 1500})  # the page scrolls inside
    lead.wait_for_timeout(500)  # the tables draw on canvases
    lead.screenshot(path=str(artifacts / "lifecycle_queue.png"))


def pick_until_tagged(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in a multiselect and wait until it shows as a tag, picking once more
    if it does not: on a busy machine the rerun that applies one pick can redraw the option
    list under the next click, which then lands nowhere (CI, 2026-12-07). Each pick must be
    a tag before the next is typed, or the second could land while the first is applied."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    tag = page.locator(f"[data-tag] [title='{option}']").last
    choose(page, label, option)
    try:
        tag.wait_for(timeout=10_000)
    except PlaywrightTimeout:
        choose(page, label, option)
        tag.wait_for()


def test_a_retired_document_leaves_the_queue_and_the_export(page, app, sessions, new_page):
    before = queue_order(sessions)
    first_in_line = before[0]
    with sessions() as session:
        project = projects.get_project(session, "demo")
        gold_docs = [d.id for d in gold.gold_documents(session, project)]
    retired = [external_id(sessions, first_in_line), gold_docs[0]]

    log_in(page, app.url, "lea", path="documents")
    page.get_by_text("Retire or restore documents").click()
    for doc in retired:
        pick_until_tagged(page, "Documents to retire", doc)
    page.get_by_label("Reason (kept in the audit log)").fill("imported twice")
    page.get_by_role("button", name="Retire", exact=True).click()
    page.get_by_text("Retired 2 documents").wait_for(timeout=40_000)

    assert queue_order(sessions) == before[1:]  # never handed out again, to anyone
    annotator = new_page()
    name = add_annotator(app.db_url, "ret")
    log_in(annotator, app.url, name)
    get_next_note(annotator)
    assert held_note(sessions, name) == before[1]

    page.get_by_role("link", name="Data", exact=True).click()
    page.get_by_role("tab", name="Export").click()
    choose(page, "Format", "jsonl")
    page.get_by_role("button", name="Prepare the export").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download demo-jsonl.zip").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as archive:
        lines = [
            json.loads(line)
            for member in archive.namelist()
            for line in archive.read(member).decode().splitlines()
            if line.strip()
        ]
    exported = {doc["id"] for doc in lines}
    assert exported == set(gold_docs[1:])


# --------------------------------------------------------------------------- models


def newer_version(app: SeededApp, sessions: Any) -> tuple[int, int]:
    """A second version trained after the seed's, that labels every suggestion otherwise
    (the seed's memory with each label moved to the next entity type), serving and with
    its suggestions for the pool, as a worker's round would leave it. Returns the ids of
    (the older version, the newer one)."""
    modeling.register_backend("memory", MEMORY_BACKEND)
    with sessions() as session:
        project = projects.get_project(session, "demo")
        older = serving.serving_version(session, project)
        assert older is not None
        names = [e.name for e in projects.project_schema(project).entity_types]
        older_id, older_path = older.id, Path(older.path)
    newer = MemoryExtractor.load(older_path)
    newer.lexicon = {
        text: names[(names.index(label) + 1) % len(names)] for text, label in newer.lexicon.items()
    }
    newer.save(app.folder / "models" / "demo-newer")
    with sessions.begin() as session:
        project = projects.get_project(session, "demo")
        version = model_versions.register_model_version(
            session, project, name="newer", backend="memory",
            path=str(app.folder / "models" / "demo-newer"),
        )  # fmt: skip
        serving.use_version(session, project, "newer", "worker", "a newer round")
        newer_id = version.id
    modeling.predict_project(sessions, "demo")
    with sessions() as session:  # what annotators see before the rollback
        assert suggestions.shown_batch(session, queue_order(sessions)[0]) == newer_id
    return older_id, newer_id


def open_boxes(page: Any) -> set[tuple[int, str]]:
    """The open suggestions the widget shows: (suggestion row id, label)."""
    out = set()
    for entry in picture(page)["boxes"]:
        _, label, state, sid = entry.split("|")
        if state == "open":
            out.add((int(sid), label))
    return out


def test_serving_an_older_version_brings_its_suggestions_back(page, app, sessions, new_page):
    older, newer = newer_version(app, sessions)
    with sessions() as session:
        older_name = session.get(models.ModelVersion, older).name

    log_in(page, app.url, "lea", path="model")
    choose(page, "Version to serve", older_name)
    page.get_by_role("button", name="Serve this version").click()
    page.get_by_text(f"Suggestions come from {older_name}").wait_for()
    worker = Worker(WorkerConfig(app.db_url, app.folder / "models"))
    job = worker.claim()  # what `noteloop worker` does next
    assert job is not None and job.kind == "predict"
    assert worker.run_job(job) == "done"

    annotator = new_page()
    name = add_annotator(app.db_url, "gus")
    log_in(annotator, app.url, name)
    get_next_note(annotator)
    row = held_note(sessions, name)
    with sessions() as session:
        by_older = suggestions.suggestions_for(session, row, older)
        by_newer = suggestions.suggestions_for(session, row, newer)
        job_row = session.get(models.TrainingJob, job.id)
        assert job_row.model_version_id == older
    expected = {(s.item.suggestion_id, s.item.label) for s in by_older}
    assert expected and by_newer  # both suggested for it, with other labels
    assert {(s.item.start, s.item.end, s.item.label) for s in by_older}.isdisjoint(
        (s.item.start, s.item.end, s.item.label) for s in by_newer
    )
    assert open_boxes(annotator) == expected
