"""Documents: read a note with its gold spans and relations (text is shown as text only)."""

from __future__ import annotations

import streamlit as st

from noteloop.access import page_context
from noteloop.core.schema import Split
from noteloop.db import repo

page = page_context(__file__)
make_session, project_name = page.make_session, page.project

split = st.segmented_control("Split", [s.value for s in Split], default=Split.POOL.value)
with make_session() as session:
    project = repo.get_project(session, project_name)
    gold = {d.id: d for d in repo.gold_documents(session, project, split=Split(split or "pool"))}
    docs = repo.documents(session, project, split=Split(split or "pool"))

if not docs:
    st.info("No documents in this split yet: import some with `noteloop import`.")
    st.stop()
doc_id = st.selectbox(
    "Document",
    [d.id for d in docs],
    key="document",
    format_func=lambda i: f"{i}  ({'gold' if i in gold else 'unannotated'})",
)
doc = gold.get(doc_id) or next(d for d in docs if d.id == doc_id)
st.caption(f"{len(doc.text):,} characters, {len(doc.text.split()):,} words")
st.text(doc.text)
if doc.spans:
    st.subheader(f"{len(doc.spans)} spans")
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
    st.subheader(f"{len(doc.relations)} relations")
    st.dataframe(
        [
            {"id": r.id, "head": text_of[r.head], "relation": r.label, "tail": text_of[r.tail]}
            for r in doc.relations
        ],
        hide_index=True,
    )
