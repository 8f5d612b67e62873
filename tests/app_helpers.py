"""Helpers for the AppTest tests: the app's path, its pages, and a run as a given user."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "noteloop" / "app.py")
PAGES = ROOT / "noteloop" / "pages"
# The users the ``demo_db`` fixture adds to the demo, by role: (name, password).
USERS = {"annotator": ("ann", "ann-pw"), "lead": ("lea", "lea-pw"), "admin": ("adm", "adm-pw")}


def app_as(name: str | None, role: str = "annotator") -> AppTest:
    """The app after one run, logged in as ``name`` (the role is re-read from the database)."""
    at = AppTest.from_file(APP, default_timeout=90)
    if name:
        at.session_state["user"] = {"name": name, "role": role}
    return at.run()


def page_as(role: str, page: str) -> AppTest:
    """The app on ``page`` (a file in noteloop/pages), as the demo user of ``role``."""
    at = app_as(USERS[role][0], role)
    return at.switch_page(str(PAGES / page)).run()
