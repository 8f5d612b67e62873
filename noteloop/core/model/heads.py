"""The two task heads over the shared encoder: BIO tagging and span-pair relations.

Both are plain ``nn.Module``s kept outside the encoder (not peft ``modules_to_save``): the
adapter folder then stays the standard peft layout of the bare encoder, which any peft
user can load, and the same ``heads.safetensors`` serves LoRA and full fine-tuning alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from noteloop.core.model.features import N_GAP_BUCKETS

TYPE_DIM = 32
GAP_DIM = 16


class SpanHead(nn.Module):
    """Token classification into BIO tags: dropout, then one linear layer."""

    def __init__(self, hidden: int, n_tags: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_tags)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(states))


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


def _pool_mean(cumsum: torch.Tensor, win: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
    """Mean of the token vectors ``[lo, hi)`` of each pair's window; zeros when empty."""
    total = cumsum[win, hi] - cumsum[win, lo]
    length = (hi - lo).clamp(min=1).unsqueeze(-1).to(total.dtype)
    return total / length


class RelationHead(nn.Module):
    """Scores "no relation" and every relation type for a (head span, tail span) pair.

    Input per pair: head and tail represented by their first and last token vectors,
    the mean of the tokens between them (the context that usually says how they
    relate), both entity types' embeddings and a signed distance-bucket embedding;
    an MLP maps that to ``1 + len(relation types)`` logits. Classes the schema forbids
    for the pair are masked to -inf before the softmax.
    """

    def __init__(
        self, hidden: int, n_types: int, n_classes: int, width: int, dropout: float
    ) -> None:
        super().__init__()
        self.types = nn.Embedding(n_types + 1, TYPE_DIM)  # + 1: a label the schema lacks
        self.gaps = nn.Embedding(2 * N_GAP_BUCKETS, GAP_DIM)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(5 * hidden + 2 * TYPE_DIM + GAP_DIM, width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(width, n_classes),
        )

    def forward(self, states: torch.Tensor, pairs: PairBatch) -> torch.Tensor:
        zero = torch.zeros_like(states[:, :1])
        cumsum = torch.cat([zero, states.cumsum(dim=1)], dim=1)
        w = pairs.window
        features = torch.cat(
            [
                states[w, pairs.head_lo],
                states[w, pairs.head_hi - 1],
                states[w, pairs.tail_lo],
                states[w, pairs.tail_hi - 1],
                _pool_mean(cumsum, w, pairs.ctx_lo, pairs.ctx_hi),
                self.types(pairs.head_type),
                self.types(pairs.tail_type),
                self.gaps(pairs.gap),
            ],
            dim=-1,
        )
        logits = self.mlp(features)
        return logits.masked_fill(~pairs.mask, float("-inf"))
