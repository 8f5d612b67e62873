"""Claims: who gets which note, leases that lapse, skip, release, reassign, reopen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from noteloop.core.errors import NotFoundError
from noteloop.core.schema import Document, EntityType, LabelSchema, Role, Span
from noteloop.db import accounts, claims, documents, drafts, gold, learning, models, projects
from noteloop.db.errors import StoreError

pytestmark = pytest.mark.both_databases


@pytest.fixture
def project(make_session):
    """Project "p": five pool notes n0..n4, a test note, users ann, bob, lea (lead)."""
    with make_session.begin() as session:
        p = projects.create_project(
            session, "p", LabelSchema((EntityType("Problem"),)), {"claim_minutes": 30}
        )
        docs = [Document(f"n{i}", f"Note {i}: chest pain for {i} days.") for i in range(5)]
        documents.add_documents(session, p, docs)
        documents.add_documents(session, p, [Document("t0", "A test note.")], split="test")
        for name, role in (("ann", Role.ANNOTATOR), ("bob", Role.ANNOTATOR), ("lea", Role.LEAD)):
            accounts.create_user(session, name, role, "", ["p"], by="test")
        accounts.create_user(session, "out", Role.ANNOTATOR, "", [], by="test")  # of no project
    return make_session


def rows(make_session) -> dict[str, int]:
    with make_session() as session:
        return documents.document_ids(session, projects.get_project(session, "p"))


def claim(make_session, who: str) -> int | None:
    with make_session.begin() as session:
        return claims.claim_next(session, projects.get_project(session, "p"), who)


def age_claims(make_session, minutes: float) -> None:
    """Move every claim's last activity ``minutes`` into the past."""
    with make_session.begin() as session:
        for row in session.scalars(select(models.Claim)):
            row.active_at -= timedelta(minutes=minutes)


def audit_actions(make_session) -> list[str]:
    with make_session() as session:
        return list(session.scalars(select(models.AuditLog.action).order_by(models.AuditLog.id)))


def test_notes_go_in_queue_order_one_per_person_and_never_the_test_split(project):
    ids = rows(project)
    with project.begin() as session:
        learning.replace_queue(
            session, projects.get_project(session, "p"),
            [(ids["n3"], 0.9, {}), (ids["n1"], 0.5, {})], strategy="t", model_version_id=None,
        )  # fmt: skip
    assert claim(project, "ann") == ids["n3"]
    assert claim(project, "bob") == ids["n1"]
    assert claim(project, "ann") == ids["n3"]  # finish what you hold first
    others = [claim(project, who) for who in ("c1", "c2", "c3", "c4")]
    assert others == [ids["n0"], ids["n2"], ids["n4"], None]  # unranked: oldest first
    assert "claim" in audit_actions(project)


def test_opening_nothing_claims_nothing(project):
    with project() as session:
        p = projects.get_project(session, "p")
        assert claims.held_note(session, p, "ann") is None
        assert claims.claim_rows(session, p) == []


def test_a_lapsed_claim_goes_to_the_next_person_but_a_live_one_never(project):
    first = claim(project, "ann")
    age_claims(project, 29)
    assert claim(project, "bob") != first  # 29 minutes idle: still ann's
    age_claims(project, 2)
    with project.begin() as session:  # bob's own note is done, so he asks again
        claims.finish(session, claim(project, "bob"), "bob")
    assert claim(project, "bob") == first  # 31 minutes idle: lapsed, taken over
    with project() as session:
        assert claims.holder(session, first, "ann") is None
    assert "take_over_lapsed_claim" in audit_actions(project)


def test_activity_renews_the_lease(project):
    first = claim(project, "ann")
    age_claims(project, 29)
    with project.begin() as session:
        assert claims.touch(session, first, "ann") is True
    age_claims(project, 5)
    with project.begin() as session:
        claims.finish(session, claim(project, "bob"), "bob")
    assert claim(project, "bob") != first


def test_skip_gives_the_note_to_others_and_never_back_to_the_skipper(project):
    first = claim(project, "ann")
    with project.begin() as session:
        drafts.save_draft(session, first, "ann", {"spans": []}, base_version=0,
                          model_version_id=None)  # fmt: skip
        claims.skip(session, first, "ann", "  not a clinical note ")
    with project() as session:
        skip = session.scalar(select(models.Skip))
        assert (skip.document_id, skip.reason) == (first, "not a clinical note")
        assert drafts.load_draft(session, first, "ann") is None  # passing on it drops the draft
    assert claim(project, "ann") != first
    assert claim(project, "bob") == first
    assert "skip" in audit_actions(project)


def test_release_gives_the_note_back_at_once(project):
    first = claim(project, "ann")
    with project.begin() as session:
        claims.release(session, first, "ann", by="ann")
    assert claim(project, "bob") == first
    assert claim(project, "ann") != first  # someone else has it now
    with project.begin() as session, pytest.raises(NotFoundError, match="holds no claim"):
        claims.release(session, first, "ann", by="ann")


