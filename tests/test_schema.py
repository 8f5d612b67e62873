"""The vocabulary refuses bad values when built, with messages that name field and value."""

from __future__ import annotations

import pytest

from noteloop.core.errors import (
    InvalidDocumentError,
    InvalidRelationError,
    InvalidSpanError,
    SchemaError,
)
from noteloop.core.schema import (
    AttributeType,
    Document,
    EntityType,
    Equivalence,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    Suggestion,
    schema_from_documents,
)

SCHEMA = LabelSchema(
    (EntityType("Drug", "#f28e2b", "d"), EntityType("Problem", "#e15759", "p")),
    (RelationType("treats", heads=("Drug",), tails=("Problem",)),),
    (AttributeType("negated"), AttributeType("Polarity", ("NEG", "POS"))),
)
TEXT = "aspirin for headache"


def doc(spans=(), relations=(), equivalences=()):
    return Document("n1", TEXT, tuple(spans), tuple(relations), tuple(equivalences))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": -1, "end": 3}, "start must be >= 0, got -1"),
        ({"start": 5, "end": 5}, "start must be less than end, got 5 >= 5"),
        ({"start": 0, "end": 7, "fragments": ((0, 3), (2, 7))}, "must not overlap"),
        ({"start": 0, "end": 7, "fragments": ((1, 3), (4, 7))}, "must begin at start 0"),
        ({"start": 0, "end": 7, "label": "two words"}, "entity type name 'two words' is not valid"),
        ({"start": 0, "end": 7, "id": ""}, "span id '' must be non-empty"),
    ],
)
def test_span_refuses_bad_values(kwargs, match):
    args = {"id": "T1", "label": "Drug", **kwargs}
    with pytest.raises(InvalidSpanError if "label" not in kwargs else SchemaError, match=match):
        Span(**args)


def test_document_refuses_span_beyond_text_and_dangling_relation():
    with pytest.raises(
        InvalidSpanError, match="span T1 ends at 99, beyond the text \\(length 20\\)"
    ):
        doc([Span("T1", "Drug", 0, 99)])
    with pytest.raises(InvalidRelationError, match="relation R1 tail T9 is not a span"):
        doc([Span("T1", "Drug", 0, 7)], [Relation("R1", "treats", "T1", "T9")])
    with pytest.raises(InvalidSpanError, match="duplicate span id T1"):
        doc([Span("T1", "Drug", 0, 7), Span("T1", "Drug", 12, 20)])
    with pytest.raises(InvalidDocumentError, match="NUL"):
        Document("x", "a\x00b")
    with pytest.raises(InvalidRelationError, match="at least two spans"):
        Equivalence("OVERLAP", ("T1",))


def test_schema_reports_each_problem_with_its_item():
    spans = [
        Span("T1", "Drug", 0, 7, attributes=(("Polarity", "MAYBE"),)),
        Span("T2", "Problem", 12, 20),
        Span("T3", "Gene", 8, 11),
    ]
    rels = [Relation("R1", "treats", "T2", "T1"), Relation("R2", "causes", "T1", "T2")]
    problems = SCHEMA.problems(doc(spans, rels))
    assert problems == [
        ("T1", "span T1: attribute Polarity does not accept value 'MAYBE'"),
        ("T3", "span T3: entity type 'Gene' is not in the schema"),
        ("R1", "relation R1: treats is not allowed from Problem to Drug"),
        ("R2", "relation R2: relation type 'causes' is not in the schema"),
    ]


def test_schema_refuses_contradictions():
    with pytest.raises(SchemaError, match="hotkey\\(s\\) used by more than one entity type: d"):
        LabelSchema((EntityType("Drug", hotkey="d"), EntityType("Dose", hotkey="D")))
    with pytest.raises(
        SchemaError, match="relation type treats names unknown entity type\\(s\\): Gene"
    ):
        LabelSchema((EntityType("Drug"),), (RelationType("treats", heads=("Gene",)),))
    with pytest.raises(SchemaError, match="color must look like #a1b2c3"):
        EntityType("Drug", color="red")
    with pytest.raises(SchemaError, match="unknown schema key\\(s\\): entities"):
        LabelSchema.from_dict({"entities": []})


def test_schema_round_trips_through_a_dict_and_extends_to_fit_documents():
    assert LabelSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    spans = [Span("T1", "Problem", 0, 7), Span("T2", "Gene", 12, 20)]
    wider = SCHEMA.extended_with([doc(spans, [Relation("R1", "treats", "T1", "T2")])])
    assert wider.entity_names == ["Drug", "Problem", "Gene"]
    assert wider.relation("treats").heads == ("Drug", "Problem")
    assert wider.problems(doc(spans, [Relation("R1", "treats", "T1", "T2")])) == []
    assert schema_from_documents([doc(spans)]).entity_names == ["Problem", "Gene"]


def test_annotation_set_ignores_ids_and_order_but_not_content():
    a = doc(
        [Span("T1", "Drug", 0, 7), Span("T2", "Problem", 12, 20)],
        [Relation("R1", "treats", "T1", "T2")],
    )
    b = doc(
        [Span("X", "Problem", 12, 20), Span("Y", "Drug", 0, 7)], [Relation("Z", "treats", "Y", "X")]
    )
    c = doc(
        [Span("X", "Problem", 12, 20), Span("Y", "Drug", 0, 7)], [Relation("Z", "treats", "X", "Y")]
    )
    assert a.annotation_set() == b.annotation_set()
    assert a.annotation_set() != c.annotation_set()  # direction matters


def test_suggestion_score_must_be_a_probability():
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\], got 1.5"):
        Suggestion(Span("T1", "Drug", 0, 7), 1.5)


