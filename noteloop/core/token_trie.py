"""The tokens a grammar allows next, without looking at the whole vocabulary.

Pure Python, no torch. A tokenizer's vocabulary is read once into a prefix tree of the
tokens' decoded strings (:class:`TokenTrie`); at each generation step
:meth:`TokenTrie.allowed` walks that tree and the answer grammar
(:mod:`noteloop.core.answer_grammar`) together, character by character, following only the
characters the grammar can take next. A step therefore costs the number of token
prefixes the grammar accepts (a few at a literal, a few hundred where a mention begins),
not the 49k tokens of the vocabulary.

Tokens are matched by their text, not by how the tokenizer would cut the answer: a
mention copied from the note may come out in other tokens than the note's own (``"pain``
and ``pain`` are different tokens), and any token whose text keeps the answer valid is
allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from noteloop.core.answer_grammar import AnswerGrammar, State


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # tokens whose text ends here


class TokenTrie:
    """A prefix tree over the decoded text of every usable token.

    Args:
        pieces: ``pieces[i]`` is the text of token ``i`` decoded on its own.
        skip: token ids never generated inside an answer (special tokens, and those
            whose text is not whole characters on its own, e.g. half a UTF-8 sequence).
    """

    def __init__(self, pieces: Sequence[str], skip: Iterable[int] = ()) -> None:
        self.pieces = list(pieces)
        skipped = set(skip)
        self.root = _Node()
        for i, piece in enumerate(self.pieces):
            if piece and i not in skipped:
                self._add(i, piece)
        # characters some token writes alone: the budget counts on them (answer_grammar)
        self.single_chars = frozenset(c for c, node in self.root.children.items() if node.ids)

    def _add(self, token: int, piece: str) -> None:
        node = self.root
        for ch in piece:
            node = node.children.setdefault(ch, _Node())
        node.ids.append(token)

    def allowed(self, grammar: AnswerGrammar, state: State, budget: int) -> list[int]:
        """The tokens the grammar accepts from ``state`` after which the answer can still
        be closed within ``budget - 1`` more tokens (``budget``: tokens left, this one
        included)."""
        out: list[int] = []
        stack = [(self.root, state)]
        while stack:
            node, at = stack.pop()
            for ch in grammar.next_chars(at):
                child = node.children.get(ch)
                if child is None:
                    continue
                after = grammar.step(at, ch)
                if after is None:
                    continue
                if child.ids and self._closes_in(grammar, after, budget - 1):
                    out.extend(child.ids)
                if child.children:
                    stack.append((child, after))
        return out

    def _closes_in(self, grammar: AnswerGrammar, state: State, tokens: int) -> bool:
        """Whether the answer can be closed from ``state`` within ``tokens`` tokens: by
        characters first (a token writes at least one: cheap, and enough until the
        budget runs low), else by the tokens of the grammar's closing text."""
        if grammar.min_close(state) <= tokens:
            return True
        return self.count_tokens(grammar.closing_text(state)) <= tokens

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` cut greedily, longest token first (every step of the cut
        is a token of the trie, so writing ``text`` takes at most that many)."""
        count, pos = 0, 0
        while pos < len(text):
            node, longest = self.root, 0
            for k in range(pos, len(text)):
                node = node.children.get(text[k])  # type: ignore[assignment]
                if node is None:
                    break
                if node.ids:
                    longest = k + 1 - pos
            if not longest:
                return len(text) + 1  # a character no token writes: cannot be written
            count, pos = count + 1, pos + longest
        return count
