"""Constrained decoding: the torch side of :mod:`noteloop.core.answer_grammar`.

:class:`AnswerConstraint` is a transformers ``LogitsProcessor`` (``model.generate(
logits_processor=[...])``): at every step it moves each answer's grammar state by the
token just generated and sets every token the grammar refuses to ``-inf``, so greedy
decoding picks the model's favourite among the allowed ones. Which tokens are allowed
comes from :class:`noteloop.core.token_trie.TokenTrie`, built once per tokenizer
(:func:`token_trie`).

Two rules make every answer end as a closed list: when the model's favourite token is the
end of sequence while the answer is still open, the answer is marked ``closing`` (no new
object: the current one is finished and the list closed); and a token is allowed only if
the answer can still be closed within the tokens left (``max_new_tokens``), so an answer
is never cut off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from noteloop.core.answer_grammar import AnswerGrammar, State
from noteloop.core.errors import NoteloopError
from noteloop.core.token_trie import TokenTrie

_TRIES: dict[tuple[str, int], TokenTrie] = {}  # per tokenizer: built once, ~1 s
_PROBE = 'Pt had "chest pain"\n(37.5 °C), left-arm; 10 mg/kg x2\t[T1] {ok}.'


class TokenizerNotSupported(NoteloopError):
    """The tokenizer's tokens cannot be read one at a time (constrained decoding)."""


def token_trie(tokenizer: Any) -> TokenTrie:
    """The prefix tree of ``tokenizer``'s tokens, built on first use and kept.

    Raises:
        TokenizerNotSupported: decoding a text's tokens one by one does not give back the
            text (a SentencePiece tokenizer dropping leading spaces, say).
    """
    key = (str(getattr(tokenizer, "name_or_path", "")), len(tokenizer))
    if key not in _TRIES:
        pieces = [_piece(tokenizer, i) for i in range(len(tokenizer))]
        _check_pieces(tokenizer, pieces)
        special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
        # a token that is half a UTF-8 character decodes to U+FFFD: it cannot be matched
        # to text on its own
        broken = {i for i, piece in enumerate(pieces) if "\ufffd" in piece}
        _TRIES[key] = TokenTrie(pieces, special | broken)
    return _TRIES[key]


def _piece(tokenizer: Any, token: int) -> str:
    return str(
        tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    )


def _check_pieces(tokenizer: Any, pieces: Sequence[str]) -> None:
    ids = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    joined = "".join(pieces[i] for i in ids)
    if joined != _PROBE:
        raise TokenizerNotSupported(
            f"constrained decoding needs tokens that decode on their own to the text they "
            f"cut, and this tokenizer's give {joined!r} for {_PROBE!r}: set "
            f"`constrained` to false"
        )


class AnswerConstraint(LogitsProcessor):
    """Masks, at each step, the tokens that would break each row's answer grammar.

    Args:
        trie: The tokenizer's :func:`token_trie`.
        grammars: One grammar per row of the batch.
        prompt_width: Columns of the (left-padded) prompts: generated tokens follow them.
        max_new_tokens: The generation budget; answers close within it.
        eos_token_id: The end of sequence, allowed once an answer is closed.
    """

    def __init__(
        self,
        trie: TokenTrie,
        grammars: Sequence[AnswerGrammar],
        prompt_width: int,
        max_new_tokens: int,
        eos_token_id: int,
    ) -> None:
        self.trie, self.grammars = trie, list(grammars)
        self.width, self.budget, self.eos = prompt_width, max_new_tokens, eos_token_id
        self.states: list[State] = [g.start() for g in self.grammars]
        self.ended = [False] * len(self.grammars)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        last = input_ids[:, -1].tolist() if step > 0 else [None] * len(self.states)
        blocked = torch.ones_like(scores, dtype=torch.bool)
        for row, token in enumerate(last):
            if token is not None:
                self._advance(row, token)
            allowed = self._allowed(row, scores[row], self.budget - step)
            blocked[row, torch.tensor(allowed, dtype=torch.long, device=scores.device)] = False
        return scores.masked_fill(blocked, float("-inf"))

    def _advance(self, row: int, token: int) -> None:
        if self.ended[row] or token == self.eos:
            self.ended[row] = True  # generate pads a finished row: nothing more to read
            return
        state = self.grammars[row].consume(self.states[row], self.trie.pieces[token])
        if state is None:
            raise AssertionError(f"token {token} was generated against the grammar")
        self.states[row] = state

    def _allowed(self, row: int, scores: torch.Tensor, budget: int) -> list[int]:
        grammar, state = self.grammars[row], self.states[row]
        if self.ended[row] or grammar.finished(state):
            return [self.eos]
        allowed = self.trie.allowed(grammar, state, budget)
        if not state.closing and self._wants_to_stop(scores, allowed):
            # the model would end here: finish the current object and close the list
            state = self.states[row] = state.closing_now()
            allowed = self.trie.allowed(grammar, state, budget)
        # never reached (every grammar state can be closed, and a closing state was
        # allowed a token before), but an empty row would make greedy decoding pick any
        # token: end it instead, as a cut-off answer the parser reports
        return allowed or [self.eos]

    def _wants_to_stop(self, scores: torch.Tensor, allowed: list[int]) -> bool:
        """Whether greedy decoding would pick the end of sequence over every allowed token."""
        if not allowed:
            return True
        best = scores[torch.tensor(allowed, dtype=torch.long, device=scores.device)].max()
        return bool(scores[self.eos] >= best)
