"""Helpers for the AppTest tests: the app's path, its pages, and a run as a given user."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "noteloop" / "screen" / "app.py")
PAGES = ROOT / "noteloop" / "screen" / "views"
# The users the ``demo_db`` fixture adds to the demo, by role: (name, password).
# Passwords follow the password policy: ten characters or more, without the user name.
USERS = {
    "annotator": ("ann", "staple-battery-1"),
    "lead": ("lea", "staple-battery-2"),
    "admin": ("adm", "staple-battery-3"),
}


def app_as(name: str | None, role: str = "annotator") -> AppTest:
    """The app after one run, logged in as ``name`` (the role is re-read from the database)
    through a real login of the database that ``NOTELOOP_DB`` names."""
    at = AppTest.from_file(APP, default_timeout=90)
    if name:
        at.session_state["user"] = {"name": name, "role": role}
        at.session_state["login_id"] = log_in(name)
    return at.run()


def log_in(name: str) -> int:
    """A login of user ``name`` started in the app's database; its id."""
    from noteloop.db import accounts, logins
    from noteloop.db.engine import db_url_from_env, make_engine, session_factory

    engine = make_engine(db_url_from_env())
    try:
        with session_factory(engine).begin() as session:
            user = accounts.get_user(session, name)
            return logins.start(session, user, logins.LoginPolicy()).login_id
    finally:
        engine.dispose()


def page_as(role: str, page: str) -> AppTest:
    """The app on ``page`` (a file in noteloop/screen/views), as the demo user of ``role``."""
    at = app_as(USERS[role][0], role)
    return at.switch_page(str(PAGES / page)).run()
