"""Windows of encoded notes -> padded tensors; candidate pairs -> a PairBatch."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from noteloop.core.model.features import (
    IGNORE,
    EncodedDoc,
    LabelMaps,
    PairSet,
    SpanCandidates,
    gap_buckets,
)
from noteloop.core.model.heads import CandidateBatch, PairBatch

WindowRef = tuple[int, int]  # (index of the encoded document, index of its window)


@dataclass(frozen=True, slots=True)
class Specials:
    """The ids that wrap a window (``[CLS] ... [SEP]`` for BERT) and pad a batch."""

    first: int
    last: int
    pad: int


@dataclass
class Batch:
    """Padded windows; ``tags`` and ``pairs`` are present when training."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    tags: torch.Tensor | None = None
    pairs: PairBatch | None = None
    candidates: CandidateBatch | None = None

    def to(self, device: str) -> Batch:
        return Batch(
            self.input_ids.to(device),
            None if self.attention_mask is None else self.attention_mask.to(device),
            None if self.tags is None else self.tags.to(device),
            None if self.pairs is None else self.pairs.to(device),
            None if self.candidates is None else self.candidates.to(device),
        )


def window_ids(enc: EncodedDoc, w: int, specials: Specials) -> list[int]:
    window = enc.windows[w]
    return [specials.first, *enc.ids[window.start : window.end], specials.last]


# Batches are padded to a few widths only (and heads' rows to a few counts: heads.bucket).
# On CPU, torch's matmuls run on oneDNN, which compiles and caches a kernel, with its
# packed weights, for every input shape it meets: with a width per batch and a row count
# per candidate set, a 10-epoch round on 50 MACCROBAT notes met hundreds of shapes; the
# cache grew the process by 1.9 GB and training spent its time compiling.
WIDTH_STEP = 32


def padded_width(longest: int, limit: int) -> int:
    """``longest`` rounded up to a multiple of ``WIDTH_STEP``, but never past ``limit``
    (the full window, which is then a width of its own) nor below ``longest``."""
    return max(longest, min(limit, -(-longest // WIDTH_STEP) * WIDTH_STEP))


def token_batch(rows: Sequence[list[int]], pad: int, limit: int
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Right-padded ids and their attention mask; no mask when no row needs padding.

    Rows are padded to ``padded_width(longest, limit)``. Without a mask torch runs its
    fused attention kernel unmasked: ~7% faster encoding, and full windows need none.
    """
    width = padded_width(max(len(r) for r in rows), limit)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, None if all(len(r) == width for r in rows) else mask


def tag_batch(encoded: Sequence[EncodedDoc], refs: Sequence[WindowRef], width: int) -> torch.Tensor:
    """Gold tag indices aligned with ``token_batch`` rows; special tokens and padding ignored."""
    tags = torch.full((len(refs), width), IGNORE, dtype=torch.long)
    for i, (d, w) in enumerate(refs):
        window = encoded[d].windows[w]
        row = encoded[d].tags[window.start : window.end]
        tags[i, 1 : 1 + len(row)] = torch.tensor(row, dtype=torch.long)
    return tags


def _pair_columns(enc: EncodedDoc, maps: LabelMaps, pairs: PairSet, row: int, w: int):
    """The PairBatch columns of one window's pairs (positions shifted into the window)."""
    ranges = np.asarray(enc.ranges, dtype=np.int64).reshape(-1, 2)
    shift = enc.windows[w].start - 1  # - 1: the window starts with a special token
    head, tail = ranges[pairs.head] - shift, ranges[pairs.tail] - shift
    ctx_lo = np.minimum(head[:, 1], tail[:, 1])
    ctx_hi = np.maximum(np.maximum(head[:, 0], tail[:, 0]), ctx_lo)  # empty when nested
    types = np.array([maps.entity_index(s.label) for s in enc.spans], dtype=np.int64)
    return np.stack([
        np.full(len(pairs), row), head[:, 0], head[:, 1], tail[:, 0], tail[:, 1], ctx_lo,
        ctx_hi, types[pairs.head], types[pairs.tail], gap_buckets(pairs.gap, pairs.first),
        pairs.target,
    ], axis=1)


def pair_batch(
    encoded: Sequence[EncodedDoc],
    refs: Sequence[WindowRef],
    pairs: Sequence[PairSet],
    maps: LabelMaps,
) -> PairBatch | None:
    """The pairs of each window ``refs[i]`` (``pairs[i]``), positioned in batch row ``i``."""
    cols, masks = [], []
    for row, ((d, w), window_pairs) in enumerate(zip(refs, pairs, strict=True)):
        if len(window_pairs):
            cols.append(_pair_columns(encoded[d], maps, window_pairs, row, w))
            masks.append(window_pairs.mask)
    if not cols:
        return None
    table = torch.from_numpy(np.concatenate(cols).astype(np.int64)).T
    mask = torch.from_numpy(np.concatenate(masks))
    return PairBatch(*table[:10], mask=mask, target=table[10])


def candidate_batch(
    encoded: Sequence[EncodedDoc], refs: Sequence[WindowRef], cands: Sequence[SpanCandidates],
    *, with_target: bool,
) -> CandidateBatch | None:
    """The candidates of each window ``refs[i]`` (``cands[i]``), positioned in batch row
    ``i``; None when no window has any."""
    cols = []
    for row, ((d, w), c) in enumerate(zip(refs, cands, strict=True)):
        shift = encoded[d].windows[w].start - 1  # - 1: the window starts with a special token
        cols.append(np.stack([np.full(len(c), row), c.lo - shift, c.hi - shift, c.target,
                              c.second]))
    table = torch.from_numpy(np.concatenate(cols, axis=1).astype(np.int64)) if cols else None
    if table is None or not table.shape[1]:
        return None
    if not with_target:
        return CandidateBatch(table[0], table[1], table[2])
    return CandidateBatch(table[0], table[1], table[2], table[3], table[4])


def shuffled_batches(
    refs: Sequence[WindowRef], lengths: Sequence[int], size: int, rng: random.Random,
    pool: int = 16,
) -> list[list[WindowRef]]:
    """Windows in a seeded random order, cut into batches of windows of similar length.

    Shuffled, then sorted by length within pools of ``pool`` batches before cutting, and
    the batches shuffled again: batches stay random but hardly need padding (the short
    last window of each note meets other short ones).
    """
    order = list(range(len(refs)))
    rng.shuffle(order)
    batches = []
    for p in range(0, len(order), size * pool):
        chunk = sorted(order[p : p + size * pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    rng.shuffle(batches)
    return [[refs[i] for i in batch] for batch in batches]


def sample_pairs(pairs: PairSet, ratio: float, rng: random.Random) -> PairSet:
    """Every gold pair plus ``ceil(ratio * max(1, gold))`` sampled negatives (0: all)."""
    if ratio == 0:
        return pairs
    positives = np.nonzero(pairs.target)[0]
    negatives = np.nonzero(pairs.target == 0)[0].tolist()
    k = min(len(negatives), math.ceil(ratio * max(1, len(positives))))
    chosen = np.array(sorted([*positives.tolist(), *rng.sample(negatives, k)]), dtype=np.int64)
    return pairs.take(chosen)


def by_window(pairs: PairSet, n_windows: int) -> list[PairSet]:
    """The pairs split by the window they are read from."""
    return [pairs.take(np.nonzero(pairs.window == w)[0]) for w in range(n_windows)]
