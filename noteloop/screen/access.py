"""Who may open which page: one table, read by the navigation and by every page itself.

``app.py`` registers with ``st.navigation`` only the pages a role may open, so their URLs
lead nowhere for anyone else. Each page also calls :func:`page_context` first and stops
unless the logged-in user's role is one of the page's, so a page's own code never relies
on how it was reached. The pages live in ``views/``, not ``pages/``: Streamlit runs a
script of a ``pages/`` folder beside the main script directly, without ``app.py`` (its
folder-based multipage mode), on the first request a freshly started server gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noteloop.core.schema import Role

PAGES_DIR = Path(__file__).parent / "views"
ANYONE = frozenset(Role)
LEADS = frozenset({Role.LEAD, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class PageSpec:
    file: str  # in noteloop/screen/views
    title: str
    icon: str  # a Material Symbols name
    roles: frozenset[Role]
    # The roles that land on this page after logging in: annotators on Annotate, leads
    # and admins on the Dashboard (landing on Annotate would have them ask for a note).
    default_for: frozenset[Role] = frozenset()


PAGES: tuple[PageSpec, ...] = (
    PageSpec("annotate.py", "Annotate", "edit_note", ANYONE, frozenset({Role.ANNOTATOR})),
    PageSpec("queue.py", "Queue", "format_list_numbered", ANYONE),
    PageSpec("dashboard.py", "Dashboard", "monitoring", LEADS, LEADS),
    PageSpec("adjudicate.py", "Adjudicate", "rule", LEADS),
    PageSpec("overview.py", "Overview", "dashboard", LEADS),
    PageSpec("model.py", "Model", "model_training", LEADS),
    PageSpec("data.py", "Data", "swap_vert", LEADS),
    PageSpec("documents.py", "Documents", "description", LEADS),
    PageSpec("schema.py", "Schema", "label", LEADS),
    PageSpec("users.py", "Users", "group", ADMINS),
)
_BY_FILE = {spec.file: spec for spec in PAGES}


def pages_for(role: str) -> list[PageSpec]:
    """The pages ``role`` may open, in menu order; a page whose file is not there yet
    (pages are added over time) is left out."""
    return [p for p in PAGES if Role(role) in p.roles and (PAGES_DIR / p.file).exists()]


def may_open(role: str, page_file: str) -> bool:
    spec = _BY_FILE.get(Path(page_file).name)
    return spec is not None and Role(role) in spec.roles


@dataclass(frozen=True)
class PageContext:
    """What ``app.py`` leaves in the session for a page: sessions, the user, the project."""

    make_session: Any  # sessionmaker[Session]
    user: str
    role: str
    project: str


def page_context(page_file: str, *, needs_project: bool = True) -> PageContext:
    """The context of the page in ``page_file`` (pass ``__file__``); stops the page with
    a message when nobody is logged in or the user's role may not open it."""
    import streamlit as st

    state = st.session_state
    user = state.get("user")
    if user is None or "make_session" not in state:  # app.py runs every page after its login
        st.error("Log in first.")
        st.stop()
    if not may_open(user["role"], page_file):
        st.error(f"This page is not open to the {user['role']} role.")
        st.stop()
    if needs_project and "project" not in state:
        st.info("Choose a project first.")
        st.stop()
    return PageContext(state["make_session"], user["name"], user["role"], state.get("project", ""))
