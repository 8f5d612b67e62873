"""Streamlit entry point: login, the project picker and the navigation over ``views/``.

Started by ``noteloop serve`` (``make run`` calls it). The database URL comes
from ``NOTELOOP_DB``, read once here. Only the pages a user's role allows are registered
with ``st.navigation``, so a page outside the role cannot be reached by its URL either.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Role
from noteloop.db import accounts, logins
from noteloop.db import engine as db_engine
from noteloop.db.errors import database_refusal
from noteloop.screen import access
from noteloop.screen.components import cookie
from noteloop.screen.forms import md

PAGES = access.PAGES_DIR


@st.cache_resource
def sessions(url: str) -> sessionmaker[Session]:
    """One engine per app process: its connections are pooled and safe to share."""
    return db_engine.session_factory(db_engine.init_db(url))


def login(make_session: sessionmaker[Session], policy: logins.LoginPolicy) -> None:
    st.title("noteloop")
    if st.session_state.pop("clear_cookie", False):
        cookie.clear_cookie(logins.COOKIE)
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        if st.form_submit_button("Log in", type="primary"):
            with make_session.begin() as session:  # committed whatever the outcome
                attempt = logins.log_in(
                    session, name.strip(), password, policy, address=_address(), client=_client()
                )
            if attempt.started is None or attempt.user is None:
                st.error(attempt.message)
            else:
                st.session_state["user"] = {"name": attempt.user.name, "role": attempt.user.role}
                st.session_state["login_id"] = attempt.started.login_id
                st.session_state["cookie_token"] = attempt.started.token
                st.rerun()


def _address() -> str:
    # Streamlit gives no address for a browser on the same machine (and a test harness
    # may hand other things than a string).
    peer = st.context.ip_address
    peer = peer if isinstance(peer, str) and peer else "this machine"
    forwarded = st.context.headers.get("X-Forwarded-For", "") or ""
    return logins.client_address(peer, forwarded, trusted_proxies())


@st.cache_resource
def trusted_proxies() -> tuple[logins.Network, ...]:
    """NOTELOOP_TRUSTED_PROXIES, read once: the reverse proxies in front of the app."""
    try:
        return logins.trusted_networks(os.environ.get("NOTELOOP_TRUSTED_PROXIES", ""))
    except ValueError as exc:  # shown by the page boundary below, not as a traceback
        raise NoteloopError(f"{exc}; fix it and restart the app") from None


def _client() -> str:
    """Where a login came from, for the admin's list of open logins."""
    agent = st.context.headers.get("User-Agent", "") or ""
    return f"{_address()} · {agent[:200]}"


def login_pages(
    make_session: sessionmaker[Session], policy: logins.LoginPolicy
) -> list[st.Page]:
    """The login form at the start URL and at every page's URL: a link to a page works
    after logging in, if the role may open it (the page itself is never run before)."""

    def form() -> None:
        login(make_session, policy)

    return [st.Page(form, title="Log in", default=True)] + [
        st.Page(form, title="Log in", url_path=spec.file.removesuffix(".py"))
        for spec in access.PAGES
    ]


def _page(spec: access.PageSpec, default: bool = False) -> st.Page:
    icon = f":material/{spec.icon}:"
    return st.Page(PAGES / spec.file, title=spec.title, icon=icon, default=default)


def pages_for(role: str) -> list[st.Page]:
    """The pages ``role`` may open (see :mod:`noteloop.screen.access`): annotators annotate,
    leads also run the project, admins also manage users."""
    return [_page(spec, Role(role) in spec.default_for) for spec in access.pages_for(role)]


def current_user(
    make_session: sessionmaker[Session], policy: logins.LoginPolicy
) -> dict[str, str] | None:
    """The logged-in user as the database has them now, from this browser tab's login or
    from the login cookie (a reload, a new tab): a changed role applies at the next click;
    a deactivated user, a revoked or expired login is logged out."""
    state = st.session_state
    token = st.context.cookies.get(logins.COOKIE) or ""
    token = token if isinstance(token, str) else ""  # a test harness may hand other things
    with make_session.begin() as session:
        if "login_id" in state:
            user = logins.still_open(session, state["login_id"], policy)
        else:
            found = logins.resume(session, token, policy)
            state["login_id"], user = found if found else (None, None)
        fresh = {"name": user.name, "role": user.role} if user is not None else None
    if fresh is None:
        if "user" in state:  # a login that ended (revoked, expired, user deactivated)
            state.clear()
        state.pop("login_id", None)
        if token:  # the cookie of an ended login: the browser drops it
            state["clear_cookie"] = True
        return None
    state["user"] = fresh
    return fresh


