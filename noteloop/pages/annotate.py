"""Annotate: the next note from the queue in the annotator widget; submit saves it."""

from __future__ import annotations

import json

import streamlit as st

from noteloop.access import page_context
from noteloop.annotation import next_document, open_note, submit
from noteloop.components.annotator import annotator
from noteloop.core.errors import ConflictError, NoteloopError
from noteloop.db import repo

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user

note = st.session_state.get("open_note")
if note is None or st.session_state.get("open_note_project") != project_name:
    with make_session() as session:
        row = next_document(session, repo.get_project(session, project_name), user)
    if row is None:
        st.success("Every note of this project is annotated or taken. Thank you!")
        st.stop()
    note = open_note(make_session, project_name, row, user)
    st.session_state["open_note"], st.session_state["open_note_project"] = note, project_name

st.caption(
    f"Note **{note.document_id}** · {len(note.view.text.split()):,} words · "
    f"{len(note.view.span_suggestions)} suggestions · version {note.view.version}"
)
result = annotator(note.view, key=f"annotator-{note.document_row}-{note.view.version}")
if result is not None and result.submitted is not None:
    try:
        submit(make_session, note, user, result.submitted)
    except ConflictError as exc:
        st.error(f"Not saved: {exc}")
        st.download_button(
            "Download your version (JSON)",
            json.dumps(result.submitted),
            file_name=f"{note.document_id}-mine.json",
        )
        if st.button("Open the saved version"):
            st.session_state.pop("open_note")
            st.rerun()
        st.stop()
    except NoteloopError as exc:
        st.error(f"Not saved: {exc}")
        st.stop()
    st.session_state.pop("open_note")
    st.toast(f"Saved {note.document_id}.")
    st.rerun()
