"""Constrained answers, the pure part: the answer grammars and the token prefix tree.

No torch and no model: a toy vocabulary (every character of the note and the JSON, and a
few multi-character tokens cutting across the grammar's parts) is walked at random, and
whatever the walk writes must parse without a single problem.
"""

from __future__ import annotations

import json
import random

import pytest

from noteloop.core.answer_grammar import ConceptGrammar, RelationGrammar, State
from noteloop.core.model.answers import parse_mentions, parse_relations
from noteloop.core.model.config import GenerativeConfig
from noteloop.core.token_trie import TokenTrie

TYPES = ("Drug", "Problem")
NOTE = 'Started "aspirin" for headache.\nAspirin stopped; headache again, pain \\ back.'
TOKENS = [
    *sorted(set(NOTE + '{}[]",: abcdefghijklmnopqrstuvwxyzDPT0123456789\\')),
    '{"',
    '", "',
    '"}',
    '"}, {"',
    ' {"',
    "text",
    "type",
    '": "',
    "aspirin",
    " headache",
    "head",
    "ache",
    "Drug",
    "Problem",
    '"}]',
    "pain",
    '\\"',
    "\\n",
    'ache."',
    "tail",
    "treats",
    "causes",
    '"T',
    "T1",
    "<eos>",
]
EOS = len(TOKENS) - 1
LABELS = ("Drug", "Problem", "Drug")  # T1, T2, T3
NUMBERING = {"T1": "a", "T2": "b", "T3": "c"}
BY_ID = {"a": "Drug", "b": "Problem", "c": "Drug"}


def allows(label: str, head: str, tail: str) -> bool:
    return (label, head, tail) == ("treats", "Drug", "Problem") or label == "causes"


@pytest.fixture(scope="module")
def trie() -> TokenTrie:
    return TokenTrie(TOKENS, skip=[EOS])


def concepts(note: str = NOTE, trie: TokenTrie | None = None) -> ConceptGrammar:
    return ConceptGrammar(note, TYPES, trie.single_chars if trie else None)


def relations() -> RelationGrammar:
    return RelationGrammar(LABELS, ("treats", "causes"), allows)


def walk(grammar, trie: TokenTrie, budget: int, rng: random.Random) -> tuple[str, State]:
    """A random answer within ``budget`` tokens, closing the list one time in twenty."""
    state, out = grammar.start(), []
    for step in range(budget):
        if grammar.finished(state):
            break
        allowed = trie.allowed(grammar, state, budget - step)
        assert allowed, f"dead end after {''.join(out)!r}"
        more = [t for t in allowed if "]" not in TOKENS[t]]
        token = rng.choice(more if more and rng.random() < 0.95 else allowed)
        out.append(TOKENS[token])
        state = grammar.consume(state, TOKENS[token])
    return "[" + "".join(out), state


def written(grammar, text: str) -> State | None:
    return grammar.consume(grammar.start(), text)


# ---------------------------------------------------------------------- any walk is valid


@pytest.mark.parametrize("seed", range(6))
def test_every_concept_answer_parses_without_a_problem_within_its_budget(trie, seed):
    rng = random.Random(seed)
    for _ in range(40):
        budget = rng.randint(1, 90)
        answer, state = walk(concepts(trie=trie), trie, budget, rng)
        assert concepts().finished(state), f"not closed within {budget}: {answer!r}"
        assert isinstance(json.loads(answer), list)
        parsed = parse_mentions(answer, NOTE, TYPES)
        assert parsed.problems == [] and parsed.complete
        starts = [m.start for m in parsed.items]
        assert starts == sorted(starts)  # text order


@pytest.mark.parametrize("seed", range(4))
def test_every_relation_answer_parses_without_a_problem_within_its_budget(trie, seed):
    rng = random.Random(seed)
    for _ in range(40):
        budget = rng.randint(1, 120)
        answer, state = walk(relations(), trie, budget, rng)
        assert relations().finished(state), f"not closed within {budget}: {answer!r}"
        parsed = parse_relations(answer, NUMBERING, BY_ID, allows)
        assert parsed.problems == [] and parsed.complete
        objects = json.loads(answer)
        keys = [(int(o["head"][1:]), int(o["tail"][1:]), o["type"]) for o in objects]
        assert keys == sorted(set(keys))  # the export's order, no duplicate


