"""The task heads over the shared encoder: BIO tagging, span enumeration, span-pair relations.

Both are plain ``nn.Module``s kept outside the encoder (not peft ``modules_to_save``): the
adapter folder then stays the standard peft layout of the bare encoder, which any peft
user can load, and the same ``heads.safetensors`` serves LoRA and full fine-tuning alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from noteloop.core.model.features import N_GAP_BUCKETS


def bucket(n: int, least: int = 64) -> int:
    """``n`` rounded up to one of 4 to 8 sizes per doubling (at most 25% more): the row
    count a head's output layer sees for ``n`` candidates. oneDNN compiles a kernel per
    input shape and keeps it (see ``batches.WIDTH_STEP``); candidate counts differ in
    every batch and every note."""
    step = max(least, 1 << max(0, n.bit_length() - 3))
    return -(-n // step) * step


def _bucketed(layer: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """``layer(rows)`` computed on ``rows`` padded with zero rows to ``bucket(len(rows))``."""
    n = rows.shape[0]
    padded = torch.cat([rows, rows.new_zeros(bucket(n) - n, *rows.shape[1:])])
    return layer(padded)[:n]


class SpanHead(nn.Module):
    """Token classification into BIO tags: dropout, then one linear layer."""

    def __init__(self, hidden: int, n_tags: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))


@dataclass
class CandidateBatch:
    """Candidate spans of a batch of windows, as index tensors: positions index the
    encoder's output (special tokens included), ``hi`` exclusive; ``target`` is the gold
    class (0: no span) and ``second`` a second gold class of the range (0: none), both
    absent when predicting."""

    window: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    target: torch.Tensor | None = None
    second: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.window.shape[0])

    def to(self, device: str) -> CandidateBatch:
        return CandidateBatch(**{k: None if v is None else v.to(device)
                                 for k, v in vars(self).items()})


class EnumerationHead(nn.Module):
    """Scores "no span" and every entity type for each candidate token range.

    A candidate is read from its first and last token vectors, the mean of its tokens and
    an embedding of its width; an MLP with one hidden layer maps them to
    ``1 + len(entity types)`` logits. Candidates are scored independently, so nested and
    overlapping spans are as easy to suggest as flat ones. As in :class:`RelationHead`, the
    first layer is applied per token and gathered per candidate (a window has about 15
    candidates per token: projecting each would cost 15x more).
    """

    def __init__(self, hidden: int, n_types: int, width: int, max_tokens: int,
                 dropout: float) -> None:
        super().__init__()
        self.width = width
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(hidden, 3 * width)  # first token, last token, inside
        self.size = nn.Embedding(max_tokens + 1, width)
        self.out = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(width, n_types + 1))

    def forward(self, states: torch.Tensor, cands: CandidateBatch) -> torch.Tensor:
        parts = self.project(self.dropout(states)).float().split(self.width, dim=-1)
        first, last, inside = parts
        cumsum = torch.cat([torch.zeros_like(inside[:, :1]), inside.cumsum(dim=1)], dim=1)
        w, lo, hi = cands.window, cands.lo, cands.hi
        size = (hi - lo).clamp(max=self.size.num_embeddings - 1)
        hidden = (_rows(first, w, lo) + _rows(last, w, hi - 1) + _pool_mean(cumsum, w, lo, hi)
                  + self.size(size))
        return _bucketed(self.out, hidden)


@dataclass
class PairBatch:
    """Candidate span pairs of a batch of windows, as index tensors.

    Token positions index the encoder's output (special tokens included); ``*_hi`` and
    ``ctx_hi`` are exclusive. ``ctx`` is the stretch between the two spans (may be empty).
    """

    window: torch.Tensor
    head_lo: torch.Tensor
    head_hi: torch.Tensor
    tail_lo: torch.Tensor
    tail_hi: torch.Tensor
    ctx_lo: torch.Tensor
    ctx_hi: torch.Tensor
    head_type: torch.Tensor
    tail_type: torch.Tensor
    gap: torch.Tensor
    mask: torch.Tensor  # (pairs, classes) bool: classes the schema allows for the pair
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.window.shape[0])

    def to(self, device: str) -> PairBatch:
        return PairBatch(**{k: v.to(device) for k, v in vars(self).items()})


def _rows(part: torch.Tensor, win: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``part[win, pos]``: the vector at each (window, position), gathered with
    ``index_select``. Not by indexing: on CPU the backward pass of indexing with tensors
    adds into the gradient from several threads at once, in an order that varies with
    the machine's load, so the same seed did not always train the same weights."""
    return part.flatten(0, 1).index_select(0, win * part.shape[1] + pos)