def test_a_lead_reassigns_a_claim_with_its_draft(project):
    first = claim(project, "ann")
    with project.begin() as session:
        drafts.save_draft(session, first, "ann", {"spans": [1]}, base_version=0,
                          model_version_id=None)  # fmt: skip
        claims.reassign(session, first, "ann", "bob", by="lea")
    with project() as session:
        assert claims.holder(session, first, "bob") is not None
        assert drafts.load_draft(session, first, "bob").state == {"spans": [1]}
        assert drafts.load_draft(session, first, "ann") is None
    assert claim(project, "bob") == first
    with project.begin() as session, pytest.raises(NotFoundError, match="no user named 'zed'"):
        claims.reassign(session, first, "bob", "zed", by="lea")
    with project.begin() as session, pytest.raises(StoreError, match="out may not open project p"):
        claims.reassign(session, first, "bob", "out", by="lea")
    with project.begin() as session:  # a lead sees every project
        claims.reassign(session, first, "bob", "lea", by="lea")


def test_reopen_only_by_the_annotator_or_a_lead(project):
    first = claim(project, "ann")
    with project.begin() as session:
        gold.save_annotation(session, first, "ann", [Span("T1", "Problem", 0, 4)], [],
                             expected_version=0)  # fmt: skip
        claims.finish(session, first, "ann")
    with project.begin() as session, pytest.raises(StoreError, match="only ann or a lead"):
        claims.reopen_for(session, first, "ann", by="bob")
    with project.begin() as session:
        claims.reopen_for(session, first, "ann", by="lea")
    with project() as session:
        assert claims.holder(session, first, "ann").purpose == "reopen"
    assert claim(project, "ann") == first  # the reopened note comes back to ann
    with project.begin() as session, pytest.raises(StoreError, match="has this note open"):
        claims.reopen_for(session, first, "ann", by="ann")
    with project.begin() as session, pytest.raises(NotFoundError, match="bob has not submitted"):
        claims.reopen_for(session, first, "bob", by="lea")


def test_a_retired_note_is_neither_offered_nor_held(project):
    ids = rows(project)
    first = claim(project, "ann")
    with project.begin() as session:
        for row in (first, ids["n1"]):
            session.get(models.Document, row).retired_at = models.utcnow()
    with project() as session:
        assert claims.held_note(session, projects.get_project(session, "p"), "ann") is None
    assert claim(project, "ann") not in (first, ids["n1"])


def test_the_lead_sees_every_claim_with_its_lapse_time(project):
    first = claim(project, "ann")
    claim(project, "bob")
    age_claims(project, 40)
    with project() as session:
        listed = claims.claim_rows(session, projects.get_project(session, "p"))
    assert [(c.annotator, c.lapsed) for c in listed][:1] in ([("ann", True)], [("bob", True)])
    assert {c.document_id for c in listed} >= {first}
    assert all(c.lapses_at == c.active_at + timedelta(minutes=30) for c in listed)


def test_the_slot_constraint_refuses_a_second_first_annotator(project):
    first = claim(project, "ann")
    with project.begin() as session:
        now = models.utcnow()
        assert not claims._take(session, first, "bob", claims.FIRST, now - timedelta(hours=1), now)


def test_the_worker_keeps_a_random_share_and_a_claim_remembers_how_it_was_picked(make_session):
    from noteloop.core.model.base import DocumentPrediction
    from noteloop.worker import rank_queue

    with make_session.begin() as session:
        p = projects.create_project(session, "g", LabelSchema((EntityType("Problem"),)),
                                    {"random_share": 0.25})
        docs = [Document(f"n{i}", f"Note {i}: " + "chest pain " * (i + 1)) for i in range(12)]
        documents.add_documents(session, p, docs)
        ids = documents.document_ids(session, p)
    # the model is least sure about n11, then n10, ...: breaking-ties ranks them first
    predictions = [
        (ids[f"n{i}"], DocumentPrediction(f"n{i}", (), (), (i + 1) / 13, (float(i), 1.0)))
        for i in range(12)
    ]
    assert rank_queue(make_session, "g", predictions, None, strategy="breaking-ties") == 12
    with make_session() as session:
        queue = learning.queue(session, projects.get_project(session, "g"))
    picks = [row.details["pick"] for row in queue]
    assert picks == ["strategy", "strategy", "strategy", "random"] * 3  # every 4th place
    assert len({row.document_id for row in queue}) == 12
    assert queue[3].details["reason"].startswith(
        "random pick (25% of the queue, a guard); the strategy saw uncertainty ")
    by_row = {row.document_id: row for row in queue}
    taken = []
    with make_session.begin() as session:
        g = projects.get_project(session, "g")
        accounts.create_user(session, "ann", Role.ANNOTATOR, "", ["g"], by="test")
        for _ in range(4):
            taken.append(claims.claim_next(session, g, "ann"))
            claims.skip(session, taken[-1], "ann", "to see the next one")
    with make_session() as session:
        recorded = list(session.scalars(select(models.QueuePick).order_by(models.QueuePick.id)))
    assert [r.document_id for r in recorded] == taken == [row.document_id for row in queue[:4]]
    assert [r.pick for r in recorded] == ["strategy"] * 3 + ["random"]
    assert all(r.strategy == "breaking-ties" for r in recorded)
    assert recorded[3].rank == by_row[taken[3]].rank == 4
    # the random strategy is random throughout: no share is set apart
    assert rank_queue(make_session, "g", predictions, None, strategy="random") == 12
    with make_session() as session:
        queue = learning.queue(session, projects.get_project(session, "g"))
    assert {row.details["pick"] for row in queue} == {"strategy"}
