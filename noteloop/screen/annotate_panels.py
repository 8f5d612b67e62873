"""The parts of the Annotate page around the widget: what the annotator is told and the
buttons that skip, release, discard and reopen. Screen code: each part reads its widgets,
calls one function of :mod:`noteloop.screen.annotate_flow` and renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import ConflictError, NoteloopError
from noteloop.db import claims, drafts, projects
from noteloop.screen import annotate_flow
from noteloop.screen.annotate_flow import DraftSaved, OpenNote
from noteloop.screen.forms import md

Keep = Callable[[OpenNote | None], None]
PURPOSES = {"reopen": "reopened for changes", "second": "second annotation"}


def start_panel(make_session: sessionmaker[Session], project_name: str, user: str) -> None:
    """No note held: what is waiting, the button that claims one, drafts left behind."""
    st.title("Annotate")
    st.write("You hold no note right now. Ask for the next one when you are ready.")
    if st.button("Get the next note", type="primary", icon=":material/play_arrow:"):
        st.session_state["want-next"] = True
        st.rerun()
    loose_drafts_panel(make_session, project_name, user)


def loose_drafts_panel(make_session: sessionmaker[Session], project_name: str, user: str) -> None:
    """Drafts of notes the annotator no longer holds: kept, downloadable, discardable."""
    with make_session() as session:
        project = projects.get_project(session, project_name)
        loose = drafts.loose_drafts(session, project.id, user)
    if not loose:
        return
    st.warning(
        f"You have {len(loose)} draft(s) of notes that are no longer yours (your claim lapsed "
        "and someone else took the note, or a lead released it). They are kept until you "
        "discard them."
    )
    for d in loose:
        cols = st.columns([3, 2, 2])
        cols[0].write(f"Note **{md(d.external_id)}**, saved {d.updated_at:%Y-%m-%d %H:%M} UTC")
        cols[1].download_button(
            "Download (JSON)", json.dumps(d.state), file_name=f"{d.external_id}-draft.json",
            key=f"loose-dl-{d.document_id}", on_click="ignore",
        )  # fmt: skip
        if cols[2].button("Discard", key=f"loose-discard-{d.document_id}"):
            with make_session.begin() as session:
                drafts.discard_draft(session, d.document_id, user, by=user)
            st.rerun()


def submissions_panel(
    make_session: sessionmaker[Session],
    project_name: str,
    user: str,
    keep: Keep,
    open_row: int | None = None,
) -> None:
    """The annotator's recent submissions, each of which they may reopen to change."""
    with make_session() as session:
        done = annotate_flow.submissions(session, project_name, user)
    if not done:
        return
    with st.expander(f"Your submitted notes ({len(done)} most recent)"):
        for sub in done:
            cols = st.columns([4, 2])
            when = f"{sub.submitted_at:%Y-%m-%d %H:%M} UTC" if sub.submitted_at else ""
            cols[0].write(f"**{md(sub.document_id)}** · version {sub.version} · {when}")
            if sub.document_row == open_row:
                cols[1].caption("open now, above")
            elif sub.reopened:
                cols[1].caption("reopened: you get it with your next note")
            elif cols[1].button("Reopen", key=f"reopen-{sub.document_row}"):
                _reopen(make_session, project_name, sub.document_row, user, keep)


def _reopen(
    make_session: sessionmaker[Session], project_name: str, row: int, user: str, keep: Keep
) -> None:
    try:
        annotate_flow.reopen(make_session, row, user, by=user)
    except NoteloopError as exc:
        st.error(f"Not reopened: {md(exc)}")
        return
    keep(annotate_flow.open_note(make_session, project_name, row, user))
    st.rerun()