# ---------------------------------------------------------------------- the shape


def test_the_empty_list_and_the_exact_serialisation():
    grammar = concepts()
    assert grammar.finished(written(grammar, "]"))
    exported = json.dumps(
        [{"text": "aspirin", "type": "Drug"}, {"text": "headache", "type": "Problem"}],
        ensure_ascii=False,
    )
    assert grammar.finished(written(grammar, exported[1:]))
    for other in (
        '{"text":"aspirin", "type": "Drug"}]',
        '{"type": "Drug", "text": "aspirin"}]',
        '{"text": "aspirin", "type": "Drug"},{"text": "headache"',
        '{"text": "aspirin", "type": "Drug"}\n]',
        " ]",
        "]]",
    ):
        assert written(grammar, other) is None, other


def test_nothing_follows_the_closed_list():
    grammar = concepts()
    assert list(grammar.next_chars(written(grammar, "]"))) == []
    assert grammar.step(written(grammar, "]"), " ") is None


def test_only_schema_types():
    grammar = concepts()
    at_type = written(grammar, '{"text": "aspirin", "type": "')
    assert set(grammar.next_chars(at_type)) == {"D", "P"}
    assert written(grammar, '{"text": "aspirin", "type": "Drug"') is not None
    assert written(grammar, '{"text": "aspirin", "type": "Dru"') is None
    assert written(grammar, '{"text": "aspirin", "type": "Medication"') is None


def test_only_stretches_of_the_chunk_on_word_boundaries():
    grammar = concepts()
    assert written(grammar, '{"text": "headache again"') is not None
    assert written(grammar, '{"text": "ibuprofen') is None  # invented
    assert written(grammar, '{"text": "spirin') is None  # starts inside a word
    assert written(grammar, '{"text": "aspiri"') is None  # ends inside a word
    assert written(grammar, '{"text": " aspirin') is None  # starts on a space
    assert written(grammar, '{"text": "for "') is None  # ends on a space


def test_quotes_backslashes_and_newlines_are_written_escaped():
    grammar = concepts()
    quoted = '{"text": "\\"aspirin\\"", "type": "Drug"}]'
    assert grammar.finished(written(grammar, quoted))
    assert json.loads("[" + quoted)[0]["text"] == '"aspirin"'
    across = '{"text": "headache.\\nAspirin", "type": "Problem"}]'
    assert grammar.finished(written(grammar, across))
    assert written(grammar, '{"text": "headache.\nAspirin') is None  # a raw newline
    assert written(grammar, '{"text": "aspirin"", "type') is None  # a bare quote ends it
    assert written(grammar, '{"text": "pain \\\\ back", "type": "Drug"}]') is not None
    # the escaped quote's backslash alone is not a mention's end
    assert written(grammar, '{"text": "\\"aspirin\\"') is not None


def test_mentions_come_in_text_order():
    grammar = concepts()
    later = '{"text": "stopped", "type": "Drug"}, {"text": "'
    assert written(grammar, later + "again") is not None
    assert written(grammar, later + "Started") is None  # only before the previous one
    # the same start again is fine: another type, or a longer stretch
    assert written(grammar, later + 'stopped", "type": "Problem"}') is not None


def test_an_occurrence_is_claimed_once_per_type():
    grammar = concepts()
    once = '{"text": "pain", "type": "Problem"}, '
    assert written(grammar, once + '{"text": "pain", "type": "Drug"}') is not None
    assert written(grammar, once + '{"text": "pain", "type": "Problem"}') is None
    twice = '{"text": "headache", "type": "Problem"}, '
    assert written(grammar, twice * 2) is not None  # "headache" occurs twice
    assert written(grammar, twice * 2 + '{"text": "headache", "type": "P') is None


def test_closing_state_starts_no_new_object(trie):
    grammar = concepts()
    after_one = written(grammar, '{"text": "aspirin", "type": "Drug"}').closing_now()
    assert [TOKENS[t] for t in trie.allowed(grammar, after_one, 50)] == ["]"]
    mid = written(grammar, '{"text": "aspirin').closing_now()  # the object is finished first
    assert grammar.finished(grammar.consume(mid, '", "type": "Drug"}]'))


