"""From a generative model's answer text back to spans and relations of the note.

Pure Python, no torch: the answers come in as strings (with, for scoring, the character
end of each generated token and its log-probability), so every rule here is tested on
its own.

The answers follow :mod:`noteloop.core.formats.instruct`: a JSON list of
``{"text", "type"}`` mentions in text order, or of ``{"head", "type", "tail"}``
relations between numbered entities. A model does not always comply, so parsing is
**tolerant and accountable**: it reads the list object by object as far as the objects
are valid JSON, keeps every object it can place, and reports each one it cannot, and
why, in :attr:`Parsed.problems`. It never raises on a model's output.

With constrained decoding (the default, :mod:`noteloop.core.answer_grammar`) the answers
follow these rules by construction: the grammar places and counts mentions the way
:func:`parse_mentions` does (exact text, non-overlapping occurrences, one claim per
occurrence and type), so a constrained answer parses with no problem at all. The
tolerance is for free decoding and for answers read from elsewhere.

Placing a mention: the model gives the mention's text, not its offsets. Mentions come in
text order, so each is looked for from where the previous one started; an occurrence
already taken by the same mention is skipped (the second "pain" of an answer is the
second "pain" of the note), and occurrences that begin and end on word boundaries are
preferred (not the "pain" in "painful"). When the exact text is absent a case-insensitive
match is accepted. A mention found nowhere in the chunk is *invented* and dropped.

Scores: a suggestion's score is the geometric mean of the probabilities of the generated
tokens that overlap its JSON object, so a mention the model produced hesitantly scores
low. Without token probabilities every score is 1.0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Relation allowed between a head and a tail label, for a relation type.
Allows = Callable[[str, str, str], bool]

_DECODER = json.JSONDecoder()
# The last few flat JSON objects of an answer and what separates them.
_LAST_OBJECTS = re.compile(r"(\{[^{}]*\})\s*,?\s*")
_NUMBER = re.compile(r"^\s*\[?T?(\d+)\]?\s*$")


@dataclass(frozen=True, slots=True)
class FoundMention:
    """A mention placed in the chunk: ``start``/``end`` are chunk character offsets."""

    label: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class FoundRelation:
    """A relation between two entities, by their ids (the keys of the numbering)."""

    label: str
    head: str
    tail: str
    score: float


@dataclass
class Parsed:
    """What an answer yielded, and what it said that could not be used."""

    items: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    complete: bool = True  # False when the list was cut off or broken before its end


@dataclass(frozen=True, slots=True)
class TokenTrace:
    """The generated tokens of one answer: where each ends in it, and its log-probability."""

    ends: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()

    def score(self, start: int, end: int) -> float:
        """exp(mean log-probability) of the tokens overlapping answer characters [start, end)."""
        picked, begin = [], 0
        for token_end, logprob in zip(self.ends, self.logprobs, strict=True):
            if token_end > start and begin < end:
                picked.append(logprob)
            begin = token_end
        if not picked:
            return 1.0
        return min(1.0, max(0.0, math.exp(sum(picked) / len(picked))))


# --------------------------------------------------------------------------- the JSON list


def json_objects(answer: str) -> tuple[list[tuple[Any, int, int]], list[str], bool]:
    """The values of a JSON list, read one by one, each with its character range.

    Returns:
        ``(value, start, end)`` per element read, the problems met, and whether the list
        was read to its closing bracket.
    """
    start = answer.find("[")
    if start < 0:
        shown = answer.strip()[:60]
        return [], [f"the answer is not a JSON list: {shown!r}" if shown else "empty answer"], False
    values: list[tuple[Any, int, int]] = []
    pos = start + 1
    while True:
        pos = _skip(answer, pos)
        if pos >= len(answer):
            return values, [f"the answer was cut off after {len(values)} item(s)"], False
        if answer[pos] == "]":
            return values, [], True
        try:
            value, end = _DECODER.raw_decode(answer, pos)
        except json.JSONDecodeError:
            return values, [_broken(answer, pos, len(values))], False
        values.append((value, pos, end))
        pos = end


def _skip(text: str, pos: int) -> int:
    """Past whitespace and the comma between two elements."""
    while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
        pos += 1
    return pos


def _broken(answer: str, pos: int, done: int) -> str:
    rest = answer[pos:]
    if rest.lstrip().startswith("{") and "}" not in rest:
        return f"the answer was cut off after {done} item(s)"
    return f"unreadable JSON after {done} item(s): {rest[:40]!r}"


def repeats_at_end(answer: str, times: int = 3) -> bool:
    """Whether the answer ends with one object written ``times`` times in a row: a small
    model in a greedy loop, which would repeat it until the token limit. Generation stops
    there (the repeats would be dropped anyway as listed more often than they occur)."""
    tail = answer[-(times * 160) :]
    objects = [m.group(1) for m in _LAST_OBJECTS.finditer(tail)]
    return (
        len(objects) >= times
        and len(set(objects[-times:])) == 1
        and tail.rstrip(", \n").endswith(objects[-1])
    )


# --------------------------------------------------------------------------- mentions


def parse_mentions(
    answer: str, chunk: str, entity_types: Sequence[str], trace: TokenTrace | None = None
) -> Parsed:
    """The mentions of a concept-extraction answer, placed in ``chunk`` (see the module)."""
    values, list_problems, complete = json_objects(answer)
    problems: list[str] = []
    known, taken = set(entity_types), set[tuple[str, int, int]]()
    out: list[FoundMention] = []
    cursor = 0
    for value, a, b in values:
        problem = _mention_problem(value, known)
        if problem:
            problems.append(problem)
            continue
        text, label = value["text"], value["type"]
        place = _place(chunk, text, cursor, {(s, e) for lab, s, e in taken if lab == label})
        if place is None:
            problems.append(_absent(chunk, text, label))
            continue
        taken.add((label, *place))
        cursor = place[0]
        out.append(FoundMention(label, *place, trace.score(a, b) if trace else 1.0))
    return Parsed(out, problems + list_problems, complete)


def _mention_problem(value: Any, known: set[str]) -> str:
    if not isinstance(value, dict):
        return f"not a mention object: {json.dumps(value)[:60]}"
    text, label = value.get("text"), value.get("type")
    if not isinstance(text, str) or not isinstance(label, str):
        return f'a mention needs "text" and "type" strings: {json.dumps(value)[:60]}'
    if label not in known:
        return f"unknown entity type {label!r} for {text!r}"
    if not text.strip():
        return f"empty mention text for type {label!r}"
    return ""


def _absent(chunk: str, text: str, label: str) -> str:
    if _occurrences(chunk, text):
        return f"{label} {text!r} is listed more often than it occurs"
    return f"{label} {text!r} is not in the note"


def _place(
    chunk: str, text: str, cursor: int, used: set[tuple[int, int]]
) -> tuple[int, int] | None:
    """The best free occurrence of ``text`` (see the module docstring), or None."""
    text = text.strip()
    free = [(s, e) for s, e in _occurrences(chunk, text) if (s, e) not in used]
    if not free:
        return None
    return min(free, key=lambda r: (r[0] < cursor, not _bounded(chunk, *r), r[0]))


def _occurrences(chunk: str, text: str) -> list[tuple[int, int]]:
    text = text.strip()
    if not text:
        return []
    found = [(m.start(), m.start() + len(text)) for m in re.finditer(re.escape(text), chunk)]
    if found:
        return found
    # lower() can change a string's length (e.g. "İ"); then no case-insensitive match
    lowered = chunk.lower()
    if len(lowered) != len(chunk):
        return []
    needle = re.escape(text.lower())
    return [(m.start(), m.end()) for m in re.finditer(needle, lowered)]


def _bounded(chunk: str, start: int, end: int) -> bool:
    before = start == 0 or not chunk[start - 1].isalnum()
    after = end == len(chunk) or not chunk[end].isalnum()
    return before and after


# --------------------------------------------------------------------------- relations


def parse_relations(
    answer: str,
    numbering: Mapping[str, str],
    labels: Mapping[str, str],
    allows: Allows,
    trace: TokenTrace | None = None,
) -> Parsed:
    """The relations of a relation-extraction answer.

    Args:
        answer: The generated text.
        numbering: Entity number in the prompt (``"T1"``...) -> entity id.
        labels: Entity id -> its entity type.
        allows: ``allows(relation_type, head_type, tail_type)``: whether the schema
            permits it; an unknown relation type must give False.
        trace: The answer's tokens, for scores.
    """
    values, list_problems, complete = json_objects(answer)
    problems: list[str] = []
    out: list[FoundRelation] = []
    seen: set[tuple[str, str, str]] = set()
    for value, a, b in values:
        found = _relation(value, numbering, labels, allows)
        if isinstance(found, str):
            problems.append(found)
            continue
        if found in seen:
            problems.append(f"relation {found[0]} {found[1]} -> {found[2]} is listed twice")
            continue
        seen.add(found)
        out.append(FoundRelation(*found, trace.score(a, b) if trace else 1.0))
    return Parsed(out, problems + list_problems, complete)


def _relation(
    value: Any, numbering: Mapping[str, str], labels: Mapping[str, str], allows: Allows
) -> tuple[str, str, str] | str:
    """(type, head id, tail id), or the reason the object cannot be a relation."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return f'a relation needs "head", "type" and "tail": {json.dumps(value)[:60]}'
    label = value["type"]
    head, tail = _entity(value.get("head"), numbering), _entity(value.get("tail"), numbering)
    if head is None or tail is None:
        return f"relation {label} names an entity that was not listed: {json.dumps(value)[:60]}"
    if head == tail:
        return f"relation {label} links an entity to itself"
    if not allows(label, labels[head], labels[tail]):
        return f"relation {label} is not allowed from {labels[head]} to {labels[tail]}"
    return (label, head, tail)


def _entity(ref: Any, numbering: Mapping[str, str]) -> str | None:
    if isinstance(ref, int) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str):
        return None
    match = _NUMBER.match(ref)
    return numbering.get(f"T{match.group(1)}") if match else None
