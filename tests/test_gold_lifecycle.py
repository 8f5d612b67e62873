"""Drafts, kept gold versions, restore, per-annotator suggestion decisions, logins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from noteloop.core.errors import ConflictError, NotFoundError
from noteloop.core.schema import (
    Document,
    EntityType,
    LabelSchema,
    Relation,
    RelationType,
    Role,
    Span,
    SpanSource,
    Suggestion,
)
from noteloop.db import (
    accounts,
    documents,
    drafts,
    gold,
    gold_versions,
    logins,
    model_versions,
    models,
    projects,
    suggestions,
)
from noteloop.db.errors import StoreError

pytestmark = pytest.mark.both_databases

TEXT = "Aspirin 81 mg for chest pain."


@pytest.fixture
def note(make_session) -> int:
    """Project "p" with one pool note, a model version with two span suggestions."""
    schema = LabelSchema(
        (EntityType("Drug"), EntityType("Problem")),
        (RelationType("treats", ("Drug",), ("Problem",)),),
    )
    with make_session.begin() as session:
        project = projects.create_project(session, "p", schema)
        row = documents.add_documents(session, project, [Document("d1", TEXT)]).added[0]
        version = model_versions.register_model_version(
            session, project, name="v1", backend="encoder", path="/nowhere"
        )
        suggestions.add_suggestions(
            session, row, version.id,
            [Suggestion(Span("S1", "Drug", 0, 7), 0.9),
             Suggestion(Span("S2", "Problem", 18, 28), 0.7)],
        )  # fmt: skip
        for name, role in (("ann", Role.ANNOTATOR), ("bob", Role.ANNOTATOR)):
            accounts.create_user(session, name, role, "", [], by="test")
    return row


def save(make_session, row: int, spans, relations=(), version: int = 0, who="ann", **kw) -> int:
    with make_session.begin() as session:
        return gold.save_annotation(session, row, who, spans, relations,
                                    expected_version=version, **kw)  # fmt: skip


# --------------------------------------------------------------------------- drafts


def test_a_draft_is_one_per_note_and_annotator_and_replaced_on_save(make_session, note):
    for spans in ([1], [1, 2]):
        with make_session.begin() as session:
            drafts.save_draft(session, note, "ann", {"spans": spans}, base_version=0,
                              model_version_id=None)  # fmt: skip
    with make_session() as session:
        assert drafts.load_draft(session, note, "ann").state == {"spans": [1, 2]}
        assert drafts.load_draft(session, note, "bob") is None
        assert session.scalar(select(models.Draft.id).where(models.Draft.id > 1)) is None


def test_a_draft_never_reaches_the_gold(make_session, note):
    with make_session.begin() as session:
        drafts.save_draft(session, note, "ann", {"spans": [{"id": "T1"}]}, base_version=0,
                          model_version_id=None)  # fmt: skip
    with make_session() as session:
        assert gold.gold_documents(session, projects.get_project(session, "p")) == []
        assert gold.load_annotation(session, note, "ann").version == 0


def test_discarding_a_draft_is_audited(make_session, note):
    with make_session.begin() as session:
        drafts.save_draft(session, note, "ann", {}, base_version=0, model_version_id=None)
    with make_session.begin() as session:
        assert drafts.discard_draft(session, note, "ann", by="ann") is True
        assert drafts.discard_draft(session, note, "ann", by="ann") is False
    with make_session() as session:
        assert session.scalar(
            select(models.AuditLog.action).where(models.AuditLog.action == "discard_draft")
        )


def test_a_draft_that_is_not_an_object_is_refused(make_session, note):
    with make_session.begin() as session, pytest.raises(StoreError, match="must be a JSON object"):
        drafts.save_draft(session, note, "ann", [1, 2], base_version=0, model_version_id=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- versions


def test_every_submit_is_kept_with_what_changed(make_session, note):
    drug, problem = Span("T1", "Drug", 0, 7), Span("T2", "Problem", 18, 28)
    save(make_session, note, [drug])
    save(make_session, note, [drug, problem], [Relation("R1", "treats", "T1", "T2")], version=1)
    save(make_session, note, [Span("T1", "Drug", 0, 13)], version=2, saved_by="lea")
    with make_session() as session:
        kept = gold_versions.history(session, note, "ann")
    assert [(v.version, v.saved_by, v.n_spans, v.n_relations, v.current) for v in kept] == [
        (3, "lea", 1, 0, True), (2, "ann", 2, 1, False), (1, "ann", 1, 0, False),
    ]  # fmt: skip
    assert kept[0].changes == "-1 span, 1 span changed, -1 relation"
    assert kept[1].changes == "+1 span, +1 relation"


def test_a_draft_save_keeps_no_version(make_session, note):
    from noteloop.core.schema import AnnotationStatus

    save(make_session, note, [Span("T1", "Drug", 0, 7)], status=AnnotationStatus.IN_PROGRESS)
    with make_session() as session:
        assert gold_versions.history(session, note, "ann") == []


def test_restore_brings_an_earlier_version_back_as_a_new_one(make_session, note):
    first = [Span("T1", "Drug", 0, 7, notes=("n",), concept="RX:1191")]
    save(make_session, note, first)
    save(make_session, note, [Span("T9", "Problem", 18, 28)], version=1)
    with make_session.begin() as session:
        assert gold.restore(session, note, "ann", 1, by="lea", expected_version=2) == 3
    with make_session() as session:
        loaded = gold.load_annotation(session, note, "ann")
        kept = gold_versions.history(session, note, "ann")
        audit = session.scalar(
            select(models.AuditLog).where(models.AuditLog.action == "restore_gold_version")
        )
    assert list(loaded.document.spans) == first and loaded.saved_by == "lea"
    assert (kept[0].version, kept[0].restored_from) == (3, 1)
    assert audit is not None and audit.user == "lea"


def test_restore_refuses_an_unknown_version_and_names_the_kept_ones(make_session, note):
    save(make_session, note, [Span("T1", "Drug", 0, 7)])
    with (
        make_session.begin() as session,
        pytest.raises(NotFoundError, match=r"has no version 7 \(kept versions: 1\)"),
    ):
        gold.restore(session, note, "ann", 7, by="lea", expected_version=1)
    with make_session.begin() as session, pytest.raises(NotFoundError, match="bob has no gold"):
        gold.restore(session, note, "bob", 1, by="lea", expected_version=1)


def test_restore_refuses_when_someone_saved_since_the_history_was_shown(make_session, note):
    save(make_session, note, [Span("T1", "Drug", 0, 7)])
    save(make_session, note, [], version=1)  # after the lead looked at version 1
    with make_session.begin() as session, pytest.raises(ConflictError, match="now version 2"):
        gold.restore(session, note, "ann", 1, by="lea", expected_version=1)


# --------------------------------------------------------------------------- decisions


def test_decisions_are_per_annotator(make_session, note):
    with make_session() as session:
        ids = [s.item.suggestion_id for s in suggestions.suggestions_for(session, note)]
    with make_session.begin() as session:
        suggestions.record_decisions(session, "ann", {ids[0]: "accepted", ids[1]: "rejected"})
        suggestions.record_decisions(session, "bob", {ids[0]: "rejected"})
    with make_session.begin() as session:  # ann changes her mind on one
        suggestions.record_decisions(session, "ann", {ids[1]: "edited"})
    with make_session() as session:
        assert suggestions.decided(session, "ann", ids) == {ids[0]: "accepted", ids[1]: "edited"}
        assert suggestions.decided(session, "bob", ids) == {ids[0]: "rejected"}
        open_for_bob = suggestions.suggestions_for(session, note, open_for="bob")
        assert [s.item.id for s in open_for_bob] == ["S2"]
        assert suggestions.suggestions_for(session, note, open_for="carol") != []


def test_a_bad_decision_writes_nothing(make_session, note):
    with make_session.begin() as session, pytest.raises(StoreError, match="not 'open'"):
        suggestions.record_decisions(session, "ann", {1: "open"})
    with make_session.begin() as session, pytest.raises(NotFoundError, match="do not exist"):
        suggestions.record_decisions(session, "ann", {99999: "accepted"})


def test_a_span_source_survives_the_kept_version(make_session, note):
    with make_session() as session:
        sid = suggestions.suggestions_for(session, note)[0].item.suggestion_id
    span = Span("T1", "Drug", 0, 7, source=SpanSource.ACCEPTED, suggestion_id=sid)
    save(make_session, note, [span])
    save(make_session, note, [], version=1)
    with make_session.begin() as session:
        gold.restore(session, note, "ann", 1, by="ann", expected_version=2)
    with make_session() as session:
        assert list(gold.load_annotation(session, note, "ann").document.spans) == [span]


# --------------------------------------------------------------------------- logins


POLICY = logins.LoginPolicy(idle_minutes=30, lifetime_hours=24)


def start(make_session, name="ann"):
    with make_session.begin() as session:
        return logins.start(session, accounts.get_user(session, name), POLICY, "test client")


def resume(make_session, token):
    with make_session.begin() as session:
        found = logins.resume(session, token, POLICY)
        return (found[0], found[1].name) if found else None


def test_a_login_resumes_from_its_token_and_stores_only_a_hash(make_session, note):
    started = start(make_session)
    assert resume(make_session, started.token) == (started.login_id, "ann")
    assert resume(make_session, started.token + "x") is None
    assert resume(make_session, "") is None
    with make_session() as session:
        row = session.get(models.Login, started.login_id)
        assert row.token_hash == logins.token_hash(started.token) != started.token


def test_a_login_ends_at_log_out_revocation_idle_time_and_lifetime(make_session, note):
    out, revoked, idle, old = (start(make_session) for _ in range(4))
    with make_session.begin() as session:
        logins.end(session, out.login_id, by="ann")
        logins.end(session, revoked.login_id, by="adm")
        session.get(models.Login, idle.login_id).seen_at -= timedelta(minutes=31)
        session.get(models.Login, old.login_id).expires_at = models.utcnow()
    assert [resume(make_session, s.token) for s in (out, revoked, idle, old)] == [None] * 4
    with make_session() as session:
        actions = list(session.scalars(select(models.AuditLog.action)))
        assert session.get(models.Login, revoked.login_id).ended_by == "adm"
        assert logins.open_logins(session, POLICY) == []
    assert actions.count("log_in") == 4 and "log_out" in actions and "revoke_login" in actions


def test_a_deactivated_user_loses_every_login(make_session, note):
    started = start(make_session)
    with make_session.begin() as session:
        accounts.get_user(session, "ann").active = False
    assert resume(make_session, started.token) is None
    with make_session.begin() as session:
        assert logins.still_open(session, started.login_id, POLICY) is None


def test_open_logins_lists_who_and_from_where(make_session, note):
    start(make_session, "ann")
    start(make_session, "bob")
    with make_session() as session:
        listed = logins.open_logins(session, POLICY)
    assert sorted(r.user for r in listed) == ["ann", "bob"]
    assert all(r.client == "test client" for r in listed)


def test_a_login_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="`idle_minutes` must be > 0, got 0"):
        logins.LoginPolicy(idle_minutes=0)
