"""The generative backend's pure parts: parsing answers, chunks, prompts, config.

No torch here: what a model generates comes in as text, so every rule of turning an
answer back into spans and relations is pinned on hand-written answers.
"""

from __future__ import annotations

import json
import re

import pytest

from noteloop.core.align import sentence_chunks
from noteloop.core.formats.instruct import ce_example
from noteloop.core.model.answers import (
    FoundMention,
    FoundRelation,
    TokenTrace,
    json_objects,
    parse_mentions,
    parse_relations,
    repeats_at_end,
)
from noteloop.core.model.config import GenerativeConfig
from noteloop.core.model.prompts import Chunk, chunk_document, relation_prompt, training_examples
from noteloop.core.schema import Document, EntityType, LabelSchema, Relation, RelationType, Span

TYPES = ("Drug", "Problem")
NOTE = "Aspirin for pain. Later, pain again; aspirin stopped. Painful knee."


def mention(text: str, label: str) -> dict[str, str]:
    return {"text": text, "type": label}


def answer(*items: dict[str, str]) -> str:
    return json.dumps(list(items))


def placed(parsed) -> list[tuple[str, str]]:
    return [(m.label, NOTE[m.start : m.end]) for m in parsed.items]


# --------------------------------------------------------------------------- mentions


def test_valid_answer_places_every_mention_in_order():
    parsed = parse_mentions(
        answer(
            mention("Aspirin", "Drug"),
            mention("pain", "Problem"),
            mention("pain", "Problem"),
            mention("aspirin", "Drug"),
        ),
        NOTE,
        TYPES,
    )
    assert parsed.items == [
        FoundMention("Drug", 0, 7, 1.0),
        FoundMention("Problem", 12, 16, 1.0),
        FoundMention("Problem", 25, 29, 1.0),
        FoundMention("Drug", 37, 44, 1.0),
    ]
    assert parsed.problems == [] and parsed.complete


def test_repeated_mention_takes_the_next_occurrence_and_stops_when_there_is_none():
    # "pain" occurs exactly twice (12, 25); "Painful" differs in case, and a
    # case-insensitive match is only a fallback for text that never occurs exactly.
    parsed = parse_mentions(answer(*[mention("pain", "Problem")] * 3), NOTE, TYPES)
    assert [(m.start, m.end) for m in parsed.items] == [(12, 16), (25, 29)]
    assert parsed.problems == ["Problem 'pain' is listed more often than it occurs"]


def test_same_text_as_two_types_may_share_an_occurrence():
    parsed = parse_mentions(
        answer(mention("pain", "Problem"), mention("pain", "Drug")), NOTE, TYPES
    )
    assert [(m.label, m.start) for m in parsed.items] == [("Problem", 12), ("Drug", 12)]


def test_truncated_answer_keeps_the_complete_objects():
    text = '[{"text": "Aspirin", "type": "Drug"}, {"text": "pain", "type": "Prob'
    parsed = parse_mentions(text, NOTE, TYPES)
    assert placed(parsed) == [("Drug", "Aspirin")]
    assert parsed.problems == ["the answer was cut off after 1 item(s)"]
    assert not parsed.complete


def test_truncated_after_a_comma_and_an_unclosed_list():
    parsed = parse_mentions('[{"text": "knee", "type": "Problem"},', NOTE, TYPES)
    assert placed(parsed) == [("Problem", "knee")]
    assert parsed.problems == ["the answer was cut off after 1 item(s)"]


def test_wrong_type_is_reported_and_skipped():
    parsed = parse_mentions(
        answer(mention("Aspirin", "Medication"), mention("knee", "Problem")), NOTE, TYPES
    )
    assert placed(parsed) == [("Problem", "knee")]
    assert parsed.problems == ["unknown entity type 'Medication' for 'Aspirin'"]


def test_invented_text_is_reported_and_skipped():
    parsed = parse_mentions(
        answer(mention("ibuprofen", "Drug"), mention("knee", "Problem")), NOTE, TYPES
    )
    assert placed(parsed) == [("Problem", "knee")]
    assert parsed.problems == ["Drug 'ibuprofen' is not in the note"]


def test_case_differs_only_when_the_exact_text_is_absent():
    parsed = parse_mentions(answer(mention("KNEE", "Problem")), NOTE, TYPES)
    assert placed(parsed) == [("Problem", "knee")]