def change_password(make_session: sessionmaker[Session], name: str) -> None:
    """A user's change of their own password: the current one, then a new one that meets
    the password policy (:func:`noteloop.db.accounts.check_password`)."""
    rule = f"{accounts.PASSWORD_MIN_LENGTH} characters or more, without your user name"
    with st.form("change-password", clear_on_submit=True):
        current = st.text_input("Current password", type="password")
        new = st.text_input(f"New password ({rule})", type="password")
        if st.form_submit_button("Change password"):
            try:
                with make_session.begin() as session:
                    accounts.change_password(session, name, current, new)
            except NoteloopError as exc:
                st.error(f"Not changed: {md(exc)}")
            else:
                st.success("Password changed.")


def log_out(make_session: sessionmaker[Session], user: str) -> None:
    with make_session.begin() as session:
        logins.end(session, st.session_state["login_id"], by=user)
    st.session_state.clear()
    st.session_state["clear_cookie"] = True


def main() -> None:
    st.set_page_config(page_title="noteloop", layout="wide")
    make_session = sessions(db_engine.normalize_url(os.environ.get("NOTELOOP_DB")))
    try:
        policy = login_policy()
    except ValueError as exc:
        st.error(f"The login settings are refused: {md(exc)}")
        st.stop()
    st.session_state["make_session"] = make_session
    st.session_state["login_policy"] = policy  # for the Users page's list of logins
    user = current_user(make_session, policy)
    if user is None:
        st.navigation(login_pages(make_session, policy), position="hidden").run()
        return
    if "cookie_token" in st.session_state:  # until the reload, every run keeps it set
        cookie.set_cookie(
            logins.COOKIE, st.session_state["cookie_token"], int(policy.lifetime.total_seconds())
        )
    with make_session() as session:
        me = accounts.get_user(session, user["name"])
        names = [p.name for p in accounts.projects_for(session, me)]
    st.sidebar.caption(f"{md(user['name'])} ({user['role']})")
    if st.sidebar.button("Log out"):
        log_out(make_session, user["name"])
        st.rerun()
    with st.sidebar.popover("Change my password"):
        change_password(make_session, user["name"])
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
    st.session_state["project"] = choose_project(names, int(policy.lifetime.total_seconds()))
    st.navigation(pages_for(user["role"])).run()


PROJECT_COOKIE = "noteloop_project"


def choose_project(names: list[str], max_age_seconds: int) -> str:
    """The sidebar's project picker. The choice is kept in a cookie, so a reload stays in
    the project the user was working in: falling back to the first name would send a
    lead's next import, schema edit or "Train now" to another project unnoticed."""
    remembered = unquote(st.context.cookies.get(PROJECT_COOKIE) or "")
    index = names.index(remembered) if remembered in names else 0
    chosen = st.sidebar.selectbox("Project", names, index=index)
    if chosen != remembered:  # the cookies read are the connection's first request's
        cookie.set_cookie(
            PROJECT_COOKIE, quote(chosen, safe=""), max_age_seconds, key="project-cookie"
        )
    return chosen


@st.cache_resource
def login_policy() -> logins.LoginPolicy:
    """How long logins last: NOTELOOP_LOGIN_IDLE_MINUTES and NOTELOOP_LOGIN_HOURS, read once."""
    defaults = logins.LoginPolicy()
    return logins.LoginPolicy(
        idle_minutes=_number_env("NOTELOOP_LOGIN_IDLE_MINUTES", defaults.idle_minutes),
        lifetime_hours=_number_env("NOTELOOP_LOGIN_HOURS", defaults.lifetime_hours),
    )


def _number_env(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


try:
    main()
except (NoteloopError, SQLAlchemyError) as exc:
    # The pages' boundary: what a page did not catch itself (a database that went away,
    # say) shows as what to do, never as a traceback.
    refusal = database_refusal(exc) if isinstance(exc, SQLAlchemyError) else exc
    st.error(md(refusal))
