"""CoNLL says what BIO lost; instruction examples are exact and deterministic."""

from __future__ import annotations

import json

from noteloop.core.formats.conll import (
    ConllReport,
    read_conll,
    sentence_breaks,
    tokenize,
    write_conll,
)
from noteloop.core.formats.instruct import (
    ce_example,
    re_example,
    relation_input,
    write_instruct,
)
from noteloop.core.schema import Document, EntityType, LabelSchema, Relation, RelationType, Span

# --------------------------------------------------------------------------- CoNLL

TEXT = "Left arm pain. No feve r\nBP 120/80 mmHg."


def tricky_doc() -> Document:
    spans = (
        Span("s1", "Sign", 0, 13),  # "Left arm pain": the longest, kept
        Span("s2", "Body", 5, 8),  # "arm": nested in s1, dropped
        Span("s3", "Test", 25, 39, fragments=((25, 27), (35, 39))),  # "BP ... mmHg": split
        Span("s4", "Value", 28, 34),  # "120/80": inside s3's gap, kept
        Span("s5", "Sign", 18, 21),  # "fev": widened to the token "feve"
        Span("s6", "Neg", 15, 17),  # "No" twice, same length and start:
        Span("s7", "Cue", 15, 17),  # ... the label decides, Cue before Neg
        Span("s8", "Gap", 14, 15),  # a space only: no token
    )
    return Document("d1", TEXT, spans)


def test_nested_and_discontinuous_spans_get_the_documented_tags(tmp_path):
    path = tmp_path / "out.conll"
    report = write_conll([tricky_doc()], path)
    assert path.read_text(encoding="utf-8") == (
        "# doc_id = d1\n"
        "Left\t0\t4\tB-Sign\n"
        "arm\t5\t8\tI-Sign\n"
        "pain\t9\t13\tI-Sign\n"
        ".\t13\t14\tO\n"
        "\n"
        "No\t15\t17\tB-Cue\n"
        "feve\t18\t22\tB-Sign\n"
        "r\t23\t24\tO\n"
        "\n"
        "BP\t25\t27\tB-Test\n"
        "120\t28\t31\tB-Value\n"
        "/\t31\t32\tI-Value\n"
        "80\t32\t34\tI-Value\n"
        "mmHg\t35\t39\tB-Test\n"
        ".\t39\t40\tO\n"
        "\n"
    )
    assert report == ConllReport(
        documents=1,
        tokens=13,
        spans_written=5,
        spans_dropped_overlap=2,
        spans_dropped_no_token=1,
        discontinuous_split=1,
        spans_widened=1,
    )
    assert read_conll(path) == [
        ("d1", [(0, 13, "Sign"), (15, 17, "Cue"), (18, 22, "Sign"), (25, 27, "Test"),
                (28, 34, "Value"), (35, 39, "Test")]),
    ]  # fmt: skip


def test_aligned_contiguous_spans_round_trip_exactly(tmp_path):
    text = "Ärztin gab 5 mg Aspirin.\r\nKein Fieber!"
    spans = [(0, 6, "Person"), (11, 15, "Dose"), (16, 23, "Drug"), (31, 37, "Sign")]
    docs = [
        Document("a", text, tuple(Span(f"T{i}", lab, s, e) for i, (s, e, lab) in enumerate(spans))),
        Document("b", "nothing here"),
    ]
    report = write_conll(docs, tmp_path / "out.conll")
    assert read_conll(tmp_path / "out.conll") == [("a", spans), ("b", [])]
    assert (report.documents, report.spans_written, report.spans_widened) == (2, 4, 0)


def test_tokens_and_sentences():
    text = "Dr. smith saw e.g. 5 cases. Then 3.5 mg!Next\nend"
    tokens = tokenize(text)
    words = [text[a:b] for a, b in tokens]
    assert words[:8] == ["Dr", ".", "smith", "saw", "e", ".", "g", "."]
    firsts = [words[i] for i in sorted(sentence_breaks(text, tokens))]
    # not before "smith" (lower case) nor "Next" (no space); before "5" (a digit) it does
    assert firsts == ["5", "Then", "end"]


# --------------------------------------------------------------------------- instructions

SCHEMA = LabelSchema(
    (EntityType("Drug", description="a medication"), EntityType("Problem")),
    (RelationType("treats", ("Drug",), ("Problem",), description="the drug is given for it"),),
)
NOTE = "Aspirin for headache; aspirin again."


def note() -> Document:
    spans = (
        Span("x9", "Drug", 22, 29),
        Span("x1", "Drug", 0, 7),
        Span("x2", "Problem", 12, 20),
        Span("x3", "Gene", 30, 35),  # not in the schema: left out
    )
    rels = (
        Relation("r1", "treats", "x1", "x2"),
        Relation("r2", "treats", "x9", "x2"),
        Relation("r3", "other", "x1", "x2"),  # not in the schema: left out
    )
    return Document("n1", NOTE, spans, rels)


ENTITY_INSTRUCTION = (
    "Extract every mention of the following entity types from the clinical note.\n"
    "Entity types:\n"
    "- Drug: a medication\n"
    "- Problem\n"
    'Answer with a JSON list of {"text": mention as written, "type": entity type} objects in '
    "the order the mentions appear in the note, repeating a mention each time it occurs. "
    "Answer [] if there is none."
)
RELATION_INSTRUCTION = (
    "The clinical note is followed by a numbered list of its entities. List every relation "
    "between two of these entities.\n"
    "Relation types (head -> tail):\n"
    "- treats (Drug -> Problem): the drug is given for it\n"
    'Answer with a JSON list of {"head": entity number, "type": relation type, "tail": entity '
    'number} objects, such as {"head": "T1", "type": "...", "tail": "T2"}. Answer [] if there '
    "is none."
)


def test_concept_extraction_example_is_exact():
    assert ce_example(note(), SCHEMA) == {
        "id": "n1",
        "task": "concept_extraction",
        "instruction": ENTITY_INSTRUCTION,
        "input": NOTE,
        "output": '[{"text": "Aspirin", "type": "Drug"}, {"text": "headache", "type": "Problem"}, '
        '{"text": "aspirin", "type": "Drug"}]',
    }


def test_relation_extraction_example_is_exact():
    assert re_example(note(), SCHEMA) == {
        "id": "n1",
        "task": "relation_extraction",
        "instruction": RELATION_INSTRUCTION,
        "input": NOTE + '\n\nEntities:\n[T1] Drug: "Aspirin"\n[T2] Problem: "headache"\n'
        '[T3] Drug: "aspirin"',
        "output": '[{"head": "T1", "type": "treats", "tail": "T2"}, '
        '{"head": "T3", "type": "treats", "tail": "T2"}]',
    }


def test_relation_input_numbers_spans_for_the_backend():
    text, numbers = relation_input('say "hi"\n', [Span("a", "Quote", 4, 8)])
    assert text == 'say "hi"\n\n\nEntities:\n[T1] Quote: "\\"hi\\""'
    assert numbers == {"a": "T1"}


def test_write_instruct_emits_both_tasks_only_with_relation_types(tmp_path):
    path = tmp_path / "train.jsonl"
    assert write_instruct([note(), note()], SCHEMA, path) == 4
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [r["task"] for r in rows] == ["concept_extraction", "relation_extraction"] * 2
    assert rows[0] == ce_example(note(), SCHEMA)
    entities_only = LabelSchema(SCHEMA.entity_types)
    assert write_instruct([note()], entities_only, path) == 1