def test_word_bounded_occurrence_is_preferred_over_a_longer_word():
    note = "painful, then pain"
    parsed = parse_mentions(answer(mention("pain", "Problem")), note, TYPES)
    assert [(m.start, m.end) for m in parsed.items] == [(14, 18)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty answer"),
        ("I found aspirin.", "the answer is not a JSON list: 'I found aspirin.'"),
        ('[{"text": "knee", "type": "Problem"} oops]', "unreadable JSON after 1 item(s): 'oops]'"),
        ('["knee"]', 'not a mention object: "knee"'),
        ('[{"text": 3, "type": "Drug"}]', 'a mention needs "text" and "type" strings'),
        ('[{"text": "  ", "type": "Drug"}]', "empty mention text for type 'Drug'"),
    ],
)
def test_malformed_answers_are_reported_never_raised(text, problem):
    parsed = parse_mentions(text, NOTE, TYPES)
    assert parsed.problems and parsed.problems[0].startswith(problem)


def test_empty_list_is_a_complete_answer_with_nothing():
    parsed = parse_mentions("[]", NOTE, TYPES)
    assert parsed.items == [] and parsed.problems == [] and parsed.complete


def test_scores_come_from_the_tokens_of_each_object():
    text = answer(mention("Aspirin", "Drug"), mention("knee", "Problem"))
    values, _, _ = json_objects(text)
    (_, a1, b1), (_, a2, _) = values
    # two tokens per object: the first object's tokens are sure, the second's are not
    ends = (a1 + 5, b1, a2 + 5, len(text))
    trace = TokenTrace(ends, (0.0, 0.0, -2.0, -2.0))
    first, second = parse_mentions(text, NOTE, TYPES, trace).items
    assert first.score == pytest.approx(1.0)
    assert second.score == pytest.approx(0.1353, abs=1e-3)


def test_a_greedy_loop_is_recognised_when_one_object_repeats_three_times():
    item = json.dumps(mention("PATHOLOGY", "Test"))
    other = json.dumps(mention("knee", "Problem"))
    assert repeats_at_end("[" + ", ".join([item] * 3))
    assert not repeats_at_end("[" + ", ".join([item] * 2))
    assert not repeats_at_end("[" + ", ".join([item, other, item, item]))
    assert not repeats_at_end("[" + ", ".join([item] * 3) + ', {"te')


# --------------------------------------------------------------------------- relations

NUMBERING = {"T1": "a", "T2": "b", "T3": "c"}
LABELS = {"a": "Drug", "b": "Problem", "c": "Problem"}


def allows(label: str, head: str, tail: str) -> bool:
    return label == "treats" and head == "Drug" and tail == "Problem"


def test_relations_are_read_by_entity_number():
    text = json.dumps(
        [
            {"head": "T1", "type": "treats", "tail": "T2"},
            {"head": "T1", "type": "treats", "tail": 3},
        ]
    )
    parsed = parse_relations(text, NUMBERING, LABELS, allows)
    assert parsed.items == [
        FoundRelation("treats", "a", "b", 1.0),
        FoundRelation("treats", "a", "c", 1.0),
    ]
    assert parsed.problems == []


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (
            {"head": "T2", "type": "treats", "tail": "T1"},
            "relation treats is not allowed from Problem to Drug",
        ),
        (
            {"head": "T1", "type": "causes", "tail": "T2"},
            "relation causes is not allowed from Drug to Problem",
        ),
        (
            {"head": "T1", "type": "treats", "tail": "T9"},
            "relation treats names an entity that was not listed",
        ),
        (
            {"head": "T1", "type": "treats", "tail": "T1"},
            "relation treats links an entity to itself",
        ),
        ({"head": "T1", "tail": "T2"}, 'a relation needs "head", "type" and "tail"'),
    ],
)
def test_bad_relations_are_reported(item, problem):
    parsed = parse_relations(json.dumps([item]), NUMBERING, LABELS, allows)
    assert parsed.items == [] and parsed.problems[0].startswith(problem)


def test_repeated_and_truncated_relations():
    rel = '{"head": "T1", "type": "treats", "tail": "T2"}'
    parsed = parse_relations(f'[{rel}, {rel}, {{"head": "T1", "ty', NUMBERING, LABELS, allows)
    assert parsed.items == [FoundRelation("treats", "a", "b", 1.0)]
    assert parsed.problems == [
        "relation treats a -> b is listed twice",
        "the answer was cut off after 2 item(s)",
    ]


# --------------------------------------------------------------------------- chunks


