"""Users (admins only): who may log in, with which role, to which projects; passwords."""

from __future__ import annotations

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Role
from noteloop.db import accounts, logins
from noteloop.db.projects import list_projects
from noteloop.screen.access import page_context
from noteloop.screen.forms import md

page = page_context(__file__, needs_project=False)
make_session, me = page.make_session, page.user
ROLES = [r.value for r in Role]
RULE = f"{accounts.PASSWORD_MIN_LENGTH} characters or more, not containing the user name"

with make_session() as session:
    users = accounts.user_rows(session)
    projects = [p.name for p in list_projects(session)]

st.title("Users")
for kind, message in st.session_state.pop("users-said", []):
    getattr(st, kind)(message)
st.dataframe(
    [
        {
            "user": u.name,
            "role": u.role,
            "active": u.active,
            "projects": ", ".join(u.projects),
            "created": f"{u.created_at:%Y-%m-%d}",
        }
        for u in users
    ],
    hide_index=True,
)
st.caption("Annotators see the projects they are members of; leads and admins see every project.")


def done(*messages: tuple[str, str]) -> None:
    st.session_state["users-said"] = list(messages)
    st.rerun()


def shown_password(name: str, secret: str, typed: str) -> tuple[str, str]:
    if typed:
        return ("success", f"Password of {md(name)} set.")
    # Shown once: only its hash is stored.
    return ("warning", f"Password of {md(name)}: `{secret}` (shown only now; pass it on safely)")


add_tab, edit_tab, logins_tab = st.tabs(["Add a user", "Change a user", "Open logins"])
with add_tab, st.form("add-user", clear_on_submit=True):
    name = st.text_input("User name")
    role = st.selectbox("Role", ROLES)
    password = st.text_input("Password (empty: generate one)", type="password", help=RULE)
    member_of = st.multiselect("Projects", projects)
    if st.form_submit_button("Add user", type="primary"):
        try:
            with make_session.begin() as session:
                secret = accounts.create_user(session, name, role, password, member_of, by=me)
        except NoteloopError as exc:
            st.error(f"Not added: {md(exc)}")
        else:
            done(
                ("success", f"User {md(name.strip())} ({role}) added."),
                shown_password(name, secret, password),
            )

with edit_tab:
    chosen = st.selectbox("User", [u.name for u in users], key="edit-user")
    row = next(u for u in users if u.name == chosen)
    with st.form(f"edit-{chosen}"):
        new_role = st.selectbox("Role", ROLES, ROLES.index(row.role))
        active = st.checkbox("May log in", row.active)
        member_of = st.multiselect("Projects", projects, list(row.projects))
        if st.form_submit_button("Save changes", type="primary"):
            try:
                with make_session.begin() as session:
                    accounts.update_user(
                        session, chosen, role=new_role, active=active, projects=member_of, by=me
                    )
            except NoteloopError as exc:
                st.error(f"Not changed: {md(exc)}")
            else:
                done(("success", f"User {md(chosen)} saved."))
    with st.form(f"password-{chosen}", clear_on_submit=True):
        typed = st.text_input("New password (empty: generate one)", type="password", help=RULE)
        if st.form_submit_button("Reset password"):
            try:
                with make_session.begin() as session:
                    secret = accounts.reset_password(session, chosen, typed, by=me)
            except NoteloopError as exc:
                st.error(f"Not changed: {md(exc)}")
            else:
                done(shown_password(chosen, secret, typed))

with logins_tab:
    policy = st.session_state.get("login_policy") or logins.LoginPolicy()
    with make_session() as session:
        open_now = logins.open_logins(session, policy)
    st.caption(
        f"A login ends at log out, after {policy.idle_minutes:g} minutes without a request, "
        f"or {policy.lifetime_hours:g} hours after it began. Ending one logs that browser out "
        "at its next click."
    )
    st.dataframe(
        [
            {
                "login": row.id,
                "user": row.user,
                "since": f"{row.created_at:%Y-%m-%d %H:%M}",
                "last seen": f"{row.seen_at:%Y-%m-%d %H:%M}",
                "ends at the latest": f"{row.expires_at:%Y-%m-%d %H:%M}",
                "from": row.client,
            }
            for row in open_now
        ],
        hide_index=True,
    )
    ending = st.multiselect(
        "Logins to end", [r.id for r in open_now],
        format_func=lambda i: next(f"{r.user} · {r.id}" for r in open_now if r.id == i),
    )  # fmt: skip
    if st.button("End these logins", disabled=not ending):
        with make_session.begin() as session:
            for login_id in ending:
                logins.end(session, login_id, by=me)
        done(("success", f"Ended {len(ending)} login(s)."))
