"""Accounts as one concept: passwords and their policy, the audit of every account change,
keeping an admin under concurrent demotions, login throttling, login expiry, the
database file's mode and a URL's hidden password."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import stat
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.core.errors import NotFoundError
from noteloop.core.schema import LabelSchema, Role
from noteloop.db import accounts, logins, models, projects
from noteloop.db.engine import init_db, make_engine, session_factory, shown_url
from noteloop.db.errors import DuplicateError, StoreError
from noteloop.usecases.import_export import ImportOptions
from noteloop.usecases.uploads import Upload, import_uploads

pytestmark = pytest.mark.both_databases

GOOD = "correct-horse-9"
POLICY = logins.LoginPolicy()
THROTTLE = logins.ThrottlePolicy(user_failures=5, address_failures=8, first_delay_seconds=30)


def add(
    make_session: sessionmaker[Session],
    name: str,
    role: Role | str = Role.ANNOTATOR,
    password: str = GOOD,
    member_of: tuple[str, ...] = (),
    by: str = "root",
) -> str:
    with make_session.begin() as session:
        return accounts.create_user(session, name, role, password, member_of, by=by)


def audit(make_session: sessionmaker[Session], *actions: str) -> list[models.AuditLog]:
    with make_session() as session:
        query = select(models.AuditLog).order_by(models.AuditLog.id)
        if actions:
            query = query.where(models.AuditLog.action.in_(actions))
        return list(session.scalars(query))


# --------------------------------------------------------------------------- passwords


def test_passwords_are_hashed_salted_and_checked(make_session) -> None:
    add(make_session, "alice")
    add(make_session, "bob", "lead")
    with make_session() as session:
        alice = accounts.get_user(session, "alice")
        scheme, n, r, p, salt, digest = alice.password_hash.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1") and GOOD not in digest
        assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
        assert accounts.authenticate(session, "alice", GOOD) is alice
        assert accounts.authenticate(session, "alice", "wrong-horse-9") is None
        assert accounts.authenticate(session, "nobody", GOOD) is None
        # the same password hashes differently for another user: salts are per user
        assert accounts.get_user(session, "bob").password_hash.split("$")[4] != salt
        assert accounts.verify_password("x", "not-a-hash") is False


def test_user_errors_are_refused_before_anything_is_written(make_session) -> None:
    add(make_session, "alice")
    with pytest.raises(DuplicateError, match="a user named 'alice' exists already"):
        add(make_session, "alice")
    with pytest.raises(StoreError, match="role 'boss' is not one of annotator, lead, admin"):
        add(make_session, "carol", "boss")
    with pytest.raises(NotFoundError, match="no project named 'nope'"):
        add(make_session, "dave", member_of=("nope",))
    with make_session() as session:
        assert session.scalar(select(func.count()).select_from(models.User)) == 1


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("alice", "short-pw", "a password must be at least 10 characters long (this one has 8)"),
        ("alice", "my-ALICE-password", "a password must not contain the user name 'alice'"),
    ],
)
def test_the_password_policy_holds_at_creation_reset_and_change(
    make_session, name, password, message
) -> None:
    message = re.escape(message)
    with pytest.raises(StoreError, match=message):
        add(make_session, name, password=password)
    add(make_session, name)
    with make_session.begin() as session, pytest.raises(StoreError, match=message):
        accounts.reset_password(session, name, password, by="root")
    with make_session.begin() as session, pytest.raises(StoreError, match=message):
        accounts.change_password(session, name, GOOD, password)
    with make_session() as session:
        assert accounts.authenticate(session, name, GOOD) is not None  # unchanged


def test_a_generated_password_passes_the_policy(make_session) -> None:
    secret = add(make_session, "a", password="")
    accounts.check_password("a", secret)
    assert len(secret) >= accounts.PASSWORD_MIN_LENGTH and "a" not in secret.lower()


def test_a_user_changes_their_own_password_with_the_current_one(make_session) -> None:
    add(make_session, "alice")
    with make_session.begin() as session, pytest.raises(StoreError, match="current password"):
        accounts.change_password(session, "alice", "wrong-horse-9", "another-horse-9")
    with make_session.begin() as session:
        accounts.change_password(session, "alice", GOOD, "another-horse-9")
    with make_session() as session:
        assert accounts.authenticate(session, "alice", "another-horse-9") is not None
    [row] = audit(make_session, "change_password")
    assert row.user == "alice"


# --------------------------------------------------------------------------- the audit


def cli(db_url: str, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--db", db_url], catch_exceptions=False)


def test_the_command_line_audits_projects_users_and_imports(db_url, tmp_path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": "Chest pain."}) + "\n", encoding="utf-8")
    assert cli(db_url, "project", "create", "p").exit_code == 0
    assert cli(db_url, "user", "add", "ann", "--password", GOOD, "-p", "p").exit_code == 0
    assert cli(db_url, "import", str(notes), "-p", "p", "-f", "jsonl").exit_code == 0
    assert cli(db_url, "import", str(notes), "-p", "p", "-f", "jsonl").exit_code == 0
    make_session = session_factory(make_engine(db_url))
    rows = audit(make_session)
    assert [(r.user, r.action, r.entity) for r in rows] == [
        ("cli", "create_project", "projects"),
        ("cli", "add_user", "users"),
        ("cli", "import", "projects"),  # the second import added nothing: no row
    ]
    assert rows[0].after["name"] == "p"
    assert {k: rows[2].after[k] for k in ("format", "sources", "files", "documents")} == {
        "format": "jsonl", "sources": [str(notes)], "files": 1, "documents": 1,
    }  # fmt: skip


def test_the_command_line_applies_the_password_policy(db_url) -> None:
    short = cli(db_url, "user", "add", "ann", "--password", "s3cret!")
    assert short.exit_code == 1
    assert "a password must be at least 10 characters long (this one has 7)" in short.output
    assert cli(db_url, "user", "add", "ann", "--password", GOOD).exit_code == 0
    named = cli(db_url, "user", "reset-password", "ann", "--password", "Ann-forever-1")
    assert named.exit_code == 1
    assert "a password must not contain the user name 'ann'" in named.output


def test_an_upload_is_audited_under_who_uploaded_it(make_session) -> None:
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    upload = Upload("notes.jsonl", json.dumps({"id": "n1", "text": "Fever."}).encode() + b"\n")
    import_uploads(make_session, "p", [upload], ImportOptions("jsonl"), by="lea")
    [row] = audit(make_session, "import")
    assert (row.user, row.after["sources"], row.after["documents"]) == ("lea", ["notes.jsonl"], 1)


def test_the_demo_seed_is_audited(demo_db_url) -> None:
    make_session = session_factory(make_engine(demo_db_url))
    rows = audit(make_session, "add_user", "create_project", "import")
    assert [(r.user, r.action) for r in rows] == [
        ("seed", "add_user"), ("seed", "create_project"), ("seed", "import"), ("seed", "import"),
    ]  # fmt: skip


def test_init_prints_the_url_without_its_password(db_url) -> None:
    shown = cli(db_url, "init")
    assert shown.exit_code == 0
    password = make_url(db_url).password
    if password:  # PostgreSQL's URL carries one; a SQLite path none
        assert f":{password}@" not in shown.output and ":***@" in shown.output


def test_creation_memberships_and_resets_are_audited_with_who_and_what(make_session) -> None:
    with make_session.begin() as session:
        for name in ("p", "q"):
            projects.create_project(session, name, LabelSchema())
    add(make_session, "ann", member_of=("p",), by="root")
    with make_session.begin() as session:
        accounts.update_user(session, "ann", role="lead", active=True, projects=["q"], by="root")
    with make_session.begin() as session:
        accounts.reset_password(session, "ann", "", by="root")
    added, updated, reset = audit(make_session, "add_user", "update_user", "reset_password")
    assert (added.user, added.after) == (
        "root", {"role": "annotator", "active": True, "projects": ["p"]}
    )  # fmt: skip
    assert (updated.user, updated.before, updated.after) == (
        "root",
        {"role": "annotator", "active": True, "projects": ["p"]},
        {"role": "lead", "active": True, "projects": ["q"]},
    )
    assert reset.user == "root"  # the admin who reset it, not the user whose it is
    assert len(audit(make_session, "reset_password", "set_password")) == 1


def test_the_last_active_admin_is_kept(make_session) -> None:
    add(make_session, "root", Role.ADMIN)
    with make_session.begin() as session, pytest.raises(StoreError, match="last active admin"):
        accounts.update_user(session, "root", role="lead", active=True, projects=[], by="root")
    with make_session.begin() as session, pytest.raises(StoreError, match="last active admin"):
        accounts.update_user(session, "root", role="admin", active=False, projects=[], by="root")
    add(make_session, "other", Role.ADMIN)
    with make_session.begin() as session:
        accounts.update_user(session, "root", role="lead", active=True, projects=[], by="other")


ROUNDS = 15


def _demote(db_url: str, me: str, other: str, barrier: Any, results: Any) -> None:
    """Each round: demote the other admin at the same moment as they demote me."""
    engine = make_engine(db_url)
    make_session = session_factory(engine)
    outcomes: list[str] = []
    try:
        for _ in range(ROUNDS):
            barrier.wait(timeout=120)
            try:
                with make_session.begin() as session:
                    accounts.update_user(
                        session, other, role="lead", active=True, projects=[], by=me
                    )
                outcomes.append("demoted")
            except StoreError:
                outcomes.append("refused")
            barrier.wait(timeout=120)
            if me == "a1":  # counts, then makes both admins again for the next round
                with make_session.begin() as session:
                    admins = session.scalar(
                        select(func.count()).where(
                            models.User.role == "admin", models.User.active.is_(True)
                        )
                    )
                    outcomes.append(f"admins={admins}")
                    for name in (me, other):
                        accounts.get_user(session, name).role = "admin"
            barrier.wait(timeout=120)
        results.put((me, outcomes, ""))
    except Exception as exc:  # reported to the test, which fails with it
        results.put((me, outcomes, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def test_two_admins_demoting_each_other_at_once_leave_one_admin(db_url) -> None:
    make_session = session_factory(init_db(db_url))
    add(make_session, "a1", Role.ADMIN)
    add(make_session, "a2", Role.ADMIN)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_demote, args=(db_url, me, other, barrier, results))
        for me, other in (("a1", "a2"), ("a2", "a1"))
    ]
    for p in procs:
        p.start()
    out = {me: (outcomes, err) for me, outcomes, err in (results.get(timeout=300) for _ in procs)}
    for p in procs:
        p.join(timeout=60)
    assert not [err for _, err in out.values() if err], out
    counts = [o for o in out["a1"][0] if o.startswith("admins=")]
    assert counts == ["admins=1"] * ROUNDS  # exactly one demotion won every round
    mine = [o for o in out["a1"][0] if not o.startswith("admins=")]
    assert sorted(zip(mine, out["a2"][0], strict=True)) == sorted(
        [("demoted", "refused")] * mine.count("demoted")
        + [("refused", "demoted")] * mine.count("refused")
    )


# --------------------------------------------------------------------------- throttling


def attempt(make_session, name: str, password: str, address: str = "10.0.0.1", **kw: Any):
    with make_session.begin() as session:
        return logins.log_in(
            session, name, password, POLICY, address=address, throttle=THROTTLE, **kw
        )


def expire_waits(make_session) -> None:
    """Move every wait into the past, as if it had been sat out."""
    with make_session.begin() as session:
        for row in session.scalars(select(models.LoginThrottle)):
            if row.locked_until is not None:
                row.locked_until = models.utcnow() - timedelta(seconds=1)


def test_five_wrong_guesses_lock_the_name_even_for_the_right_password(make_session) -> None:
    add(make_session, "ann")
    for i in range(5):
        failed = attempt(make_session, "ann", f"guess-number-{i}")
        assert failed.started is None
    assert failed.message.startswith("Wrong user name or password. Too many failed logins")
    refused = attempt(make_session, "ann", GOOD)
    assert refused.started is None and refused.user is None
    assert "Too many failed logins for this user name: try again after" in refused.message
    assert "UTC (in 30 seconds)" in refused.message or "UTC (in 29 seconds)" in refused.message
    rows = audit(make_session, "log_in_failed", "log_in_refused")
    assert [r.action for r in rows] == ["log_in_failed"] * 5 + ["log_in_refused"]
    assert all(r.user == "ann" and r.after["address"] == "10.0.0.1" for r in rows)
    assert rows[-1].after["refused_until"] is not None


def test_the_wait_grows_and_a_success_clears_the_names_count(make_session) -> None:
    add(make_session, "ann")
    for i in range(5):
        attempt(make_session, "ann", f"guess-number-{i}")
    expire_waits(make_session)
    again = attempt(make_session, "ann", "guess-number-5")  # the 6th: twice the wait
    assert "(in 60 seconds)" in again.message or "(in 59 seconds)" in again.message
    expire_waits(make_session)
    assert attempt(make_session, "ann", GOOD).started is not None
    with make_session() as session:
        user_row = session.scalar(
            select(models.LoginThrottle).where(models.LoginThrottle.kind == "user")
        )
        assert (user_row.failures, user_row.locked_until) == (0, None)
    assert attempt(make_session, "ann", "guess-number-7").message == "Wrong user name or password."


def test_an_address_is_locked_apart_from_the_names_it_tries(make_session) -> None:
    add(make_session, "ann")
    for i in range(8):  # a different name each time: no name reaches its limit
        attempt(make_session, f"user{i}", GOOD, address="10.0.0.9")
    refused = attempt(make_session, "ann", GOOD, address="10.0.0.9")
    assert "Too many failed logins from this address" in refused.message
    assert attempt(make_session, "ann", GOOD, address="10.0.0.2").started is not None


@pytest.mark.sqlite_only
def test_behind_a_trusted_proxy_the_forwarded_address_is_counted() -> None:
    proxies = logins.trusted_networks("127.0.0.1, 10.0.0.0/8")
    # Every browser reaches the app from the proxy: its header names the browser.
    assert logins.client_address("127.0.0.1", "203.0.113.7", proxies) == "203.0.113.7"
    # Read from the right: what a browser wrote at the left is not believed, and a chain
    # of trusted proxies is walked back to the first address that is not one of them.
    assert logins.client_address("127.0.0.1", "1.1.1.1, 203.0.113.7, 10.2.3.4", proxies) == (
        "203.0.113.7"
    )
    # A header from anyone but a trusted proxy is ignored: a guesser cannot pick a fresh
    # address per attempt.
    assert logins.client_address("198.51.100.2", "203.0.113.7", proxies) == "198.51.100.2"
    assert logins.client_address("198.51.100.2", "", ()) == "198.51.100.2"
    assert logins.client_address("127.0.0.1", "", proxies) == "127.0.0.1"
    with pytest.raises(ValueError, match=r"'proxy\.lan' is not an IP address or network"):
        logins.trusted_networks("10.0.0.1, proxy.lan")


def test_a_quiet_window_starts_the_count_again(make_session) -> None:
    add(make_session, "ann")
    for i in range(4):
        attempt(make_session, "ann", f"guess-number-{i}")
    with make_session.begin() as session:
        for row in session.scalars(select(models.LoginThrottle)):
            row.last_failure_at = models.utcnow() - timedelta(minutes=16)
    attempt(make_session, "ann", "guess-number-4")
    assert attempt(make_session, "ann", GOOD).started is not None


GUESSERS, GUESSES = 4, 10


def _guess(db_url: str, who: int, barrier: Any, results: Any) -> None:
    """Wrong passwords for ann as fast as one app process can send them."""
    engine = make_engine(db_url)
    make_session = session_factory(engine)
    try:
        barrier.wait(timeout=120)
        for i in range(GUESSES):
            with make_session.begin() as session:
                logins.log_in(
                    session, "ann", f"guess-{who}-{i}-x", POLICY, address=f"10.0.1.{who}",
                    throttle=THROTTLE,
                )  # fmt: skip
        results.put("")
    except Exception as exc:  # reported to the test, which fails with it
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def test_guesses_from_several_processes_are_all_counted(db_url) -> None:
    make_session = session_factory(init_db(db_url))
    add(make_session, "ann")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(GUESSERS), ctx.Queue()
    procs = [
        ctx.Process(target=_guess, args=(db_url, who, barrier, results)) for who in range(GUESSERS)
    ]
    for p in procs:
        p.start()
    errors = [e for e in (results.get(timeout=300) for _ in procs) if e]
    for p in procs:
        p.join(timeout=60)
    assert not errors, errors
    failed = audit(make_session, "log_in_failed")
    refused = audit(make_session, "log_in_refused")
    assert len(failed) + len(refused) == GUESSERS * GUESSES
    with make_session() as session:
        by_name = session.scalar(
            select(models.LoginThrottle).where(models.LoginThrottle.kind == "user")
        )
    assert by_name.failures == len(failed) >= THROTTLE.user_failures  # no count was lost
    assert attempt(make_session, "ann", GOOD).started is None


def test_a_throttle_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="`user_failures` must be a whole number >= 1, got 0"):
        logins.ThrottlePolicy(user_failures=0)
    with pytest.raises(ValueError, match="`window_minutes` must be > 0"):
        logins.ThrottlePolicy(window_minutes=0)
    assert logins.ThrottlePolicy().delay(100) == timedelta(minutes=60)


# --------------------------------------------------------------------------- files and URLs


@pytest.mark.sqlite_only
def test_a_new_sqlite_file_and_its_wal_are_private(db_url) -> None:
    path = db_url.removeprefix("sqlite:///")
    old = os.umask(0o022)  # a umask that would leave the file world-readable
    try:
        engine = init_db(db_url)
        with session_factory(engine).begin() as session:
            accounts.create_user(session, "ann", Role.ANNOTATOR, GOOD, [], by="test")
            modes = {
                suffix: stat.S_IMODE(os.stat(path + suffix).st_mode)
                for suffix in ("", "-wal", "-shm")
                if os.path.exists(path + suffix)
            }
        engine.dispose()
    finally:
        os.umask(old)
    assert modes[""] == 0o600 and set(modes.values()) == {0o600}
    assert "-wal" in modes


def test_a_url_is_shown_without_its_password() -> None:
    assert shown_url("postgresql://nl:s3cret@db:5432/noteloop") == (
        "postgresql://nl:***@db:5432/noteloop"
    )
    assert shown_url("sqlite:////data/noteloop.db") == "sqlite:////data/noteloop.db"
