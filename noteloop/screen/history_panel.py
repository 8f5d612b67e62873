"""A note's gold history for leads: every kept version of each annotator's gold, with who
saved it and what changed; reopen a submission for its annotator, or restore an earlier
version (a new version, so nothing is overwritten). Screen code for the Documents page.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NoteloopError
from noteloop.db import claims, documents, gold, gold_versions, projects
from noteloop.screen.forms import md


def history_panel(
    make_session: sessionmaker[Session], project_name: str, external_id: str, by: str
) -> None:
    """The history of ``external_id``'s gold, per annotator, with reopen and restore."""
    with make_session() as session:
        project = projects.get_project(session, project_name)
        row = documents.document_ids(session, project, include_retired=True).get(external_id)
        people = gold.annotators_of(session, row) if row is not None else []
    if row is None or not people:
        return
    st.subheader("History")
    who = st.selectbox("Annotator", people, key=f"history-who-{row}")
    with make_session() as session:
        versions = gold_versions.history(session, row, who)
    st.dataframe(
        [
            {
                "version": v.version,
                "saved by": v.saved_by,
                "saved": f"{v.saved_at:%Y-%m-%d %H:%M}",
                "spans": v.n_spans,
                "relations": v.n_relations,
                "changes": v.changes,
                "restored from": v.restored_from,
                "current": v.current,
            }
            for v in versions
        ],
        hide_index=True,
    )
    with make_session() as session:
        reopened = claims.holder(session, row, who) is not None
    reopen_col, restore_col = st.columns(2)
    hint = "They get the note back on their Annotate page to change it"
    if reopened:
        reopen_col.caption(
            f"{md(who)} has this note open now (reopened, or not yet submitted again)"
        )
    elif reopen_col.button(f"Reopen for {md(who)}", key=f"reopen-{row}-{who}", help=hint):
        _act(lambda s: claims.reopen_for(s, row, who, by), make_session,
             f"Reopened for {md(who)}: it is the next note on their Annotate page.")  # fmt: skip
    earlier = [v.version for v in versions if not v.same_as_current]
    if not earlier:
        return
    current = next((v.version for v in versions if v.current), None)
    if current is None:  # saved since its last submit: restoring waits for that submit
        restore_col.caption("The newest gold is not a submitted version: nothing to restore")
        return
    pick = restore_col.selectbox("Earlier version", earlier, key=f"restore-pick-{row}-{who}")
    if restore_col.button(f"Restore version {pick}", key=f"restore-{row}-{who}"):
        _act(lambda s: gold.restore(s, row, who, pick, by, expected_version=current),
             make_session, f"Version {pick} of {md(who)}'s gold is the newest again.")  # fmt: skip


def _act(
    action: Callable[[Session], object], make_session: sessionmaker[Session], done: str
) -> None:
    try:
        with make_session.begin() as session:
            action(session)
    except NoteloopError as exc:
        st.error(f"Not done: {md(exc)}")
        return
    st.session_state["documents-said"] = [done]
    st.rerun()
