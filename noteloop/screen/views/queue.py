"""Queue: the notes in the order active learning asks for them, why, and where each one
stands; leads also see every claim and can release or reassign it."""

from __future__ import annotations

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Role
from noteloop.db import accounts, claims, documents, learning, projects
from noteloop.screen.access import LEADS, page_context
from noteloop.screen.forms import md

page = page_context(__file__)


def _two(value: object) -> object:
    """As the "why" column writes it: two decimals."""
    return round(value, 2) if isinstance(value, float) else value


make_session, project_name, me = page.make_session, page.project, page.user

with make_session() as session:
    project = projects.get_project(session, project_name)
    entries = learning.queue(session, project)
    names = {row: doc_id for doc_id, row in documents.document_ids(session, project).items()}
    states = claims.note_states(session, project, me)

st.title("Queue")
if not entries:
    st.info("No ranking yet: the worker ranks the pool after its first pass.")
else:
    waiting = sum(1 for e in entries if e.document_id not in states)
    st.caption(f"{len(entries)} notes ranked by {entries[0].strategy}; {waiting} waiting")
    st.dataframe(
        [
            {
                "rank": e.rank,
                "note": names.get(e.document_id, e.document_id),
                "status": states.get(e.document_id, "waiting"),
                "score": round(e.score, 3),
                "words": e.details.get("words"),
                "uncertainty": _two(e.details.get("uncertainty")),
                "why": e.details.get("reason", ""),
            }
            for e in entries
        ],
        # Wide enough for "submitted by NAME; held by NAME (lapsed)": cut, it hid the claim.
        column_config={"status": st.column_config.TextColumn(width=240)},
        hide_index=True,
    )
if Role(page.role) not in LEADS:
    st.stop()

st.subheader("Claims")
with make_session() as session:
    held = claims.claim_rows(session, project)
    people = [
        u.name
        for u in accounts.user_rows(session)
        if u.active and (u.role != Role.ANNOTATOR.value or project_name in u.projects)
    ]
if not held:
    st.caption("Nobody holds a note of this project right now.")
    st.stop()
st.dataframe(
    [
        {
            "note": c.external_id,
            "annotator": c.annotator,
            "purpose": c.purpose,
            "claimed": f"{c.claimed_at:%Y-%m-%d %H:%M}",
            "last activity": f"{c.active_at:%Y-%m-%d %H:%M}",
            "lapses": "lapsed" if c.lapsed else f"{c.lapses_at:%H:%M} UTC",
            "draft": c.has_draft,
        }
        for c in held
    ],
    hide_index=True,
)
labels = {f"{c.external_id} · {c.annotator}": c for c in held}
chosen = labels[st.selectbox("Claim", list(labels))]
release_col, reassign_col = st.columns(2)
try:
    if release_col.button("Release it", help="Back to the queue now; the draft stays theirs"):
        with make_session.begin() as session:
            claims.release(session, chosen.document_id, chosen.annotator, by=me)
        st.rerun()
    to = reassign_col.selectbox("Reassign to", [p for p in people if p != chosen.annotator])
    if reassign_col.button("Reassign it", help="The claim and the draft go to them") and to:
        with make_session.begin() as session:
            claims.reassign(session, chosen.document_id, chosen.annotator, to, by=me)
        st.rerun()
except NoteloopError as exc:
    st.error(f"Not done: {md(exc)}")
