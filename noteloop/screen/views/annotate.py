"""Annotate: the note this annotator holds, or the next of the queue when they ask for it.

Opening the page claims nothing: a held note (claimed earlier, or reopened) opens again,
with its draft; otherwise "Get the next note" claims one. Every change in the widget
reaches :func:`noteloop.screen.annotate_flow.save_draft` about a second later (the widget's
``annotation`` state callback); Submit saves in the widget's ``on_submit`` callback,
which Streamlit runs before the page script, so the run that follows shows the next note.
"""

from __future__ import annotations

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.screen import annotate_flow
from noteloop.screen.access import page_context
from noteloop.screen.annotate_flow import OpenNote
from noteloop.screen.annotate_panels import (
    note_actions,
    note_caption,
    refusal,
    start_panel,
    submissions_panel,
)
from noteloop.screen.components.annotator import annotator, submitted_state
from noteloop.screen.forms import md

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user
state = st.session_state


def keep(note: OpenNote | None) -> None:
    state["open_note"], state["open_note_project"] = note, project_name


def save_draft(note: OpenNote) -> None:
    """The widget's latest state, kept on the server as the annotator's draft."""
    raw = state.get(note.key) or {}
    latest = raw.get("annotation")
    if not isinstance(latest, dict) or latest.get("document_id") != note.view.document_id:
        return
    try:
        state["draft-saved"] = annotate_flow.save_draft(make_session, note, user, latest)
    except NoteloopError as exc:
        state["not-saved"] = (note.document_row, exc, latest)


def submit(note: OpenNote) -> None:
    """Save what the widget submitted, then go on to the next note; a refusal stays shown."""
    submitted = submitted_state(note.key, note.view)
    if submitted is None:
        return
    try:
        annotate_flow.submit(make_session, note, user, submitted)
    except NoteloopError as exc:
        state["not-saved"] = (note.document_row, exc, submitted)
        return
    state["saved"] = f"Saved {md(note.document_id)}."
    state.pop("draft-saved", None)
    keep(None)
    state["want-next"] = True  # submitting asks for the next note


def current_note() -> OpenNote | None:
    """The open note; else the note this annotator holds; else the next one if they
    asked for it (a click, or a submit); else None."""
    note = state.get("open_note")
    if note is not None and state.get("open_note_project") == project_name:
        return note
    row = annotate_flow.held_note(make_session, project_name, user)
    if row is None and state.pop("want-next", False):
        row = annotate_flow.claim_next(make_session, project_name, user)
        if row is None:
            st.success("Every note of this project is annotated, taken or skipped. Thank you!")
    if row is None:
        return None
    note = annotate_flow.open_note(make_session, project_name, row, user)
    keep(note)
    return note


if said := state.pop("saved", None):  # what the last action did, once
    st.toast(said)
note = current_note()
if note is None:
    start_panel(make_session, project_name, user)
    submissions_panel(make_session, project_name, user, keep)
    st.stop()
shown: OpenNote = note  # the callbacks below keep this note, whatever runs later
note_caption(make_session, project_name, shown, state.get("draft-saved"))
refusal(shown, state.pop("not-saved", None), keep)
annotator(
    shown.view, key=shown.key, on_change=lambda: save_draft(shown), on_submit=lambda: submit(shown)
)
note_actions(make_session, project_name, shown, user, keep)
submissions_panel(make_session, project_name, user, keep, shown.document_row)
