"""Streamlit entry point: login, the project picker and the navigation over ``pages/``.

Run with ``streamlit run noteloop/app.py`` (``make run`` does). The database URL comes
from ``NOTELOOP_DB``, read once here. Only the pages a user's role allows are registered
with ``st.navigation``, so a page outside the role cannot be reached by its URL either.
"""

from __future__ import annotations

import os

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from noteloop import access
from noteloop.core.errors import NotFoundError
from noteloop.core.schema import Role
from noteloop.db import engine as db_engine
from noteloop.db import repo

PAGES = access.PAGES_DIR


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


def login_pages(make_session: sessionmaker[Session]) -> list[st.Page]:
    """The login form at the start URL and at every page's URL: a link to a page works
    after logging in, if the role may open it (the page itself is never run before)."""

    def form() -> None:
        login(make_session)

    return [st.Page(form, title="Log in", default=True)] + [
        st.Page(form, title="Log in", url_path=spec.file.removesuffix(".py"))
        for spec in access.PAGES
    ]


def _page(spec: access.PageSpec, default: bool = False) -> st.Page:
    icon = f":material/{spec.icon}:"
    return st.Page(PAGES / spec.file, title=spec.title, icon=icon, default=default or spec.default)


def pages_for(role: str) -> list[st.Page]:
    """The pages ``role`` may open (see :mod:`noteloop.access`): annotators annotate,
    leads also run the project, admins also manage users."""
    return [_page(spec) for spec in access.pages_for(role)]


def current_user(make_session: sessionmaker[Session]) -> dict[str, str] | None:
    """The logged-in user as the database has them now: a changed role applies at the
    next click, a deactivated or deleted user is logged out."""
    user = st.session_state.get("user")
    if user is None:
        return None
    with make_session() as session:
        try:
            row = repo.get_user(session, user["name"])
        except NotFoundError:
            row = None
        if row is None or not row.active:
            st.session_state.clear()
            return None
        fresh = {"name": row.name, "role": row.role}
    st.session_state["user"] = fresh
    return fresh


def main() -> None:
    st.set_page_config(page_title="noteloop", layout="wide")
    make_session = sessions(db_engine.normalize_url(os.environ.get("NOTELOOP_DB")))
    st.session_state["make_session"] = make_session
    user = current_user(make_session)
    if user is None:
        st.navigation(login_pages(make_session), position="hidden").run()
        return
    with make_session() as session:
        names = [p.name for p in repo.projects_for(session, repo.get_user(session, user["name"]))]
    st.sidebar.caption(f"{user['name']} ({user['role']})")
    if st.sidebar.button("Log out"):
        st.session_state.clear()
        st.rerun()
    if not names:
        message = (
            "No project yet: create one with `noteloop project create NAME --schema schema.json`"
            " (or ask a lead to add you to one)."
        )
        st.info(message)
        if user["role"] == Role.ADMIN:  # an admin can still add the people who will
            users = next(p for p in access.PAGES if p.file == "users.py")
            st.navigation([_page(users, default=True)]).run()
        return
    st.session_state["project"] = st.sidebar.selectbox("Project", names)
    st.navigation(pages_for(user["role"])).run()


main()