def note_caption(
    make_session: sessionmaker[Session],
    project_name: str,
    note: OpenNote,
    saved: DraftSaved | None,
) -> None:
    """One line about the note, the state of its draft and of the model's suggestions."""
    view = note.view
    # The widget counts the open suggestions as they change; this line says what holds
    # for the whole visit, so the two never disagree.
    purpose = f" · {PURPOSES[note.purpose]}" if note.purpose in PURPOSES else ""
    gold = f"gold version {view.version}" if view.version else "no gold submitted yet"
    st.caption(
        f"Note **{md(note.document_id)}** · {len(view.text.split()):,} words · {gold}"
        f"{purpose} · {_draft_line(note, saved)}"
    )
    if saved is not None and not saved.holds_claim:
        st.warning(
            "This note is no longer yours: your claim lapsed and someone else took it. Your "
            "changes are still saved as your draft; submitting will be refused."
        )
    if note.stale_draft is not None:
        _stale_draft(note)
    with make_session() as session:
        status = annotate_flow.suggestion_status(session, project_name)
    if status.state == "preparing":  # the worker is training: say so, the annotator goes on
        done = f" {status.phase} ({status.progress:.0%})" if status.phase else ""
        st.caption(f":material/hourglass_top: {status.message}{done}")
    elif status.state == "none" and not view.suggestions:
        st.caption(f":material/info: {status.message}")


def _draft_line(note: OpenNote, saved: DraftSaved | None) -> str:
    if saved is not None:
        return f"draft saved {saved.at:%H:%M:%S} UTC"
    if note.draft_at is not None and note.stale_draft is None:
        return f"your draft of {note.draft_at:%Y-%m-%d %H:%M} UTC restored"
    return "changes are saved as a draft as you go"


def _stale_draft(note: OpenNote) -> None:
    st.warning(
        "Your draft of this note was made on an earlier version of its gold (someone saved "
        "the note since), so it was not restored. Download it to compare, then discard it."
    )
    st.download_button(
        "Download the old draft (JSON)", json.dumps(note.stale_draft),
        file_name=f"{note.document_id}-old-draft.json", on_click="ignore",
    )  # fmt: skip


def refusal(note: OpenNote, refused: Any, keep: Keep) -> None:
    """Why the last submit or draft save was refused, above the widget where it is seen."""
    if refused is None or refused[0] != note.document_row:
        return
    _, exc, widget_state = refused
    st.error(f"Not saved: {md(exc)}")
    if isinstance(exc, ConflictError | claims.ClaimLostError):
        st.download_button(
            "Download your version (JSON)", json.dumps(widget_state),
            file_name=f"{note.document_id}-mine.json", on_click="ignore",
        )  # fmt: skip
    if isinstance(exc, ConflictError):
        # A callback: the next run no longer has this button, but it still reloads.
        st.button("Open the saved version", on_click=lambda: keep(None))
    if isinstance(exc, claims.ClaimLostError):
        st.button("Go on to the next note", on_click=lambda: _next(keep))


def _next(keep: Keep) -> None:
    keep(None)
    st.session_state["want-next"] = True


def note_actions(
    make_session: sessionmaker[Session],
    project_name: str,
    note: OpenNote,
    user: str,
    keep: Keep,
) -> None:
    """Skip (with a reason), release, and discard the draft: each gives the note back or
    starts it over, and asks first where work would be lost."""
    skip_col, release_col, discard_col = st.columns(3)
    with skip_col.popover("Skip this note", icon=":material/skip_next:"):
        reason = st.text_input("Why (optional)", key=f"skip-reason-{note.key}")
        if st.button("Skip: give it to someone else", key=f"skip-{note.key}"):
            _give_back(lambda: annotate_flow.skip(make_session, note, user, reason), keep, True,
                       f"Skipped {md(note.document_id)}: it goes to someone else.")  # fmt: skip
    with release_col.popover("Release", icon=":material/logout:"):
        st.write("Give the note back to the queue now; your unsubmitted changes are dropped.")
        if st.button("Release this note", key=f"release-{note.key}"):
            _give_back(lambda: annotate_flow.release(make_session, note, user), keep, False,
                       f"Released {md(note.document_id)}: it is back in the queue.")  # fmt: skip
    with discard_col.popover("Discard my changes", icon=":material/restart_alt:"):
        st.write("Start this note over from its saved version; your draft is thrown away.")
        if st.button("Discard my changes", key=f"discard-{note.key}", type="primary"):
            keep(annotate_flow.discard_draft(make_session, project_name, note, user))
            st.session_state.pop("draft-saved", None)
            st.rerun()


def _give_back(action: Callable[[], None], keep: Keep, then_next: bool, done: str) -> None:
    try:
        action()
    except NoteloopError as exc:
        st.error(f"Not done: {md(exc)}")
        return
    st.session_state["saved"] = done
    keep(None)
    st.session_state.pop("draft-saved", None)
    st.session_state["want-next"] = then_next
    st.rerun()
