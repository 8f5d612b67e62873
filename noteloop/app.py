"""Streamlit entry point: the project picker and the navigation over ``pages/``.

Run with ``streamlit run noteloop/app.py`` (``make run`` does). The database URL comes
from ``NOTELOOP_DB``, read once here.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from noteloop.db import engine as db_engine
from noteloop.db import repo

PAGES = Path(__file__).parent / "pages"


@st.cache_resource
def sessions(url: str) -> sessionmaker[Session]:
    """One engine per app process: its connections are pooled and safe to share."""
    return db_engine.session_factory(db_engine.init_db(url))


def main() -> None:
    st.set_page_config(page_title="noteloop", layout="wide")
    make_session = sessions(db_engine.normalize_url(os.environ.get("NOTELOOP_DB")))
    st.session_state["make_session"] = make_session
    with make_session() as session:
        names = [p.name for p in repo.list_projects(session)]
    if not names:
        st.info(
            "No project yet: create one with `noteloop project create NAME --schema schema.json`."
        )
        return
    st.session_state["project"] = st.sidebar.selectbox("Project", names)
    nav = st.navigation(
        [
            st.Page(
                PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True
            ),
            st.Page(PAGES / "documents.py", title="Documents", icon=":material/description:"),
        ]
    )
    nav.run()


main()