def words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def test_chunks_cut_after_sentences_and_cover_the_text():
    text = "One two three. Four five six.\nSeven eight nine ten eleven twelve thirteen."
    chunks = sentence_chunks(text, words(text), 5)
    assert [text[a:b] for a, b in chunks] == [
        "One two three.",
        "Four five six.",
        "Seven eight nine ten eleven",
        "twelve thirteen.",
    ]
    assert "".join(text[a:b] for a, b in chunks).replace(" ", "") == text.replace(" ", "").replace(
        "\n", ""
    )


def test_chunks_never_cut_through_a_span():
    text = "alpha beta gamma delta epsilon zeta"
    span = Span("s", "Drug", 11, 22)  # "gamma delta"
    chunks = sentence_chunks(text, words(text), 3, [span])
    assert all(
        not (a < span.start < b < span.end) and not (span.start < a < span.end) for a, b in chunks
    )
    assert any(a <= span.start and span.end <= b for a, b in chunks)


def test_long_note_is_chunked_whole():
    text = " ".join(f"Sentence number {i} is here." for i in range(1500))  # ~7,500 words
    chunks = sentence_chunks(text, words(text), 200)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(text)
    assert all(len(words(text[a:b])) <= 200 for a, b in chunks)
    assert all(text[a:b].endswith(".") for a, b in chunks)


def test_blank_note_has_no_chunks_and_bad_budget_is_refused():
    assert sentence_chunks("  \n ", [], 10) == []
    with pytest.raises(ValueError, match="max_tokens must be >= 1, got 0"):
        sentence_chunks("a", [(0, 1)], 0)


# --------------------------------------------------------------------------- prompts

SCHEMA = LabelSchema(
    (EntityType("Drug", description="medications"), EntityType("Problem")),
    (RelationType("treats", ("Drug",), ("Problem",), description="given for"),),
)
DOC = Document(
    "d",
    "Aspirin for pain. Ibuprofen for fever.",
    (
        Span("T1", "Drug", 0, 7),
        Span("T2", "Problem", 12, 16),
        Span("T3", "Drug", 18, 27),
        Span("T4", "Problem", 32, 37),
    ),
    (Relation("R1", "treats", "T1", "T2"), Relation("R2", "treats", "T3", "T4")),
)


def test_a_chunk_example_is_the_instruction_export_of_the_chunk():
    second = Chunk(0, 18, 38)
    part = chunk_document(DOC, second)
    assert part.text == "Ibuprofen for fever."
    assert [(s.id, s.start, s.end) for s in part.spans] == [("T3", 0, 9), ("T4", 14, 19)]
    assert [r.id for r in part.relations] == ["R2"]
    ce, re_ = training_examples(DOC, [second], SCHEMA, relations=True)
    assert ce.answer == ce_example(part, SCHEMA)["output"]
    assert "- Drug: medications" in ce.user and ce.user.endswith("Note:\nIbuprofen for fever.")
    assert json.loads(re_.answer) == [{"head": "T1", "type": "treats", "tail": "T2"}]


def test_relation_prompt_numbers_predicted_spans_and_maps_back():
    predicted = [Span("S1", "Drug", 18, 27), Span("S2", "Problem", 32, 37)]
    example, numbering = relation_prompt(DOC, Chunk(0, 18, 38), SCHEMA, predicted)
    assert numbering == {"T1": "S1", "T2": "S2"}
    assert '[T1] Drug: "Ibuprofen"' in example.user and "relation" in example.user


def test_chunks_without_two_entities_get_no_relation_example():
    examples = training_examples(DOC, [Chunk(0, 0, 7)], SCHEMA, relations=True)
    assert [e.task for e in examples] == ["concept_extraction"]


# --------------------------------------------------------------------------- config


def test_generative_config_round_trips_and_refuses_bad_values():
    config = GenerativeConfig(lora_r=8, chunk_tokens=64, relations=False)
    assert GenerativeConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    with pytest.raises(ValueError, match="`chunk_tokens` must be >= 1, got 0"):
        GenerativeConfig(chunk_tokens=0)
    with pytest.raises(ValueError, match="`dtype` must be one of auto, float32, bfloat16"):
        GenerativeConfig(dtype="fp8")
    with pytest.raises(ValueError, match="`relations` must be true or false"):
        GenerativeConfig(relations="yes")
    with pytest.raises(ValueError, match="unknown GenerativeConfig key"):
        GenerativeConfig.from_dict({"full_finetune": True})
    assert GenerativeConfig(epochs=0).epochs_for(4) == 8
    assert GenerativeConfig(epochs=0).epochs_for(1000) == 1


