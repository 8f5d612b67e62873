"""Adjudicate: resolve two annotators' versions of a note into its final gold."""

from __future__ import annotations

import time

import streamlit as st

from noteloop.core.agreement import Choice, Item, describe, diff_annotations, merge, snippet
from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Document, Span
from noteloop.db import adjudication, projects
from noteloop.screen.access import page_context
from noteloop.screen.forms import md

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user

st.title("Adjudicate")
if "adjudicated" in st.session_state:
    st.success(st.session_state.pop("adjudicated"))
with make_session() as session:
    project = projects.get_project(session, project_name)
    notes = adjudication.shared_notes(session, project)
    symmetric = {r.name for r in projects.project_schema(project).relation_types if r.symmetric}
if not notes:
    st.info(
        "No note has been submitted by two annotators yet: adjudication resolves notes "
        "that two people annotated independently."
    )
    st.stop()

note = st.selectbox(
    "Note",
    notes,
    key="adjudicate_note",
    format_func=lambda n: (
        f"{n.external_id}: {', '.join(n.annotators)}"
        + (f" (final gold by {n.final.lead})" if n.final else "")
    ),
)
left, right = st.columns(2)
name_a = left.selectbox("Version A", note.annotators, index=0, key="adjudicate_a")
name_b = right.selectbox("Version B", note.annotators, index=1, key="adjudicate_b")
if name_a == name_b:
    st.error("Choose two different annotators.")
    st.stop()
with make_session() as session:
    loaded = adjudication.note_versions(session, project, note.document_id, user)
diff = diff_annotations(loaded.versions[name_a], loaded.versions[name_b], symmetric=symmetric)
started = st.session_state.setdefault("adjudicate_started", {})
started.setdefault(note.document_id, time.monotonic())


def spans_table(doc: Document) -> list[dict[str, object]]:
    return [
        {"label": s.label, "text": s.text_in(doc.text), "start": s.start, "end": s.end}
        for s in doc.spans
    ]


for column, name in ((left, name_a), (right, name_b)):
    doc = loaded.versions[name]
    column.dataframe(spans_table(doc), hide_index=True)
    column.caption(f"{len(doc.spans)} span(s), {len(doc.relations)} relation(s)")
with st.expander("Note text"):
    st.text(diff.a.text)

counts = diff.counts()
st.caption(
    f"{counts['both']} the same in both (kept), {counts['label']} with another label, "
    f"{counts['only_a']} only in {md(name_a)}, {counts['only_b']} only in {md(name_b)}"
)
words = {
    Choice.A: f"{md(name_a)}'s",  # radio options are Markdown
    Choice.B: f"{md(name_b)}'s",
    Choice.BOTH: "both",
    Choice.DROP: "neither",
}


def shown(item: Item | None, doc: Document) -> str:
    if item is None:
        return "-"
    context = f"\n{snippet(doc.text, item.start, item.end)}" if isinstance(item, Span) else ""
    return describe(item, doc) + context


choices = {}
with st.form(f"adjudicate-{note.document_id}-{name_a}-{name_b}"):
    for index, d in diff.disagreements():
        a, b, choice = st.columns([3, 3, 2])
        a.text(shown(d.a, diff.a))
        b.text(shown(d.b, diff.b))
        choices[index] = choice.radio(
            f"{d.what} {index}",
            d.choices,
            index=None,
            format_func=words.get,
            key=f"choice-{note.document_id}-{index}",
            horizontal=True,
        )
    saved = st.form_submit_button("Save as final gold", type="primary")

if loaded.note.final is not None:
    final = loaded.note.final
    st.caption(f"Final gold now: {md(final.lead)}'s adjudication, version {final.version}.")
if saved:
    try:
        final_doc = merge(diff, {i: c for i, c in choices.items() if c is not None})
        with make_session.begin() as session:
            version = adjudication.adjudicate(
                session,
                projects.get_project(session, project_name),
                note.document_id,
                user,
                final_doc,
                expected_version=loaded.lead_version,
                expected_final=loaded.note.final,
                seconds_spent=time.monotonic() - started[note.document_id],
            )
    except NoteloopError as exc:  # undecided choices, a newer adjudication, a bad lead...
        st.error(f"Not saved: {md(exc)}")
    else:
        started.pop(note.document_id)
        st.session_state["adjudicated"] = (
            f"Saved the final gold of {md(note.external_id)} (version {version}): "
            f"{len(final_doc.spans)} span(s), {len(final_doc.relations)} relation(s)."
        )
        st.rerun()
