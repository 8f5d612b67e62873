"""What a constrained generative answer may say, one character at a time.

Pure Python, no torch. The generative backend asks a causal LM for a JSON list in exactly
the shape of the instruction-tuning export (:mod:`noteloop.core.formats.instruct`)::

    [{"text": "aspirin", "type": "Drug"}, {"text": "headache", "type": "Problem"}]
    [{"head": "T1", "type": "treats", "tail": "T2"}]
    []

A grammar here is a small state machine over the characters of that answer (the prompt
already holds the opening ``[``): :meth:`AnswerGrammar.step` takes a state and one
character and returns the next state, or None when the character would break the rules.
:mod:`noteloop.core.token_trie` walks the vocabulary with it to find the tokens allowed at
each generation step. The rules, which make every finished answer parse without a problem
(:mod:`noteloop.core.model.answers`):

- the exact serialisation of the export (``json.dumps`` with ``ensure_ascii=False``:
  ``", "`` between objects, ``": "`` after keys, keys in their order);
- a ``"type"`` is one of the schema's type names (relation types for relations);
- a mention's ``"text"`` is a stretch of the chunk, JSON-escaped (a quote in the note is
  ``\\"`` in the answer, a newline ``\\n``), starting and ending on a word boundary and not
  on a space; mentions come in text order (each starts at or after the previous one) and
  no occurrence is claimed twice by the same type, so nothing is ``invented`` or
  ``repeated``;
- a relation names two different entity numbers of the prompt, a type whose head and tail
  types hold for them, and comes after the previous one in the export's order (head
  number, tail number, type): no duplicate, no loop;
- :meth:`AnswerGrammar.min_close` says how many characters at least end the answer from a
  state, so generation can keep enough tokens to close the list within its budget, and a
  state marked ``closing`` starts no new object (the model wanted to stop).

A state is never a dead end: a character is refused when no finished answer could follow
it.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CLOSE = "]"
SEPARATOR = ", "
QUOTE = '"'
# Relation allowed between a head and a tail label, for a relation type.
Allows = Callable[[str, str, str], bool]


@dataclass(frozen=True, slots=True)
class State:
    """Where an answer stands. ``where`` is ``open`` (nothing yet), ``sep`` (after an
    object; ``offset`` characters of ``", "`` read), ``object`` (inside one: at template
    segment ``segment``, ``offset`` characters into it), or ``done`` (after ``]``)."""

    where: str = "open"
    segment: int = 0
    offset: int = 0
    typed: str = ""  # the current field's characters so far, JSON-escaped
    options: tuple[Any, ...] = ()  # what the current field may still become
    values: tuple[Any, ...] = ()  # the current object's finished fields
    done: tuple[Any, ...] = ()  # the finished objects, as the grammar records them
    closing: bool = False  # no new object: the list closes after the current one

    def closing_now(self) -> State:
        return State(
            self.where,
            self.segment,
            self.offset,
            self.typed,
            self.options,
            self.values,
            self.done,
            True,
        )


def escaped(text: str) -> str:
    """``text`` as it stands inside a JSON string of the export (no surrounding quotes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


class AnswerGrammar:
    """The list-level rules shared by both tasks; a subclass gives the object template
    (literal strings, None for a field) and the fields' rules."""

    template: tuple[str | None, ...] = ()

    # ---------------------------------------------------------------- per task

    def begin_field(self, state: State, segment: int) -> tuple[Any, ...]:
        raise NotImplementedError

    def extend_field(self, state: State, ch: str) -> tuple[Any, ...] | None:
        """The field's options after one more character, or None (never a dead end)."""
        raise NotImplementedError

    def field_value(self, state: State) -> Any | None:
        """The field's value if it may end here (a quote follows), else None."""
        raise NotImplementedError

    def field_chars(self, state: State) -> Iterable[str]:
        """The characters that may extend the field (a superset is fine)."""
        raise NotImplementedError

    def field_min_rest(self, state: State) -> int:
        raise NotImplementedError

    def field_bound(self, state: State, segment: int) -> int:
        """An upper bound on the shortest value of a later field (for min_close)."""
        raise NotImplementedError

    def field_closing_char(self, state: State) -> str:
        """The next character of the field on a short way to its end (see closing_text)."""
        raise NotImplementedError

    def finish(self, state: State, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """``state.done`` with the object of ``values`` added."""
        return (*state.done, values)

    def can_continue(self, state: State) -> bool:
        """Whether one more object can be written after ``state.done``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared

    def start(self) -> State:
        return State()

    def finished(self, state: State) -> bool:
        return state.where == "done"

    def consume(self, state: State, text: str) -> State | None:
        """The state after every character of ``text``, or None if one is refused."""
        for ch in text:
            nxt = self.step(state, ch)
            if nxt is None:
                return None
            state = nxt
        return state

    def next_chars(self, state: State) -> Iterable[str]:
        """The characters that may follow (a superset of what ``step`` accepts)."""
        if state.where == "done":
            return ()
        if state.where == "open" or (state.where == "sep" and state.offset == 0):
            opener = "," if state.where == "sep" else self._literal(0)[0]
            more = not state.closing and self.can_continue(state)
            return (CLOSE, opener) if more else (CLOSE,)
        if state.where == "sep":
            return (
                (SEPARATOR[state.offset],)
                if state.offset < len(SEPARATOR)
                else (self._literal(0)[0],)
            )
        literal = self.template[state.segment]
        if literal is not None:
            return (literal[state.offset],)
        chars = set(self.field_chars(state))
        if self.field_value(state) is not None:
            chars.add(QUOTE)
        return chars

    def step(self, state: State, ch: str) -> State | None:
        """The state after ``ch``, or None when ``ch`` is not allowed there."""
        if state.where == "done":
            return None
        if state.where in ("open", "sep"):
            return self._step_between(state, ch)
        if self.template[state.segment] is not None:
            return self._step_literal(state, ch)
        return self._step_field(state, ch)

    def _literal(self, segment: int) -> str:
        literal = self.template[segment]
        assert literal is not None
        return literal

    def _step_between(self, state: State, ch: str) -> State | None:
        at_choice = state.where == "open" or state.offset == 0
        if at_choice and ch == CLOSE:
            return State("done", done=state.done, closing=state.closing)
        if state.closing or not self.can_continue(state):
            return None
        if state.where == "sep" and state.offset < len(SEPARATOR):
            if ch != SEPARATOR[state.offset]:
                return None
            return State("sep", offset=state.offset + 1, done=state.done)
        # the object's opening literal
        begun = State("object", 0, 0, done=state.done, closing=state.closing)
        return self._step_literal(begun, ch)

    def _step_literal(self, state: State, ch: str) -> State | None:
        literal = self._literal(state.segment)
        if literal[state.offset] != ch:
            return None
        if state.offset + 1 < len(literal):
            return State(
                "object",
                state.segment,
                state.offset + 1,
                values=state.values,
                done=state.done,
                closing=state.closing,
            )
        return self._next_segment(state, state.segment + 1, state.values)

    def _next_segment(self, state: State, segment: int, values: tuple[Any, ...]) -> State:
        if segment == len(self.template):
            return State("sep", done=self.finish(state, values), closing=state.closing)
        if self.template[segment] is not None:
            return State(
                "object", segment, 0, values=values, done=state.done, closing=state.closing
            )
        at = State("object", segment, 0, values=values, done=state.done, closing=state.closing)
        options = self.begin_field(at, segment)
        return State("object", segment, 0, "", options, values, state.done, state.closing)

    def _step_field(self, state: State, ch: str) -> State | None:
        value = self.field_value(state) if ch == QUOTE else None
        if value is not None:  # a quote inside a field is escaped: where it may end, one ends it
            # every literal after a field starts with the field's closing quote
            after = State(
                "object",
                state.segment + 1,
                0,
                values=(*state.values, value),
                done=state.done,
                closing=state.closing,
            )
            return self._step_literal(after, ch)
        options = self.extend_field(state, ch)
        if options is None:
            return None
        return State(
            "object",
            state.segment,
            state.offset + 1,
            state.typed + ch,
            options,
            state.values,
            state.done,
            state.closing,
        )

    def min_close(self, state: State) -> int:
        """The fewest characters that end the answer from ``state`` (an upper bound on
        that fewest where later fields are not known yet): a token is at least one
        character, so that many tokens always suffice."""
        if state.where == "done":
            return 0
        if state.where == "open" or (state.where == "sep" and state.offset == 0):
            return len(CLOSE)
        if state.where == "sep":
            return len(SEPARATOR) - state.offset + self._rest_from(state, 0)
        literal = self.template[state.segment]
        if literal is not None:
            return len(literal) - state.offset + self._rest_from(state, state.segment + 1)
        return self.field_min_rest(state) + self._rest_from(state, state.segment + 1)

    def closing_text(self, state: State) -> str:
        """A short text that ends the answer from ``state``, one rule per state (end the
        field as soon as it may end, else go its shortest way; close the list): the text
        from the state after its first characters is the rest of it, so a budget counted
        in its tokens falls by one with each of them (min_close counts characters, and a
        tight budget needs the tokens)."""
        out = []
        while state.where != "done":
            ch = self._closing_char(state)
            out.append(ch)
            nxt = self.step(state, ch)
            assert nxt is not None, "the closing rule always has a way"
            state = nxt
        return "".join(out)

    def _closing_char(self, state: State) -> str:
        if state.where == "open" or (state.where == "sep" and state.offset == 0):
            return CLOSE
        if state.where == "sep":
            return SEPARATOR[state.offset] if state.offset < len(SEPARATOR) else "{"
        literal = self.template[state.segment]
        if literal is not None:
            return literal[state.offset]
        return QUOTE if self.field_value(state) is not None else self.field_closing_char(state)

    def _rest_from(self, state: State, segment: int) -> int:
        rest = len(CLOSE)
        for k in range(segment, len(self.template)):
            literal = self.template[k]
            rest += len(literal) if literal is not None else self.field_bound(state, k)
        return rest


# ---------------------------------------------------------------------- choices


def _choices_after(options: Sequence[str], typed: str) -> tuple[str, ...] | None:
    kept = tuple(o for o in options if o.startswith(typed))
    return kept or None


def _choice_chars(options: Sequence[str], typed: str) -> set[str]:
    n = len(typed)
    return {o[n] for o in options if len(o) > n}


def _choice_rest(options: Sequence[str], typed: str) -> int:
    return min(len(o) for o in options) - len(typed)


def _choice_closing_char(options: Sequence[str], typed: str) -> str:
    longer = [o for o in options if len(o) > len(typed)]
    return min(longer, key=len)[len(typed)]


# ---------------------------------------------------------------------- concepts


class ChunkText:
    """The chunk as the answer writes it (JSON-escaped), with where mentions may start
    and end. ``producible`` is the set of characters the tokenizer can write one at a
    time; a character outside it never enters a mention (the budget counts on writing
    the shortest ending one character per token)."""

    def __init__(self, chunk: str, producible: Collection[str] | None = None) -> None:
        self.chunk = chunk
        self.at = [0]  # original index -> index in the escaped text
        pieces = []
        for ch in chunk:
            pieces.append(escaped(ch))
            self.at.append(self.at[-1] + len(pieces[-1]))
        self.esc = "".join(pieces)
        self.orig = {e: i for i, e in enumerate(self.at)}  # escaped boundary -> original
        n = len(chunk)
        # what must be writable is the character as the answer writes it (\n for a newline)
        self.usable = [
            producible is None or all(c in producible for c in escaped(ch)) for ch in chunk
        ]
        self.valid_end = [False] + [self._ends_well(e) for e in range(1, n + 1)]
        self.next_end = self._next_ends()
        self.barrier = self._barriers()
        self.starts: dict[str, list[int]] = {}
        for p in range(n):
            if self._starts_well(p):
                self.starts.setdefault(self.esc[self.at[p]], []).append(p)
        self._counts: dict[str, int] = {}

    def _starts_well(self, p: int) -> bool:
        ch = self.chunk[p]
        inside_word = p > 0 and self.chunk[p - 1].isalnum() and ch.isalnum()
        return self.usable[p] and not ch.isspace() and not inside_word

    def _ends_well(self, e: int) -> bool:
        last = self.chunk[e - 1]
        inside_word = e < len(self.chunk) and last.isalnum() and self.chunk[e].isalnum()
        return not last.isspace() and not inside_word

    def _next_ends(self) -> list[int]:
        """For each original index i, the first valid end >= i (len + 1: none)."""
        n = len(self.chunk)
        out, nxt = [n + 1] * (n + 2), n + 1
        for e in range(n, -1, -1):
            if self.valid_end[e]:
                nxt = e
            out[e] = nxt
        return out

    def _barriers(self) -> list[int]:
        """For each original index i, the first unusable character at or after i."""
        n = len(self.chunk)
        out, nxt = [n] * (n + 1), n
        for i in range(n - 1, -1, -1):
            if not self.usable[i]:
                nxt = i
            out[i] = nxt
        return out

    def count(self, text: str) -> int:
        """Occurrences as the parser counts them (``re.finditer``: non-overlapping)."""
        if text not in self._counts:
            self._counts[text] = self.chunk.count(text)
        return self._counts[text]

    def original(self, epos: int) -> tuple[int, bool]:
        """(original index, whether ``epos`` is on a character boundary): inside an
        escape sequence, the index of the character being written."""
        i = self.orig.get(epos)
        if i is not None:
            return i, True
        return bisect.bisect_right(self.at, epos) - 1, False

    def ends_from(self, epos: int) -> Iterable[int]:
        """The valid ends (original indices) a mention written up to ``epos`` can reach,
        nearest first, without crossing an unusable character."""
        i, boundary = self.original(epos)
        limit = self.barrier[i]  # chars i.. are usable up to here (char i itself when inside it)
        e = self.next_end[i if boundary else i + 1]
        while e <= limit:
            yield e
            e = self.next_end[e + 1]


@dataclass(frozen=True, slots=True)
class Claim:
    """A mention written: chunk occurrence [start, end) and its type."""

    start: int
    end: int
    label: str


class ConceptGrammar(AnswerGrammar):
    """``{"text": ..., "type": ...}`` objects over ``chunk`` with ``entity_types``.

    A text field's options are its candidate occurrences ``(start, escaped position)``;
    the type field's options are the escaped type names still free for the text.
    """

    template = ('{"text": "', None, '", "type": "', None, '"}')

    def __init__(
        self, chunk: str, entity_types: Sequence[str], producible: Collection[str] | None = None
    ) -> None:
        self.text = ChunkText(chunk, producible)
        self.types = {escaped(t): t for t in entity_types}
        self.longest_type = max((len(t) for t in self.types), default=0)
        self._shortest: dict[tuple[Any, ...], int | None] = {}

    # -- the claims so far

    def _cursor(self, done: tuple[Claim, ...]) -> int:
        return done[-1].start if done else 0

    def _free_types(self, done: tuple[Claim, ...], start: int, end: int) -> list[str]:
        """Types that may still claim [start, end): not taken there, and the text not yet
        listed with that type as often as it occurs (the parser's count)."""
        text = self.text.chunk[start:end]
        occurs = self.text.count(text)
        taken = {c.label for c in done if (c.start, c.end) == (start, end)}
        listed = [c.label for c in done if self.text.chunk[c.start : c.end] == text]
        return [
            label
            for label in self.types.values()
            if label not in taken and listed.count(label) < occurs
        ]

    def _free_end(self, done: tuple[Claim, ...], start: int, epos: int) -> int | None:
        """The nearest end a mention from ``start`` written up to ``epos`` can reach with
        a type still free, or None."""
        for e in self.text.ends_from(epos):
            if e > start and self._free_types(done, start, e):
                return e
        return None

    # -- the text field

    def begin_field(self, state: State, segment: int) -> tuple[Any, ...]:
        if segment == 1:
            return ()  # candidates come with the first character
        _, occurrences = state.values[0]
        free = set()
        for start, end in occurrences:
            free.update(self._free_types(state.done, start, end))
        return tuple(name for name, label in self.types.items() if label in free)

    def extend_field(self, state: State, ch: str) -> tuple[Any, ...] | None:
        if state.segment == 3:
            return _choices_after(state.options, state.typed + ch)
        esc = self.text.esc
        if not state.typed:
            cursor = self._cursor(state.done)
            found = self.text.starts.get(ch, [])
            cands = [(p, self.text.at[p] + 1) for p in found[bisect.bisect_left(found, cursor) :]]
        else:
            cands = [
                (s, e + 1)
                for s, e in state.options
                if e < len(esc) and esc[e] == ch and self.text.usable[self.text.original(e)[0]]
            ]
        # candidates that can no longer end are kept (they never complete): one that can
        # is enough to go on, and checking them all would cost every step
        if any(self._free_end(state.done, *c) is not None for c in cands):
            return tuple(cands)
        return None

    def field_value(self, state: State) -> Any | None:
        if state.segment == 3:
            return self.types[state.typed] if state.typed in state.options else None
        if not state.typed:
            return None
        occurrences = []
        for start, epos in state.options:
            end, boundary = self.text.original(epos)
            if boundary and self.text.valid_end[end] and self._free_types(state.done, start, end):
                occurrences.append((start, end))
        if not occurrences:
            return None
        start, end = occurrences[0]
        return (self.text.chunk[start:end], tuple(occurrences))

    def field_chars(self, state: State) -> Iterable[str]:
        if state.segment == 3:
            return _choice_chars(state.options, state.typed)
        if not state.typed:
            cursor = self._cursor(state.done)
            return [ch for ch, found in self.text.starts.items() if found[-1] >= cursor]
        esc = self.text.esc
        return {esc[e] for _, e in state.options if e < len(esc)}

    def field_min_rest(self, state: State) -> int:
        if state.segment == 3:
            return _choice_rest(state.options, state.typed)
        if not state.typed:
            shortest = self._shortest_mention(state.done)
            return shortest if shortest is not None else 0
        # the first candidate that can end, not the nearest of all: an upper bound is
        # enough for the budget, and along that candidate's path it falls by one a character
        for start, epos in state.options:
            end = self._free_end(state.done, start, epos)
            if end is not None:
                return self.text.at[end] - epos
        raise AssertionError("a text field always has a candidate that can end")

    def field_closing_char(self, state: State) -> str:
        if state.segment == 3:
            return _choice_closing_char(state.options, state.typed)
        if not state.typed:
            return self.text.esc[self.text.at[self._shortest_start(state.done)]]
        for start, epos in state.options:  # the first candidate that can end, as min_close
            if self._free_end(state.done, start, epos) is not None:
                return self.text.esc[epos]
        raise AssertionError("a text field always has a candidate that can end")

    def _shortest_start(self, done: tuple[Claim, ...]) -> int:
        """Where the shortest next mention (``_shortest_mention``) starts."""
        cursor, best = self._cursor(done), None
        for found in self.text.starts.values():
            for p in found[bisect.bisect_left(found, cursor) :]:
                e = self._free_end(done, p, self.text.at[p])
                size = self.text.at[e] - self.text.at[p] if e is not None else None
                if size is not None and (best is None or size < best[0]):
                    best = (size, p)
        assert best is not None
        return best[1]

    def field_bound(self, state: State, segment: int) -> int:
        if segment == 3:
            return self.longest_type
        shortest = self._shortest_mention(state.done)
        return shortest if shortest is not None else 0

    def _shortest_mention(self, done: tuple[Claim, ...]) -> int | None:
        """The fewest escaped characters of a mention that may come next (None: none)."""
        if done not in self._shortest:
            cursor, best = self._cursor(done), None
            for found in self.text.starts.values():
                for p in found[bisect.bisect_left(found, cursor) :]:
                    e = self._free_end(done, p, self.text.at[p])
                    if e is not None:
                        size = self.text.at[e] - self.text.at[p]
                        best = size if best is None else min(best, size)
            self._shortest[done] = best
        return self._shortest[done]

    def can_continue(self, state: State) -> bool:
        return self._shortest_mention(state.done) is not None

    def finish(self, state: State, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The object claims the first of its text's occurrences still free for its type."""
        (_, occurrences), label = values
        for start, end in occurrences:
            if label in self._free_types(state.done, start, end):
                return (*state.done, Claim(start, end, label))
        raise AssertionError("a finished mention always has a free occurrence")


# ---------------------------------------------------------------------- relations


class RelationGrammar(AnswerGrammar):
    """``{"head": "T1", "type": ..., "tail": "T2"}`` objects over numbered entities.

    ``labels[k]`` is the type of entity ``T{k+1}``; ``allows(type, head type, tail
    type)`` is the schema's rule. The valid triples are listed once, in the export's order
    (head number, tail number, type); each object must come after the previous one.
    """

    template = ('{"head": "T', None, '", "type": "', None, '", "tail": "T', None, '"}')

    def __init__(
        self, labels: Sequence[str], relation_types: Sequence[str], allows: Allows
    ) -> None:
        self.names = {escaped(t): t for t in relation_types}
        self.triples = sorted(
            (h, t, name)
            for h in range(1, len(labels) + 1)
            for t in range(1, len(labels) + 1)
            for name in relation_types
            if h != t and allows(name, labels[h - 1], labels[t - 1])
        )
        self.widest_number = len(str(len(labels)))
        self.longest_type = max((len(t) for t in self.names), default=0)

    def _remaining(self, done: tuple[Any, ...]) -> list[tuple[int, int, str]]:
        if not done:
            return self.triples
        return self.triples[bisect.bisect_right(self.triples, done[-1]) :]

    def _matching(self, state: State, values: tuple[Any, ...]) -> list[tuple[int, int, str]]:
        """Remaining triples agreeing with the fields given so far (head, type)."""
        out = self._remaining(state.done)
        if len(values) >= 1:
            out = [x for x in out if x[0] == values[0]]
        if len(values) >= 2:
            out = [x for x in out if x[2] == values[1]]
        return out

    def begin_field(self, state: State, segment: int) -> tuple[Any, ...]:
        matching = self._matching(state, state.values)
        if segment == 1:
            return tuple(dict.fromkeys(str(h) for h, _, _ in matching))
        if segment == 3:
            return tuple(dict.fromkeys(escaped(name) for _, _, name in matching))
        return tuple(dict.fromkeys(str(t) for _, t, _ in matching))

    def extend_field(self, state: State, ch: str) -> tuple[Any, ...] | None:
        return _choices_after(state.options, state.typed + ch)

    def field_value(self, state: State) -> Any | None:
        if state.typed not in state.options:
            return None
        return self.names[state.typed] if state.segment == 3 else int(state.typed)

    def field_chars(self, state: State) -> Iterable[str]:
        return _choice_chars(state.options, state.typed)

    def field_min_rest(self, state: State) -> int:
        return _choice_rest(state.options, state.typed)

    def field_bound(self, state: State, segment: int) -> int:
        return self.longest_type if segment == 3 else self.widest_number

    def field_closing_char(self, state: State) -> str:
        return _choice_closing_char(state.options, state.typed)

    def finish(self, state: State, values: tuple[Any, ...]) -> tuple[Any, ...]:
        head, name, tail = values
        return (*state.done, (head, tail, name))

    def can_continue(self, state: State) -> bool:
        return bool(self._remaining(state.done))
