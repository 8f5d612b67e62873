"""Queue: the notes in the order active learning asks for them, and why."""

from __future__ import annotations

import streamlit as st

from noteloop.access import page_context
from noteloop.db import learning, repo

page = page_context(__file__)
make_session, project_name = page.make_session, page.project

with make_session() as session:
    project = repo.get_project(session, project_name)
    entries = learning.queue(session, project)
    names = {row: doc_id for doc_id, row in repo.document_ids(session, project).items()}

st.title("Queue")
if not entries:
    st.info("No ranking yet: the worker ranks the pool after its first pass.")
    st.stop()
st.caption(f"{len(entries)} notes, ranked by {entries[0].strategy}")
st.dataframe(
    [
        {
            "rank": e.rank,
            "note": names.get(e.document_id, e.document_id),
            "score": round(e.score, 3),
            "words": e.details.get("words"),
            "uncertainty": e.details.get("uncertainty"),
            "why": e.details.get("reason", ""),
        }
        for e in entries
    ],
    hide_index=True,
)
