"""Documents: read a note with its gold spans and relations (text is shown as text only);
retire a wrongly imported note, or restore one (:mod:`noteloop.db.documents`)."""

from __future__ import annotations

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Split
from noteloop.db import documents
from noteloop.screen.access import page_context
from noteloop.screen.forms import md
from noteloop.screen.history_panel import history_panel

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user
SHOW = {"live": False, "retired": True, "all": None}  # filter -> DocumentRow.retired wanted
OUT_OF_USE = "out of the queue, training, metrics and exports until restored"

for message in st.session_state.pop("documents-said", []):
    st.success(message)
split_col, show_col = st.columns(2)
split = split_col.segmented_control("Split", [s.value for s in Split], default=Split.POOL.value)
show = show_col.segmented_control("Show", list(SHOW), default="live")
with make_session() as session:
    view = documents.browse(session, project_name, Split(split or "pool"))
wanted = SHOW[show or "live"]
rows = {r.id: r for r in view.rows if wanted is None or r.retired == wanted}


def change(verb: str, chosen: list[str], reason: str) -> None:
    """Retire or restore ``chosen``, or say why nothing changed."""
    writer = documents.retire if verb == "Retire" else documents.restore
    try:
        with make_session.begin() as session:
            done = writer(session, project_name, chosen, user, reason)
    except NoteloopError as exc:
        st.error(f"Nothing {verb.lower()}d: {md(exc)}")
        return
    noun = "document" if len(done) == 1 else "documents"
    after = f" They are {OUT_OF_USE}." if verb == "Retire" and done else ""
    said = f"{verb}d {len(done)} {noun}{': ' + md(', '.join(done)) if done else ''}.{after}"
    st.session_state["documents-said"] = [said]
    st.rerun()


with st.expander("Retire or restore documents"):
    retire_col, restore_col = st.columns(2)
    with retire_col, st.form("retire", clear_on_submit=True):
        chosen = st.multiselect("Documents to retire", [r.id for r in view.rows if not r.retired])
        reason = st.text_input("Reason (kept in the audit log)")
        if st.form_submit_button("Retire"):
            change("Retire", chosen, reason)
    with restore_col, st.form("restore", clear_on_submit=True):
        chosen = st.multiselect("Documents to restore", [r.id for r in view.rows if r.retired])
        if st.form_submit_button("Restore"):
            change("Restore", chosen, "")

n_retired = sum(r.retired for r in view.rows)
st.caption(f"{len(view.rows) - n_retired} live and {n_retired} retired documents in this split")
if not rows:
    if not view.rows:
        st.info("No documents in this split yet: import some with `noteloop import`.")
    else:
        st.info(f"No {show or 'live'} documents in this split.")
    st.stop()
doc_id = st.selectbox(
    "Document",
    list(rows),
    key="document",
    format_func=lambda i: (
        f"{i}  ({'gold' if rows[i].gold else 'unannotated'}"
        f"{', retired' if rows[i].retired else ''})"
    ),
)
row = rows[doc_id]
if row.retired_at is not None:
    st.warning(f"Retired {row.retired_at:%Y-%m-%d %H:%M} by {md(row.retired_by)}: {OUT_OF_USE}.")
doc = view.documents[doc_id]
st.caption(f"{len(doc.text):,} characters, {len(doc.text.split()):,} words")
st.text(doc.text)
if doc.spans:
    st.subheader(f"{len(doc.spans)} span{'s' if len(doc.spans) != 1 else ''}")
    st.dataframe(
        [
            {
                "id": s.id,
                "label": s.label,
                "start": s.start,
                "end": s.end,
                "text": s.text_in(doc.text),
                "attributes": ", ".join(f"{k}={v}" for k, v in s.attributes),
            }
            for s in doc.spans
        ],
        hide_index=True,
    )
if doc.relations:
    text_of = {s.id: f"{s.text_in(doc.text)} ({s.label})" for s in doc.spans}
    st.subheader(f"{len(doc.relations)} relation{'s' if len(doc.relations) != 1 else ''}")
    st.dataframe(
        [
            {"id": r.id, "head": text_of[r.head], "relation": r.label, "tail": text_of[r.tail]}
            for r in doc.relations
        ],
        hide_index=True,
    )
history_panel(make_session, project_name, doc_id, user)
