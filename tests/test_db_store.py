"""Projects, documents, gold and suggestions through their ``noteloop.db`` modules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import (
    ConflictError,
    InvalidRelationError,
    InvalidSpanError,
    NotFoundError,
    SchemaError,
)
from noteloop.core.schema import (
    AnnotationStatus,
    AttributeType,
    Document,
    EntityType,
    Equivalence,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    SpanSource,
    Split,
    Suggestion,
)
from noteloop.db import documents, gold, model_versions, models, projects, serving, suggestions
from noteloop.db.errors import DuplicateError, StoreError

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Dose"), EntityType("Problem")),
    (
        RelationType("has_dose", heads=("Drug",), tails=("Dose",)),
        RelationType("same_as", symmetric=True),
    ),
    (AttributeType("Negated"), AttributeType("Certainty", ("high", "low"))),
)
TEXT = "Aspirin 100 mg daily for headache; no fever.\r\nAspirin again."
#       0123456789012345678901234567890123456789012345 6 78901234567890


def spans() -> list[Span]:
    return [
        Span("T1", "Drug", 0, 7, attributes=(("Certainty", "high"),), notes=("brand?",)),
        Span("T2", "Dose", 8, 14, source=SpanSource.EDITED, concept="UCUM:mg"),
        # discontinuous: "Aspirin ... daily"
        Span("T3", "Drug", 0, 20, fragments=((0, 7), (15, 20))),
        Span("T4", "Problem", 38, 43, attributes=(("Negated", "true"),)),
        Span("T5", "Drug", 46, 53),
    ]


def relations() -> list[Relation]:
    return [Relation("R1", "has_dose", "T1", "T2", notes=("checked",))]


def equivalences() -> list[Equivalence]:
    return [Equivalence("same_as", ("T1", "T5"))]


@pytest.fixture
def doc_id(session: Session) -> int:
    project = projects.create_project(session, "p", SCHEMA)
    doc = Document("n1", TEXT, metadata={"ward": "3"})
    result = documents.add_documents(session, project, [doc])
    session.commit()
    return result.added[0]


def count(session: Session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- projects


def test_projects_are_created_listed_and_found(session: Session) -> None:
    projects.create_project(session, "b", SCHEMA, {"train_every": 3})
    projects.create_project(session, "a", LabelSchema())
    assert [p.name for p in projects.list_projects(session)] == ["a", "b"]
    project = projects.get_project(session, "b")
    assert projects.project_schema(project) == SCHEMA
    assert project.settings["train_every"] == 3
    assert projects.get_project(session, "a").settings["train_every"] == 5


def test_a_missing_project_lists_the_existing_ones(session: Session) -> None:
    with pytest.raises(NotFoundError, match="there are no projects yet"):
        projects.get_project(session, "x")
    projects.create_project(session, "alpha", SCHEMA)
    with pytest.raises(NotFoundError, match="no project named 'x' \\(existing projects: alpha\\)"):
        projects.get_project(session, "x")


def test_project_names_are_unique(session: Session) -> None:
    projects.create_project(session, "p", SCHEMA)
    with pytest.raises(DuplicateError, match="a project named 'p' exists already"):
        projects.create_project(session, "p", SCHEMA)


def test_schema_and_settings_changes_are_audited(session: Session) -> None:
    project = projects.create_project(session, "p", LabelSchema())
    projects.set_project_schema(session, project, SCHEMA, user="lead")
    settings = projects.update_project_settings(session, project, {"train_every": 10}, user="lead")
    session.commit()
    assert settings["train_every"] == 10
    assert projects.project_schema(projects.get_project(session, "p")) == SCHEMA
    rows = session.scalars(select(models.AuditLog).order_by(models.AuditLog.id)).all()
    assert [(r.user, r.action, r.entity) for r in rows] == [
        ("lead", "set_schema", "projects"),
        ("lead", "update_settings", "projects"),
    ]
    assert rows[0].before == LabelSchema().to_dict() and rows[0].after == SCHEMA.to_dict()
    with pytest.raises(StoreError, match="train_every must be a whole number >= 1"):
        projects.update_project_settings(session, project, {"train_every": 0}, user="lead")


# --------------------------------------------------------------------------- documents


def test_documents_are_added_and_duplicates_reported(session: Session) -> None:
    project = projects.create_project(session, "p", SCHEMA)
    first = documents.add_documents(session, project, [Document("a", "one"), Document("b", "two")])
    assert first.duplicates == [] and len(first.added) == 2
    again = documents.add_documents(
        session,
        project,
        [Document("a", "new text"), Document("c", "two"), Document("d", "x"), Document("e", "x")],
        split=Split.TEST,
    )
    assert again.duplicates == [
        ("a", "a document with id a exists already"),
        ("c", "same text as document b"),
        ("e", "same text as document d"),
    ]
    assert len(again.added) == 1
    assert [d.id for d in documents.documents(session, project)] == ["a", "b", "d"]
    assert [d.id for d in documents.documents(session, project, Split.TEST)] == ["d"]
    pool_ids = documents.document_ids(session, project, Split.POOL)
    assert pool_ids == dict(zip("ab", first.added, strict=True))


def test_stored_text_is_exact(session: Session, doc_id: int) -> None:
    row = documents.get_document(session, doc_id)
    assert row.text == TEXT and row.n_chars == len(TEXT) and "\r\n" in row.text
    assert row.meta == {"ward": "3"}
    with pytest.raises(NotFoundError, match="no document with row id 999"):
        documents.get_document(session, 999)


# --------------------------------------------------------------------------- gold


def test_save_and_load_round_trip(session: Session, doc_id: int) -> None:
    version = gold.save_annotation(
        session,
        doc_id,
        "alice",
        spans(),
        relations(),
        equivalences(),
        expected_version=0,
        seconds_spent=30.0,
    )
    session.commit()
    assert version == 1
    loaded = gold.load_annotation(session, doc_id, "alice")
    assert loaded.version == 1 and loaded.status is AnnotationStatus.SUBMITTED
    assert loaded.seconds_spent == 30.0 and loaded.saved_by == "alice"
    assert loaded.saved_at is not None and loaded.saved_at.tzinfo is not None
    doc = loaded.document
    assert doc.spans == tuple(spans())  # ids, fragments, attributes, notes, source, concept
    assert doc.relations == tuple(relations())
    assert doc.equivalences == tuple(equivalences())
    assert doc.text == TEXT and doc.id == "n1" and dict(doc.metadata) == {"ward": "3"}


def test_no_annotation_loads_as_version_0(session: Session, doc_id: int) -> None:
    loaded = gold.load_annotation(session, doc_id, "alice")
    assert (loaded.version, loaded.status, loaded.document.spans) == (0, None, ())
    assert loaded.document.text == TEXT


def test_saving_again_replaces_the_gold_and_adds_time(session: Session, doc_id: int) -> None:
    gold.save_annotation(
        session,
        doc_id,
        "alice",
        spans(),
        relations(),
        expected_version=0,
        seconds_spent=10,
        status=AnnotationStatus.IN_PROGRESS,
    )
    session.commit()
    version = gold.save_annotation(
        session, doc_id, "alice", spans()[3:], [], expected_version=1, seconds_spent=5
    )
    session.commit()
    loaded = gold.load_annotation(session, doc_id, "alice")
    assert version == 2 and loaded.version == 2
    assert [s.id for s in loaded.document.spans] == ["T4", "T5"]
    assert loaded.document.relations == ()
    assert loaded.seconds_spent == 15 and loaded.status is AnnotationStatus.SUBMITTED
    assert count(session, models.Span) == 2 and count(session, models.Relation) == 0


def test_a_stale_version_is_refused_and_names_who_saved(session: Session, doc_id: int) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=0)
    session.commit()
    # the lead corrects alice's annotation while alice still has version 1 open
    gold.save_annotation(
        session, doc_id, "alice", spans()[:1], [], expected_version=1, saved_by="lena"
    )
    session.commit()
    with pytest.raises(
        ConflictError,
        match=r"lena saved alice's annotation at .* \(now version "
        r"2, you loaded version 1\); nothing was saved",
    ) as caught:
        gold.save_annotation(session, doc_id, "alice", [], [], expected_version=1)
    session.rollback()
    assert (caught.value.saved_by, caught.value.current_version) == ("lena", 2)
    assert caught.value.saved_at.startswith("20")
    loaded = gold.load_annotation(session, doc_id, "alice")
    assert loaded.version == 2 and [s.id for s in loaded.document.spans] == ["T1"]


def test_a_second_first_save_conflicts(session: Session, doc_id: int) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=0)
    session.commit()
    with pytest.raises(ConflictError, match="now version 1, you loaded version 0") as caught:
        gold.save_annotation(session, doc_id, "alice", [], [], expected_version=0)
    assert caught.value.saved_by == "alice"


def test_two_annotators_have_separate_annotations(session: Session, doc_id: int) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=0)
    gold.save_annotation(session, doc_id, "bob", spans()[:2], [], expected_version=0)
    session.commit()
    assert len(gold.load_annotation(session, doc_id, "alice").document.spans) == 5
    assert len(gold.load_annotation(session, doc_id, "bob").document.spans) == 2


@pytest.mark.parametrize(
    ("bad_spans", "bad_relations", "error", "message"),
    [
        ([Span("T1", "Drug", 50, 90)], [], InvalidSpanError, "ends at 90, beyond the text"),
        (
            [Span("T1", "Symptom", 0, 7)],
            [],
            SchemaError,
            "entity type 'Symptom' is not in the schema",
        ),
        (
            [Span("T1", "Drug", 0, 7, attributes=(("Certainty", "maybe"),))],
            [],
            SchemaError,
            "attribute Certainty does not accept value 'maybe'",
        ),
        (
            spans(),
            [Relation("R1", "has_dose", "T2", "T1")],
            SchemaError,
            "has_dose is not allowed from Dose to Drug",
        ),
        (
            spans(),
            [Relation("R1", "has_dose", "T1", "T9")],
            InvalidRelationError,
            "relation R1 tail T9 is not a span",
        ),
        (
            [Span("T1", "Drug", 0, 7, suggestion_id=77)],
            [],
            InvalidSpanError,
            r"suggestion id\(s\) \[77\] are not suggestions for this document",
        ),
    ],
)
def test_invalid_gold_writes_nothing(
    session: Session, doc_id: int, bad_spans, bad_relations, error, message
) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), relations(), expected_version=0)
    session.commit()
    with pytest.raises(error, match=message):
        gold.save_annotation(session, doc_id, "alice", bad_spans, bad_relations, expected_version=1)
    session.rollback()
    with pytest.raises(error, match=message):
        gold.save_annotation(session, doc_id, "bob", bad_spans, bad_relations, expected_version=0)
    session.commit()  # even a commit after the error keeps nothing of it
    assert gold.load_annotation(session, doc_id, "alice").version == 1
    assert count(session, models.Annotation) == 1
    assert count(session, models.Span) == 5
    assert count(session, models.AuditLog) == 1


def test_each_save_writes_an_audit_row(session: Session, doc_id: int) -> None:
    gold.save_annotation(session, doc_id, "alice", spans()[:2], relations(), expected_version=0)
    gold.save_annotation(
        session,
        doc_id,
        "alice",
        spans()[:1],
        [],
        expected_version=1,
        saved_by="lena",
        status=AnnotationStatus.IN_PROGRESS,
    )
    session.commit()
    rows = session.scalars(select(models.AuditLog).order_by(models.AuditLog.id)).all()
    assert [(r.user, r.action, r.entity, r.entity_id) for r in rows] == [
        ("alice", "save_annotation", "annotations", 1),
        ("lena", "save_annotation", "annotations", 1),
    ]
    assert rows[0].before is None
    assert rows[0].after == {
        "version": 1,
        "status": "submitted",
        "spans": [
            ["T1", "Drug", 0, 7, {"attributes": [["Certainty", "high"]], "notes": ["brand?"]}],
            ["T2", "Dose", 8, 14, {"concept": "UCUM:mg", "source": "edited"}],
        ],
        "relations": [["R1", "has_dose", "T1", "T2", ["checked"]]],
        "equivalences": [],
    }
    assert rows[1].before == rows[0].after
    assert rows[1].after["status"] == "in_progress" and len(rows[1].after["spans"]) == 1


def test_gold_documents_pick_submitted_and_latest(session: Session, doc_id: int) -> None:
    project = projects.get_project(session, "p")
    other = documents.add_documents(session, project, [Document("n2", "Aspirin.")], Split.TEST)
    gold.save_annotation(session, doc_id, "alice", spans()[:1], [], expected_version=0)
    gold.save_annotation(session, doc_id, "bob", spans()[:2], [], expected_version=0)
    gold.save_annotation(
        session,
        other.added[0],
        "alice",
        [Span("T1", "Drug", 0, 7)],
        [],
        expected_version=0,
        status=AnnotationStatus.IN_PROGRESS,
    )
    session.commit()
    latest = gold.gold_documents(session, project)
    assert [(d.id, len(d.spans)) for d in latest] == [("n1", 2)]  # bob submitted last
    assert [len(d.spans) for d in gold.gold_documents(session, project, annotator="alice")] == [1]
    everything = gold.gold_documents(session, project, submitted_only=False)
    assert [d.id for d in everything] == ["n1", "n2"]
    test_only = gold.gold_documents(session, project, split=Split.TEST, submitted_only=False)
    assert [d.id for d in test_only] == ["n2"]


# --------------------------------------------------------------------------- suggestions


def _suggestions() -> list[Suggestion]:
    return [
        Suggestion(Span("S1", "Drug", 0, 7), 0.9),
        Suggestion(Span("S2", "Dose", 8, 14, attributes=(("Certainty", "low"),)), 0.4),
        Suggestion(Relation("SR1", "has_dose", "S1", "S2"), 0.7),
    ]


def test_suggestions_round_trip_apart_from_gold(session: Session, doc_id: int) -> None:
    project = projects.get_project(session, "p")
    version = model_versions.register_model_version(
        session, project, name="m1", backend="encoder", path="/models/m1", metrics={"f1": 0.5}
    )
    assert suggestions.add_suggestions(session, doc_id, version.id, _suggestions()) == 3
    session.commit()
    got = suggestions.suggestions_for(session, doc_id)
    assert [(s.item.id, s.score) for s in got] == [("S1", 0.9), ("S2", 0.4), ("SR1", 0.7)]
    assert got[1].item == Span(
        "S2",
        "Dose",
        8,
        14,
        attributes=(("Certainty", "low"),),
        suggestion_id=got[1].item.suggestion_id,
    )
    assert got[2].item == Relation("SR1", "has_dose", "S1", "S2")
    assert count(session, models.Span) == 0  # suggestions are not gold
    # an annotator accepts S1: the gold span points back at it
    accepted = Span(
        "T1", "Drug", 0, 7, source=SpanSource.ACCEPTED, suggestion_id=got[0].item.suggestion_id
    )
    gold.save_annotation(session, doc_id, "alice", [accepted], [], expected_version=0)
    suggestions.record_decisions(session, "alice", {got[0].item.suggestion_id: "accepted"})
    session.commit()
    assert gold.load_annotation(session, doc_id, "alice").document.spans == (accepted,)
    assert [s.item.id for s in suggestions.suggestions_for(session, doc_id, open_for="alice")] == [
        "S2",
        "SR1",
    ]
    assert len(suggestions.suggestions_for(session, doc_id, open_for="bob")) == 3  # alice's alone


def test_a_note_shows_the_serving_versions_suggestions(session: Session, doc_id: int) -> None:
    project = projects.get_project(session, "p")
    assert serving.serving_version(session, project) is None
    assert suggestions.suggestions_for(session, doc_id) == []
    old = model_versions.register_model_version(session, project, name="m1", backend="b", path="/1")
    new = model_versions.register_model_version(session, project, name="m2", backend="b", path="/2")
    pending = model_versions.register_model_version(
        session, project, name="m3", backend="b", path="/3", status="pending"
    )
    suggestions.add_suggestions(session, doc_id, old.id, _suggestions()[:1])
    assert [s.score for s in suggestions.suggestions_for(session, doc_id)] == [0.9]  # m2 has none
    suggestions.add_suggestions(
        session, doc_id, new.id, [Suggestion(Span("S1", "Drug", 0, 7), 0.2)]
    )
    suggestions.add_suggestions(
        session, doc_id, pending.id, [Suggestion(Span("S1", "Drug", 0, 7), 1)]
    )
    # Nothing serves: the newest ready batch (a pending version's never shows).
    assert [s.score for s in suggestions.suggestions_for(session, doc_id)] == [0.2]
    serving.use_version(session, project, "m1", "lea", "rolled back")
    assert serving.serving_version(session, project) is old
    assert [s.score for s in suggestions.suggestions_for(session, doc_id)] == [0.9]  # m1 serves
    serving.use_version(session, project, "m2", "lea", "")
    assert serving.serving_version(session, project) is new
    assert [s.score for s in suggestions.suggestions_for(session, doc_id)] == [0.2]
    assert [s.score for s in suggestions.suggestions_for(session, doc_id, old.id)] == [0.9]


def test_bad_suggestion_batches_are_refused(session: Session, doc_id: int) -> None:
    project = projects.get_project(session, "p")
    version = model_versions.register_model_version(
        session, project, name="m1", backend="b", path="/1"
    )
    with pytest.raises(InvalidRelationError, match="relation SR1 tail S2 is not a span"):
        suggestions.add_suggestions(
            session, doc_id, version.id, [_suggestions()[0], _suggestions()[2]]
        )
    with pytest.raises(InvalidSpanError, match="beyond the text"):
        suggestions.add_suggestions(
            session, doc_id, version.id, [Suggestion(Span("S1", "Drug", 0, 500), 0.5)]
        )
    with pytest.raises(NotFoundError, match="no model version with id 99"):
        suggestions.add_suggestions(session, doc_id, 99, _suggestions())
    suggestions.add_suggestions(session, doc_id, version.id, _suggestions())
    with pytest.raises(DuplicateError, match="m1 has suggestions for document n1 already"):
        suggestions.add_suggestions(session, doc_id, version.id, _suggestions())
    with pytest.raises(DuplicateError, match="model version named 'm1' already"):
        model_versions.register_model_version(session, project, name="m1", backend="b", path="/1")
    elsewhere = projects.create_project(session, "q", SCHEMA)
    foreign = model_versions.register_model_version(
        session, elsewhere, name="m1", backend="b", path="/"
    )
    with pytest.raises(StoreError, match="belongs to another project"):
        suggestions.add_suggestions(session, doc_id, foreign.id, _suggestions())


# --------------------------------------------------------------------------- statistics


def test_project_stats(session: Session, doc_id: int) -> None:
    project = projects.get_project(session, "p")
    documents.add_documents(
        session, project, [Document("n2", "Aspirin."), Document("n3", "x")], Split.TEST
    )
    gold.save_annotation(
        session, doc_id, "alice", spans(), relations(), expected_version=0, seconds_spent=1800
    )
    gold.save_annotation(
        session,
        doc_id,
        "bob",
        spans()[:1],
        [],
        expected_version=0,
        seconds_spent=1800,
        status=AnnotationStatus.IN_PROGRESS,
    )
    session.commit()
    assert projects.project_stats(session, project) == {
        "documents": {"pool": 1, "test": 2},
        "annotated": 1,
        "submitted": 1,
        "spans_by_label": {"Drug": 3, "Dose": 1, "Problem": 1},
        "relations_by_label": {"has_dose": 1},
        "annotators": {"alice": 1, "bob": 0},
        "hours": 1.0,
    }


def test_sessions_from_the_factory_commit_and_read_back(make_session: sessionmaker) -> None:
    with make_session.begin() as session:
        projects.create_project(session, "p", SCHEMA)
    with make_session() as session:
        assert projects.get_project(session, "p").name == "p"


# --------------------------------------------------------------------------- the atomic guards


def _stale_reads(monkeypatch, first_answer) -> None:
    """Make the first read of the annotation in a save return ``first_answer(real_row)``,
    as a read in a transaction that began before another process saved would."""
    real = gold._find_annotation
    calls: list[int] = []

    def find(session, document_id, annotator):
        row = real(session, document_id, annotator)
        calls.append(1)
        return first_answer(row) if len(calls) == 1 else row

    monkeypatch.setattr(gold, "_find_annotation", find)


def test_the_version_update_refuses_what_the_read_missed(
    session: Session, doc_id: int, monkeypatch
) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=0)
    gold.save_annotation(session, doc_id, "alice", [], [], expected_version=1, saved_by="lena")
    session.commit()

    class Stale:  # what a stale snapshot would show: version 1
        def __init__(self, row):
            self.id, self.version, self.status, self.annotator = row.id, 1, row.status, "alice"

    _stale_reads(monkeypatch, Stale)
    with pytest.raises(ConflictError, match=r"lena saved alice's annotation at .* \(now version 2"):
        gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=1)
    session.rollback()
    assert gold.load_annotation(session, doc_id, "alice").document.spans == ()


def test_the_unique_constraint_refuses_a_second_first_save(
    session: Session, doc_id: int, monkeypatch
) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), [], expected_version=0)
    session.commit()
    _stale_reads(monkeypatch, lambda row: None)  # "no annotation yet"
    message = r"alice saved alice's annotation at .* \(now version 1"
    with pytest.raises(ConflictError, match=message):
        gold.save_annotation(session, doc_id, "alice", [], [], expected_version=0)
    session.rollback()
    assert len(gold.load_annotation(session, doc_id, "alice").document.spans) == 5


def test_unchanged_spans_keep_their_rows_and_reordering_rewrites(
    session: Session, doc_id: int
) -> None:
    gold.save_annotation(session, doc_id, "alice", spans(), relations(), expected_version=0)
    session.commit()
    ids = dict(session.execute(select(models.Span.key, models.Span.id)).all())
    edited = [*spans()[:1], Span("T2", "Dose", 8, 13), *spans()[2:], Span("T6", "Drug", 46, 53)]
    gold.save_annotation(session, doc_id, "alice", edited, relations(), expected_version=1)
    session.commit()
    after = dict(session.execute(select(models.Span.key, models.Span.id)).all())
    assert {k: after[k] for k in ids} == ids  # kept and updated in place
    loaded = gold.load_annotation(session, doc_id, "alice").document
    assert loaded.spans == tuple(edited) and loaded.relations == tuple(relations())
    reordered = list(reversed(edited))
    gold.save_annotation(session, doc_id, "alice", reordered, [], expected_version=2)
    session.commit()
    assert gold.load_annotation(session, doc_id, "alice").document.spans == tuple(reordered)