def _pool_mean(cumsum: torch.Tensor, win: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
    """Mean of the vectors ``[lo, hi)`` of each pair's window (from a cumulative sum along
    the window with a leading zero row); zeros where the range is empty."""
    total = _rows(cumsum, win, hi) - _rows(cumsum, win, lo)
    length = (hi - lo).clamp(min=1).unsqueeze(-1).to(total.dtype)
    return total / length


class RelationHead(nn.Module):
    """Scores "no relation" and every relation type for a (head span, tail span) pair.

    A pair is read from its window's token vectors: the head's and the tail's first and
    last tokens, the mean of the tokens between them (the context that usually says how
    they relate), both entity types and a signed distance bucket. With ``rich`` features it
    also reads the mean of each span's own tokens and their product (how the two spans'
    meanings combine, which a sum of per-span parts cannot express: a dose relates to a
    drug, not to a symptom of the same type pair). An MLP with one hidden layer maps them
    to ``1 + len(relation types)`` logits; classes the schema forbids for the pair are
    masked to -inf.

    The MLP's first layer over the concatenated parts is computed part by part, as a sum
    of per-part linear maps: the token parts are projected once per *token* and gathered
    per pair, instead of projecting a 5 x hidden vector once per *pair*. The same function,
    with about 4x fewer operations (MACCROBAT notes have ~4 candidate pairs per token);
    the type and distance parts are embeddings of the hidden width directly.
    """

    def __init__(
        self, hidden: int, n_types: int, n_classes: int, width: int, dropout: float,
        rich: bool = False,
    ) -> None:
        super().__init__()
        self.width, self.rich = width, rich
        self.dropout = nn.Dropout(dropout)
        # head first/last, tail first/last, between; rich: head and tail inside, and the
        # two factors of their product
        self.project = nn.Linear(hidden, (9 if rich else 5) * width)
        self.head_type = nn.Embedding(n_types + 1, width)  # + 1: a label the schema lacks
        self.tail_type = nn.Embedding(n_types + 1, width)
        self.gap = nn.Embedding(2 * N_GAP_BUCKETS, width)
        self.out = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(self, states: torch.Tensor, pairs: PairBatch) -> torch.Tensor:
        # float32 parts: under bfloat16 autocast a running sum over a window's tokens
        # would lose the context mean's precision.
        parts = self.project(self.dropout(states)).float().split(self.width, dim=-1)
        head_first, head_last, tail_first, tail_last, between = parts[:5]
        w = pairs.window
        hidden = (
            _rows(head_first, w, pairs.head_lo) + _rows(head_last, w, pairs.head_hi - 1)
            + _rows(tail_first, w, pairs.tail_lo) + _rows(tail_last, w, pairs.tail_hi - 1)
            + _pool_mean(_cumsum(between), w, pairs.ctx_lo, pairs.ctx_hi)
            + self.head_type(pairs.head_type) + self.tail_type(pairs.tail_type)
            + self.gap(pairs.gap)
        )
        if self.rich:
            hidden = hidden + self._inside(parts[5:], pairs)
        return _bucketed(self.out, hidden).masked_fill(~pairs.mask, float("-inf"))

    def _inside(self, parts: tuple[torch.Tensor, ...], pairs: PairBatch) -> torch.Tensor:
        """The spans' own tokens: each span's mean, and the product of their means."""
        head_inside, tail_inside, head_factor, tail_factor = (_cumsum(p) for p in parts)
        w = pairs.window
        head, tail = (pairs.head_lo, pairs.head_hi), (pairs.tail_lo, pairs.tail_hi)
        return (
            _pool_mean(head_inside, w, *head) + _pool_mean(tail_inside, w, *tail)
            + _pool_mean(head_factor, w, *head) * _pool_mean(tail_factor, w, *tail)
        )


def _cumsum(part: torch.Tensor) -> torch.Tensor:
    """Cumulative sum along each window, with a leading zero row (for ``_pool_mean``)."""
    return torch.cat([torch.zeros_like(part[:, :1]), part.cumsum(dim=1)], dim=1)
