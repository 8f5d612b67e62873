"""Accounts in the app: throttled logins, logins that expire on any run, the password
policy on the Users page, and a user's own password change."""

from __future__ import annotations

from typing import Any

import pytest
from app_helpers import PAGES, USERS, app_as, page_as

from noteloop.db import accounts, models
from noteloop.db.engine import make_engine, session_factory

ANN, ANN_PASSWORD = USERS["annotator"]


@pytest.fixture
def sessions(demo_db):
    engine = make_engine(demo_db)
    yield session_factory(engine)
    engine.dispose()


def log_in_form(at: Any, name: str, password: str) -> Any:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def expire(sessions, login_id: int) -> None:
    with sessions.begin() as session:
        session.get(models.Login, login_id).expires_at = models.utcnow()


def test_the_login_form_refuses_the_right_password_after_five_wrong_ones(demo_db, sessions):
    at = app_as(None)
    for i in range(5):
        at = log_in_form(at, ANN, f"wrong-guess-{i}")
    assert at.error[0].value.startswith("Wrong user name or password. Too many failed logins")
    at = log_in_form(at, ANN, ANN_PASSWORD)
    assert "user" not in at.session_state
    assert at.error[0].value.startswith("Too many failed logins for this user name: try again")
    with sessions() as session:
        actions = [r.action for r in session.query(models.AuditLog).order_by(models.AuditLog.id)]
    assert actions.count("log_in_failed") == 5 and actions.count("log_in_refused") == 1


def test_an_expired_login_is_refused_at_the_next_run(demo_db, sessions):
    at = app_as(ANN)
    assert at.session_state["user"]["name"] == ANN
    expire(sessions, at.session_state["login_id"])
    at.run()
    assert "user" not in at.session_state
    assert [t.label for t in at.text_input] == ["User name", "Password"]


def test_a_page_open_when_the_login_expires_gives_way_to_the_login_form(demo_db, sessions):
    at = app_as("lea", "lead")
    at.switch_page(str(PAGES / "overview.py")).run()
    assert at.title[0].value == "Project demo"  # the page runs while the login is open
    expire(sessions, at.session_state["login_id"])
    at.switch_page(str(PAGES / "overview.py")).run()
    assert "user" not in at.session_state and not any(
        t.value == "Project demo" for t in at.title
    )


def test_the_users_page_refuses_a_password_that_breaks_the_policy(demo_db, sessions):
    at = page_as("admin", "users.py")
    tab = at.tabs[0]
    next(t for t in tab.text_input if t.label == "User name").input("nurse")
    next(t for t in tab.text_input if t.label.startswith("Password")).input("Nurse-2026!")
    next(b for b in tab.button if b.label == "Add user").click()
    at = at.run()
    assert at.error[0].value == "Not added: a password must not contain the user name 'nurse'"
    with sessions() as session:
        assert session.query(models.User).filter_by(name="nurse").first() is None


def test_a_user_changes_their_own_password(demo_db, sessions):
    at = app_as(ANN)

    def change(current: str, new: str) -> Any:
        fields = {t.label.split(" (")[0]: t for t in at.sidebar.text_input}
        fields["Current password"].input(current)
        fields["New password"].input(new)
        next(b for b in at.sidebar.button if b.label == "Change password").click()
        return at.run()

    at = change("not-my-password", "brand-new-secret")
    assert at.sidebar.error[0].value.startswith("Not changed: the current password is wrong")
    at = change(ANN_PASSWORD, "short")
    assert "at least 10 characters" in at.sidebar.error[0].value
    at = change(ANN_PASSWORD, "brand-new-secret")
    assert at.sidebar.success[0].value == "Password changed."
    with sessions() as session:
        assert accounts.authenticate(session, ANN, "brand-new-secret") is not None