def test_the_budget_keeps_enough_tokens_to_close(trie):
    grammar = concepts(trie=trie)
    assert [TOKENS[t] for t in trie.allowed(grammar, grammar.start(), 1)] == ["]"]
    mid = written(grammar, '{"text": "aspirin')
    # characters bound the tokens needed (the type is not chosen yet: the longest counts)
    assert grammar.min_close(mid) == len('", "type": "Problem"}]')
    closing = grammar.closing_text(mid)
    assert closing == '", "type": "Drug"}]' and grammar.finished(grammar.consume(mid, closing))
    need = trie.count_tokens(closing)
    assert need == len(['", "', "type", '": "', "Drug", '"}]'])
    tight = {TOKENS[t] for t in trie.allowed(grammar, mid, need)}
    assert '", "' in tight and all(t.startswith('"') for t in tight)  # only closing it
    assert trie.allowed(grammar, mid, need + 20)  # more room: the text may go on
    assert any(not TOKENS[t].startswith('"') for t in trie.allowed(grammar, mid, need + 20))


def test_characters_no_token_writes_alone_stay_out_of_mentions():
    grammar = ConceptGrammar("a 5 °C fever", TYPES, producible=set("a5Cfever "))
    assert written(grammar, '{"text": "5 °C') is None
    assert written(grammar, '{"text": "fever", "type": "Problem"}]') is not None
    # a newline is written as backslash and n: those are what must be writable
    grammar = ConceptGrammar("a\nfever", TYPES, producible=set("a\\nfever"))
    assert written(grammar, '{"text": "a\\nfever", "type": "Problem"}]') is not None


def test_no_mention_is_possible_in_an_empty_or_blank_chunk():
    for chunk in ("", "   \n"):
        grammar = ConceptGrammar(chunk, TYPES)
        assert set(grammar.next_chars(grammar.start())) == {"]"}
        assert written(grammar, '{"') is None


# ---------------------------------------------------------------------- relations


def test_relations_name_listed_entities_and_allowed_types_in_order():
    grammar = relations()
    one = '{"head": "T1", "type": "treats", "tail": "T2"}'
    assert grammar.finished(written(grammar, one + "]"))
    assert written(grammar, '{"head": "T9') is None  # not listed
    assert written(grammar, '{"head": "T1", "type": "causes", "tail": "T1') is None  # itself
    assert written(grammar, '{"head": "T2", "type": "treats') is None  # Problem -> ...
    assert written(grammar, '{"head": "T1", "type": "treats", "tail": "T3') is None  # Drug
    assert written(grammar, '{"head": "T1", "type": "related') is None  # not a type
    assert written(grammar, one + ", " + one) is None  # twice
    earlier = '{"head": "T1", "type": "causes", "tail": "T2"}'
    assert written(grammar, one + ", " + earlier) is None  # "causes" < "treats"
    assert written(grammar, earlier + ", " + one) is not None


def test_relations_with_no_allowed_pair_can_only_be_empty():
    grammar = RelationGrammar(("Drug", "Drug"), ("treats",), allows)
    assert set(grammar.next_chars(grammar.start())) == {"]"}


def test_entity_numbers_of_two_digits():
    grammar = RelationGrammar(("Drug",) * 12, ("causes",), allows)
    assert written(grammar, '{"head": "T1", "type": "causes", "tail": "T12"}]') is not None
    assert written(grammar, '{"head": "T1", "type": "causes", "tail": "T13') is None


# ---------------------------------------------------------------------- the token trie


def test_trie_allows_tokens_across_the_grammar_parts_and_skips_special_ones(trie):
    grammar = concepts()
    start = {TOKENS[t] for t in trie.allowed(grammar, grammar.start(), 50)}
    assert {"]", "{", '{"'} <= start
    assert "<eos>" not in start and '"}]' not in start
    mid = written(grammar, '{"text": "aspirin')
    assert {'"', '", "'} <= {TOKENS[t] for t in trie.allowed(grammar, mid, 50)}
    assert "ache" not in {TOKENS[t] for t in trie.allowed(grammar, mid, 50)}


def test_the_config_switch():
    assert GenerativeConfig().constrained is True
    assert GenerativeConfig.from_dict({"constrained": False}).constrained is False
    with pytest.raises(ValueError, match="`constrained` must be true or false"):
        GenerativeConfig(constrained="yes")  # type: ignore[arg-type]
