"""Overview: what the project holds, by split and by label."""

from __future__ import annotations

import streamlit as st

from noteloop.db import projects
from noteloop.screen.access import page_context
from noteloop.screen.forms import md

page = page_context(__file__)
make_session, project_name = page.make_session, page.project

with make_session() as session:
    numbers = projects.project_stats(session, projects.get_project(session, project_name))

st.title(f"Project {md(project_name)}")
scalars = {k: v for k, v in numbers.items() if not isinstance(v, dict)}
columns = st.columns(max(len(scalars), 1))
for column, (key, value) in zip(columns, scalars.items(), strict=False):
    column.metric(key.replace("_", " "), value)
for key, value in numbers.items():
    if isinstance(value, dict) and value:
        st.subheader(key.replace("_", " "))
        st.bar_chart(value, horizontal=True)
