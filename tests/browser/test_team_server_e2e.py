"""One team on one PostgreSQL database served by two app processes, as behind a reverse
proxy: nothing a login needs lives in one process's memory.

A browser logs in on the first process, claims a note and changes it; on the second
process (another port of the same host: the login cookie goes with it) it is still logged
in, holds the same note and finds its draft; its submit lands in the database. A second
annotator on the second process gets another note.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_server import (
    APP,
    accept_first,
    add_annotator,
    draw_span,
    get_next_note,
    held_note,
    log_in,
    plan,
    seed,
    wait_for_note,
)
from sqlalchemy import select
from widget_driver import answer, picture
from widget_server import serve

from noteloop.core.schema import AnnotationStatus
from noteloop.db import models
from noteloop.db.engine import make_engine, session_factory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, postgres: Any) -> Iterator[tuple[str, ...]]:
    """The seeded demo on a fresh PostgreSQL database and two app processes serving it:
    (database URL, first app's URL, second app's URL)."""
    folder = tmp_path_factory.mktemp("team")
    db_url = seed(folder, postgres.create())
    env = {"NOTELOOP_DB": db_url, "HF_HUB_OFFLINE": "1"}
    with (
        serve(APP, env, folder / "first.log", 90) as first,
        serve(APP, env, folder / "second.log", 90) as second,
    ):
        yield db_url, first, second


@pytest.fixture
def team_sessions(team: tuple[str, ...]) -> Iterator[Any]:
    engine = make_engine(team[0])
    yield session_factory(engine)
    engine.dispose()


def _submitted_by(sessions: Any, row: int) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                select(models.Annotation.annotator).where(
                    models.Annotation.document_id == row,
                    models.Annotation.status == AnnotationStatus.SUBMITTED.value,
                )
            )
        )


def test_two_app_processes_serve_one_login_one_draft_and_one_queue(
    team, team_sessions, page, new_page, artifacts: Path
):
    db_url, first, second = team
    name = add_annotator(db_url, "tea")
    log_in(page, first, name)
    get_next_note(page)
    row = held_note(team_sessions, name)
    todo = plan(team_sessions, row, name)
    page.wait_for_timeout(300)
    accept_first(page, todo)
    draw_span(page, todo)
    shown = picture(page)
    _wait_for_draft(team_sessions, row, name, spans=2)  # saved about 1 s after a change

    page.goto(second)  # the other process: the same login, the same note, the draft replayed
    wait_for_note(page)
    page.locator("#nl-ann-msg").get_by_text("Your draft of this note was restored.").wait_for()
    assert page.get_by_label("User name").count() == 0
    assert picture(page) == shown
    page.screenshot(path=str(artifacts / "team_second_process.png"))

    other = add_annotator(db_url, "teb")
    their = new_page()
    log_in(their, second, other)
    get_next_note(their)
    assert held_note(team_sessions, other) not in (None, row)  # never the same note

    page.keyboard.press("Control+Enter")  # submit on the second process
    if todo["n_open"] > 1:  # the others are still open: the widget asks first
        answer(page, "yes").click()
    _wait_until(lambda: _submitted_by(team_sessions, row) == [name])


def _wait_for_draft(sessions: Any, row: int, annotator: str, spans: int) -> None:
    def saved() -> bool:
        with sessions() as session:
            user_draft = session.scalar(
                select(models.Draft.state).where(
                    models.Draft.document_id == row, models.Draft.annotator == annotator
                )
            )
        return bool(user_draft) and len(user_draft["spans"]) == spans

    _wait_until(saved)


def _wait_until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("the database never showed what the browser did")
