"""From per-token tag probabilities to spans, scores and a note's uncertainty (numpy only).

Decoding is constrained Viterbi: the best tag sequence in which every ``I-X`` follows a
``B-X`` or ``I-X``. Argmax per token can emit ``O I-X I-X`` or ``B-X I-Y``, which a
repair rule then splits or re-labels; choosing the best *valid* sequence instead keeps
spans whole (measured on MACCROBAT in bench/bench_encoder.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from noteloop.core.align import TokenSpan, bio_to_runs

_FORBIDDEN = -1e9


@lru_cache(maxsize=8)
def transition_mask(tags: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Additive scores (0 or -1e9): ``trans[prev, cur]`` and ``start[cur]`` (cached: read-only)."""
    k = len(tags)
    trans = np.zeros((k, k))
    start = np.zeros(k)
    for cur, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        start[cur] = _FORBIDDEN
        name = tag[2:]
        for prev, before in enumerate(tags):
            if before not in (f"B-{name}", f"I-{name}"):
                trans[prev, cur] = _FORBIDDEN
    return trans, start


def viterbi(logp: np.ndarray, trans: np.ndarray, start: np.ndarray) -> list[int]:
    """The highest-scoring tag index sequence under the transition constraints.

    Args:
        logp: (tokens, tags) log-probabilities.
        trans: (tags, tags) additive transition scores (0 allowed, -1e9 forbidden).
        start: (tags,) additive scores for the first token.
    """
    n = logp.shape[0]
    if n == 0:
        return []
    score = logp[0] + start
    back = np.empty((n, logp.shape[1]), dtype=np.int64)
    for t in range(1, n):
        total = score[:, None] + trans
        back[t] = total.argmax(axis=0)
        score = total[back[t], np.arange(total.shape[1])] + logp[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def decode_runs(
    logp: np.ndarray, tags: Sequence[str], trans: np.ndarray, start: np.ndarray
) -> list[tuple[TokenSpan, float]]:
    """Token runs of the Viterbi path, each with its mean chosen-tag probability."""
    path = viterbi(logp, trans, start)
    names = [tags[i] for i in path]
    chosen = np.exp(logp[np.arange(len(path)), path]) if path else np.zeros(0)
    return [(run, float(chosen[run.lo : run.hi].mean())) for run in bio_to_runs(names)]


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
