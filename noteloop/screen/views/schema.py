"""Schema: the project's entity types, relation types and attributes, one at a time or as
JSON. Every change is checked by the schema itself and against the project's gold."""

from __future__ import annotations

import json
from collections.abc import Callable

import streamlit as st

from noteloop.core import schema_edit as edit
from noteloop.core.errors import NoteloopError
from noteloop.core.schema import PALETTE, AttributeType, EntityType, LabelSchema, RelationType
from noteloop.db import labels, projects
from noteloop.db.engine import run_transaction
from noteloop.screen.access import page_context
from noteloop.screen.forms import md

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user
NEW = "(new)"

with make_session() as session:
    project = projects.get_project(session, project_name)
    schema = projects.project_schema(project)
    usage = labels.label_usage(session, project)

st.title("Schema")
for message in st.session_state.pop("schema-saved", []):
    st.success(message)


def apply(
    change: Callable[[LabelSchema], LabelSchema], expected: LabelSchema | None = None
) -> None:
    """Save ``change`` applied to the stored schema, or say why nothing was saved.

    ``expected``: the schema shown, for a change that replaces it whole."""
    try:
        notes = run_transaction(
            make_session,
            lambda session: labels.edit_schema(
                session, project_name, change, user, expected=expected
            ),
        )
    except NoteloopError as exc:
        st.error(f"Not saved: {md(exc)}")
        return
    st.session_state["schema-saved"] = ["Schema saved.", *map(md, notes)]  # notes name labels
    st.rerun()


def pick(kind: str, names: list[str]) -> str:
    return st.selectbox(f"Edit {kind}", [NEW, *names], key=f"pick-{kind}")


entity_tab, relation_tab, attribute_tab, json_tab = st.tabs(
    ["Entity types", "Relation types", "Attributes", "JSON"]
)
with entity_tab:
    st.dataframe(
        [
            {**e, "gold spans": usage.spans.get(e["name"], (0, 0))[0]}
            for e in schema.to_dict()["entity_types"]
        ],
        column_config={"color": st.column_config.TextColumn("colour")},
        hide_index=True,
    )
    chosen = pick("entity type", schema.entity_names)
    old = schema.entity(chosen) if chosen != NEW else EntityType("New")
    with st.form(f"entity-{chosen}"):
        name = st.text_input("Name", "" if chosen == NEW else old.name)
        fallback = PALETTE[len(schema.entity_types) % len(PALETTE)]
        color = st.color_picker("Colour", old.color or fallback)
        hotkey = st.text_input("Hotkey (one letter or digit)", old.hotkey, max_chars=1)
        description = st.text_input("Description", old.description)
        save, remove = st.columns(2)
        if save.form_submit_button("Save entity type", type="primary"):
            replacing = None if chosen == NEW else chosen
            apply(
                lambda s: edit.put_entity(
                    s, EntityType(name, color, hotkey, description), replacing
                )
            )
        if chosen != NEW and remove.form_submit_button("Remove entity type"):
            apply(lambda s: edit.remove_entity(s, chosen))

with relation_tab:
    counts: dict[str, int] = {}
    for (label, _, _), n in usage.relations.items():
        counts[label] = counts.get(label, 0) + n
    st.dataframe(
        [
            {**r, "gold relations": counts.get(r["name"], 0)}
            for r in schema.to_dict()["relation_types"]
        ],
        hide_index=True,
    )
    st.caption("Empty heads or tails allow any entity type there.")
    chosen = pick("relation type", schema.relation_names)
    old_r = schema.relation(chosen) if chosen != NEW else RelationType("new")
    with st.form(f"relation-{chosen}"):
        name = st.text_input("Name", "" if chosen == NEW else old_r.name)
        heads = st.multiselect("Heads", schema.entity_names, list(old_r.heads))
        tails = st.multiselect("Tails", schema.entity_names, list(old_r.tails))
        symmetric = st.checkbox("Symmetric (either direction)", old_r.symmetric)
        description = st.text_input("Description", old_r.description)
        new_r = (name, tuple(heads), tuple(tails), symmetric, description)
        save, remove = st.columns(2)
        if save.form_submit_button("Save relation type", type="primary"):
            replacing = None if chosen == NEW else chosen
            apply(lambda s: edit.put_relation(s, RelationType(*new_r), replacing))
        if chosen != NEW and remove.form_submit_button("Remove relation type"):
            apply(lambda s: edit.remove_relation(s, chosen))

with attribute_tab:
    st.dataframe(schema.to_dict()["attributes"], hide_index=True)
    st.caption("An attribute without values is a flag (set or not).")
    chosen = pick("attribute", [a.name for a in schema.attributes])
    old_a = next((a for a in schema.attributes if a.name == chosen), AttributeType("new"))
    with st.form(f"attribute-{chosen}"):
        name = st.text_input("Name", "" if chosen == NEW else old_a.name)
        values = st.text_input("Values, comma-separated (empty: a flag)", ", ".join(old_a.values))
        description = st.text_input("Description", old_a.description)
        save, remove = st.columns(2)
        if save.form_submit_button("Save attribute", type="primary"):
            replacing = None if chosen == NEW else chosen
            new_a = (name, edit.parse_names(values), description)
            apply(lambda s: edit.put_attribute(s, AttributeType(*new_a), replacing))
        if chosen != NEW and remove.form_submit_button("Remove attribute"):
            apply(lambda s: edit.remove_attribute(s, chosen))

with json_tab:
    text = json.dumps(schema.to_dict(), indent=1, ensure_ascii=False)
    st.download_button("Download schema.json", text, "schema.json", "application/json")
    edited = st.text_area("The whole schema as JSON", text, height=400)
    if st.button("Save JSON"):
        try:
            replacement = LabelSchema.from_dict(json.loads(edited))
        except (json.JSONDecodeError, NoteloopError) as exc:
            st.error(f"Not saved: {md(exc)}")
        else:
            apply(lambda _: replacement, expected=schema)
