"""Editing a label schema one type at a time, and the gold a new schema would orphan."""

from __future__ import annotations

import pytest

from noteloop.core import schema_edit as edit
from noteloop.core.errors import SchemaError
from noteloop.core.schema import AttributeType, EntityType, LabelSchema, RelationType

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema.from_dict(
    {
        "entity_types": [
            {"name": "Drug", "hotkey": "d"},
            {"name": "Problem", "hotkey": "p"},
            {"name": "Dosage"},
        ],
        "relation_types": [
            {"name": "treats", "heads": ["Drug"], "tails": ["Problem"]},
            {"name": "has_dosage", "heads": ["Drug", "Problem"], "tails": ["Dosage"]},
        ],
        "attributes": [{"name": "negated"}, {"name": "certainty", "values": ["low", "high"]}],
    }
)


def test_a_rename_keeps_the_place_and_follows_into_relation_arguments():
    renamed = edit.put_entity(SCHEMA, EntityType("Medication", hotkey="m"), replacing="Drug")
    assert renamed.entity_names == ["Medication", "Problem", "Dosage"]
    assert renamed.relation("treats").heads == ("Medication",)
    assert renamed.relation("has_dosage").heads == ("Medication", "Problem")


def test_additions_are_checked_by_the_schema_itself():
    added = edit.put_entity(SCHEMA, EntityType("Test", hotkey="t"))
    assert added.entity_names[-1] == "Test"
    with pytest.raises(SchemaError, match="hotkey\\(s\\) used by more than one entity type: d"):
        edit.put_entity(SCHEMA, EntityType("Device", hotkey="d"))
    with pytest.raises(SchemaError, match="duplicate entity type name\\(s\\): Problem"):
        edit.put_entity(SCHEMA, EntityType("Problem"))
    with pytest.raises(SchemaError, match="names unknown entity type\\(s\\): Device"):
        edit.put_relation(SCHEMA, RelationType("uses", heads=("Device",)))
    with pytest.raises(SchemaError, match="entity type 'Nothing' is not in the schema"):
        edit.put_entity(SCHEMA, EntityType("X"), replacing="Nothing")


def test_removing_an_entity_type_narrows_relations_but_never_widens_them():
    without_treats = edit.remove_relation(SCHEMA, "treats")
    narrower = edit.remove_entity(without_treats, "Problem")
    assert narrower.relation("has_dosage").heads == ("Drug",)
    # has_dosage allows only Dosage as tail: without it, "any type" would be allowed there.
    with pytest.raises(
        SchemaError, match="Dosage is the only allowed tail of relation type has_dosage"
    ):
        edit.remove_entity(SCHEMA, "Dosage")


def test_attributes_and_relations_are_put_and_removed():
    schema = edit.put_attribute(SCHEMA, AttributeType("certainty", ("low",)), "certainty")
    assert [a.values for a in schema.attributes] == [(), ("low",)]
    assert [a.name for a in edit.remove_attribute(SCHEMA, "negated").attributes] == ["certainty"]
    assert edit.remove_relation(SCHEMA, "treats").relation_names == ["has_dosage"]
    with pytest.raises(SchemaError, match="attribute 'nope' is not in the schema"):
        edit.remove_attribute(SCHEMA, "nope")


def test_usage_conflicts_count_what_the_gold_would_lose():
    usage = edit.LabelUsage(
        spans={"Drug": (12, 4), "Problem": (7, 3)},
        relations={("treats", "Drug", "Problem"): 5, ("has_dosage", "Problem", "Dosage"): 2},
        attributes={("negated", "true"): 3, ("certainty", "high"): 1},
    )
    assert edit.usage_conflicts(SCHEMA, usage) == []
    schema = LabelSchema.from_dict(
        {
            "entity_types": ["Problem", "Dosage"],
            "relation_types": [{"name": "has_dosage", "heads": ["Dosage"]}],
            "attributes": [{"name": "certainty", "values": ["low"]}],
        }
    )
    assert edit.usage_conflicts(schema, usage) == [
        "entity type Drug is used by 12 gold span(s) in 4 note(s)",
        "relation type treats is used by 5 gold relation(s)",
        "2 gold has_dosage relation(s) go from Problem to Dosage, no longer allowed",
        "attribute negated is set on 3 gold span(s)",
        "1 gold span(s) have certainty=high, a value it no longer accepts",
    ]


def test_parse_names():
    assert edit.parse_names(" low, high ,,") == ("low", "high")
