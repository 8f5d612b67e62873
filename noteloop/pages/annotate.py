"""Annotate: the next note from the queue in the annotator widget; submit saves it.

Submitting saves in the widget's ``on_submit`` callback, which Streamlit runs before the
page script: the run that follows shows the next note straight away (saving in the page
body would need a second run to replace the widget).
"""

from __future__ import annotations

import json

import streamlit as st

from noteloop.access import page_context
from noteloop.annotation import OpenNote, next_document, open_note, submit
from noteloop.components.annotator import annotator, submitted_state
from noteloop.core.errors import ConflictError, NoteloopError
from noteloop.db import repo
from noteloop.modeling import suggestion_status

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user


def save(note: OpenNote, key: str) -> None:
    """Save what the widget submitted; a refusal is kept for the page to show."""
    state = submitted_state(key, note.view)
    if state is None:
        return
    try:
        submit(make_session, note, user, state)
    except NoteloopError as exc:
        st.session_state["not-saved"] = (note.document_row, exc, state)
        return
    st.session_state.pop("open_note", None)
    st.session_state["saved"] = note.document_id


if saved := st.session_state.pop("saved", None):
    st.toast(f"Saved {saved}.")


def current_note() -> OpenNote:
    """The note this annotator is on: the open one, else the next of the queue, claimed."""
    note = st.session_state.get("open_note")
    if note is not None and st.session_state.get("open_note_project") == project_name:
        return note
    with make_session() as session:
        row = next_document(session, repo.get_project(session, project_name), user)
    if row is None:
        st.success("Every note of this project is annotated or taken. Thank you!")
        st.stop()
    note = open_note(make_session, project_name, row, user)
    st.session_state["open_note"], st.session_state["open_note_project"] = note, project_name
    return note


note = current_note()
st.caption(
    f"Note **{note.document_id}** · {len(note.view.text.split()):,} words · "
    f"{len(note.view.span_suggestions)} suggestions · version {note.view.version}"
)
with make_session() as session:
    status = suggestion_status(session, project_name)
if status.state == "preparing":  # the worker is training: say so, the annotator goes on
    done = f" {status.phase} ({status.progress:.0%})" if status.phase else ""
    st.caption(f":material/hourglass_top: {status.message}{done}")
elif status.state == "none" and not note.view.span_suggestions:
    st.caption(f":material/info: {status.message}")
key = f"annotator-{note.document_row}-{note.view.version}"
annotator(note.view, key=key, on_submit=lambda: save(note, key))
refused = st.session_state.pop("not-saved", None)
if refused is not None and refused[0] == note.document_row:
    _, exc, state = refused
    st.error(f"Not saved: {exc}")
    if isinstance(exc, ConflictError):
        st.download_button(
            "Download your version (JSON)",
            json.dumps(state),
            file_name=f"{note.document_id}-mine.json",
            on_click="ignore",
        )
        # A callback: the next run no longer has this button, but it still reloads.
        st.button("Open the saved version", on_click=lambda: st.session_state.pop("open_note"))
