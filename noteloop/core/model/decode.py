"""From per-token tag probabilities to spans, scores and a note's uncertainty (numpy only).

Decoding is constrained Viterbi: the most probable tag sequence in which every ``I-X``
follows a ``B-X`` or an ``I-X``. Argmax per token emits ``O I-X I-X`` or ``B-X I-Y``,
which a repair rule then splits or re-labels; on MACCROBAT (50 notes of training, 50 test
notes) argmax + repair scored strict F1 0.23 where Viterbi scored 0.37 with the same
model (bench notes in bench/bench_encoder.py).

BIO's constraint makes each step O(tags) instead of O(tags^2): ``O`` and ``B-X`` may follow
any tag, so their best predecessor is the best tag overall; ``I-X`` may only follow
``B-X`` or ``I-X``. Notes are decoded together, padded to the longest (padding is a
certain ``O``, which leaves every note's best path unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noteloop.core.align import TokenSpan, bio_to_runs

_IMPOSSIBLE = -1e9


def begin_of(tags: Sequence[str]) -> np.ndarray:
    """For each tag index, the index of ``B-X`` if the tag is ``I-X``, else -1."""
    index = {t: i for i, t in enumerate(tags)}
    return np.array(
        [index.get("B-" + t[2:], -1) if t.startswith("I-") else -1 for t in tags], dtype=np.int64
    )


def _pad(logps: Sequence[np.ndarray], outside: int) -> np.ndarray:
    """(notes, longest, tags) with every padded position a certain ``O``."""
    k = logps[0].shape[1]
    out = np.full((len(logps), max(len(lp) for lp in logps), k), _IMPOSSIBLE, dtype=np.float32)
    out[:, :, outside] = 0.0
    for i, lp in enumerate(logps):
        out[i, : len(lp)] = lp
    return out


def viterbi_bio(logps: Sequence[np.ndarray], tags: Sequence[str]) -> list[list[int]]:
    """The best valid BIO tag index sequence of each note.

    Args:
        logps: Per note, (tokens, tags) log-probabilities.
        tags: The tag names (``O``, ``B-X``, ``I-X``), in the columns' order.
    """
    if not logps or max(len(lp) for lp in logps) == 0:
        return [[] for _ in logps]
    begin = begin_of(tags)
    inside, starts = np.nonzero(begin >= 0)[0], begin[begin >= 0]
    free = np.nonzero(begin < 0)[0]
    x = _pad(logps, list(tags).index("O"))
    n_docs, n, _ = x.shape
    score = x[:, 0].copy()
    score[:, inside] = _IMPOSSIBLE  # nothing to continue at the first token
    back = np.zeros((n, n_docs, len(tags)), dtype=np.int32)
    for t in range(1, n):
        best = score.argmax(axis=1)
        stay = score[:, inside] >= score[:, starts]
        back[t][:, free] = best[:, None]
        back[t][:, inside] = np.where(stay, inside, starts)
        new = np.empty_like(score)
        new[:, free] = score[np.arange(n_docs), best][:, None] + x[:, t, free]
        new[:, inside] = np.maximum(score[:, inside], score[:, starts]) + x[:, t, inside]
        score = new
    return [_backtrack(back, d, int(score[d].argmax()), len(lp)) for d, lp in enumerate(logps)]


def _backtrack(back: np.ndarray, doc: int, last: int, length: int) -> list[int]:
    path = [last]
    for t in range(back.shape[0] - 1, 0, -1):
        path.append(int(back[t, doc, path[-1]]))
    return path[::-1][:length]


def runs_with_scores(
    logp: np.ndarray, path: Sequence[int], tags: Sequence[str]
) -> list[tuple[TokenSpan, float]]:
    """Token runs of a tag path, each with its mean chosen-tag probability."""
    chosen = np.exp(logp[np.arange(len(path)), path]) if len(path) else np.zeros(0)
    runs = bio_to_runs([tags[i] for i in path])
    return [(run, float(chosen[run.lo : run.hi].mean())) for run in runs]


def normalised_entropy(logp: np.ndarray) -> float:
    """Mean over tokens of the tag distribution's entropy divided by log(#tags), in [0, 1].

    The note's uncertainty: 0 when every token's tag is certain, 1 when every token's
    distribution is uniform. Averaged over tokens, so long and short notes compare.
    """
    n, k = logp.shape
    if n == 0 or k < 2:
        return 0.0
    entropy = -(np.exp(logp) * logp).sum(axis=1) / np.log(k)
    return float(np.clip(entropy.mean(), 0.0, 1.0))


def choose_spans(
    lo: np.ndarray, hi: np.ndarray, probs: np.ndarray, *, nested: bool, threshold: float = 0.5,
    second: float = 1.0,
) -> list[tuple[int, int, int, float]]:
    """The candidate spans worth suggesting, as (lo, hi, class, probability) in text order.

    A candidate is suggested when its probability of being a span of some type (one minus
    that of "no span") reaches ``threshold``, as its likeliest type: with 41 types, a
    candidate at 0.3 "no span" and 0.7 spread over three types is still a span. Candidates
    are taken most probable first; one that has the same range as a taken
    one, or crosses it (overlaps without either containing the other), is dropped: two
    readings of one stretch of text, of which the annotator should see the likelier.
    Nesting is kept ("chest" inside "chest pain") unless ``nested`` is False, then any
    overlap drops. A taken candidate is also suggested as any other type whose own
    probability reaches ``second`` (a disorder that is also history); at 0.5 or above no
    candidate can have two such types.

    Args:
        lo, hi: Token ranges ``[lo, hi)`` of the candidates.
        probs: (candidates, 1 + types) class probabilities; class 0 is "no span".
        second: The least probability of a second type of a taken candidate.
    """
    label = probs[:, 1:].argmax(axis=1) + 1 if len(probs) else np.zeros(0, dtype=np.int64)
    rows = np.nonzero(1.0 - probs[:, 0] >= threshold)[0] if len(probs) else label
    score = probs[rows, label[rows]]
    rows = rows[np.argsort(-score, kind="stable")]
    taken_lo: list[int] = []
    taken_hi: list[int] = []
    taken: list[int] = []
    for r in rows:
        if taken_lo and _conflicts(np.asarray(taken_lo), np.asarray(taken_hi), lo[r], hi[r],
                                   nested).any():
            continue
        taken.append(int(r))
        taken_lo.append(int(lo[r]))
        taken_hi.append(int(hi[r]))
    taken.sort(key=lambda r: (lo[r], -hi[r]))
    return [(int(lo[r]), int(hi[r]), int(c), float(probs[r, c]))
            for r in taken for c in _types_of(probs[r], int(label[r]), second)]


def _types_of(probs: np.ndarray, label: int, second: float) -> list[int]:
    """A taken candidate's types: its likeliest, then any other at ``second`` or above."""
    others = [c for c in np.nonzero(probs[1:] >= second)[0].tolist() if c + 1 != label]
    return [label, *(c + 1 for c in sorted(others, key=lambda c: -probs[c + 1]))]


def _conflicts(los: np.ndarray, his: np.ndarray, lo: int, hi: int, nested: bool) -> np.ndarray:
    overlap = (los < hi) & (lo < his)
    if not nested:
        return overlap
    contains = ((los <= lo) & (hi <= his)) | ((lo <= los) & (his <= hi))
    same = (los == lo) & (his == hi)
    return (overlap & ~contains) | same

