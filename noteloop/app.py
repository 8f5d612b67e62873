"""Streamlit entry point: login, the project picker and the navigation over ``pages/``.

Run with ``streamlit run noteloop/app.py`` (``make run`` does). The database URL comes
from ``NOTELOOP_DB``, read once here. Only the pages a user's role allows are registered
with ``st.navigation``, so a page outside the role cannot be reached by its URL either.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.schema import Role
from noteloop.db import engine as db_engine
from noteloop.db import repo

PAGES = Path(__file__).parent / "pages"


@st.cache_resource
def sessions(url: str) -> sessionmaker[Session]:
    """One engine per app process: its connections are pooled and safe to share."""
    return db_engine.session_factory(db_engine.init_db(url))


def login(make_session: sessionmaker[Session]) -> None:
    st.title("noteloop")
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Log in", type="primary"):
            with make_session() as session:
                user = repo.authenticate(session, name.strip(), password)
            if user is None:
                st.error("Wrong user name or password.")
            else:
                st.session_state["user"] = {"name": user.name, "role": user.role}
                st.rerun()


def pages_for(role: str) -> list[st.Page]:
    annotate = [
        st.Page(PAGES / "annotate.py", title="Annotate", icon=":material/edit_note:", default=True),
        st.Page(PAGES / "queue.py", title="Queue", icon=":material/format_list_numbered:"),
    ]
    lead = [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:"),
        st.Page(PAGES / "documents.py", title="Documents", icon=":material/description:"),
    ]
    return annotate + (lead if role in (Role.LEAD, Role.ADMIN) else [])


def main() -> None:
    st.set_page_config(page_title="noteloop", layout="wide")
    make_session = sessions(db_engine.normalize_url(os.environ.get("NOTELOOP_DB")))
    st.session_state["make_session"] = make_session
    user = st.session_state.get("user")
    if user is None:
        login(make_session)
        return
    with make_session() as session:
        names = [p.name for p in repo.projects_for(session, repo.get_user(session, user["name"]))]
    st.sidebar.caption(f"{user['name']} ({user['role']})")
    if st.sidebar.button("Log out"):
        st.session_state.clear()
        st.rerun()
    if not names:
        st.info(
            "No project yet: create one with `noteloop project create NAME --schema schema.json`"
            " (or ask a lead to add you to one)."
        )
        return
    st.session_state["project"] = st.sidebar.selectbox("Project", names)
    st.navigation(pages_for(user["role"])).run()


main()
