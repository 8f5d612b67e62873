"""Active learning over notes: which unannotated note a person should annotate next.

**The note is the unit.** small-text's strategies rank *instances of a classifier*; here an
instance is a whole note. :class:`NoteScores` turns a model's :class:`DocumentPrediction`
into what small-text expects of a classifier's output: a ``predict_proba`` row and an
embedding. The row is built from one number, the note's **confidence** ``c`` in [0, 1]:

* ``c = min(1 - uncertainty, mean of the k least confident suggestion scores)``, spans and
  relations together (``k = ActiveConfig.least_k``); ``1 - uncertainty`` alone for a note
  with no suggestion. A note is as doubtful as its most doubtful signal: token entropy
  catches the spans the model half-saw and did not suggest; the weakest suggestions catch
  the ones it did suggest but barely. The mean of the *k weakest* keeps a long note with
  many easy items from drowning its few hard ones.
* ``predict_proba = [(1 + c) / 2, (1 - c) / 2]``: "the suggestions are right" against
  "they are not", kept in [0.5, 1] so that the first column is always the larger one. (The
  plain ``[c, 1 - c]`` would make LeastConfidence rank a note with c = 0.2 as *more* sure
  than one with c = 0.6.)

With two columns, LeastConfidence (``1 - max p = (1 - c) / 2``), PredictionEntropy and
BreakingTies (margin ``= c``) are monotone functions of ``c``: they rank the pool the same
way. They stay separate names so that a richer row (per label, per item) can later make
them differ without changing a caller.

**Strategies** (:data:`STRATEGIES`), each a real small-text class where one exists, fed by a
tiny adapter (:class:`_Precomputed`) that serves the precomputed rows:

* ``random``: ``RandomSampling``.
* ``least-confidence``, ``entropy``, ``breaking-ties``: ``LeastConfidence``,
  ``PredictionEntropy``, ``BreakingTies``; the pool is ordered by their ``score()``.
* ``embedding-kmeans``: ``EmbeddingKMeans`` picks one note per cluster of the notes'
  embeddings; ``greedy-coreset``: ``GreedyCoreset`` picks, one after the other, the note
  farthest from everything already annotated (``labeled_embeddings``) or picked.
* ``cost-aware``: uncertainty per expected minute of annotation (no small-text class).
  Clinicians take far longer on a long note, and uncertainty strategies prefer long notes
  (more places to be unsure): counting the cost buys more learning per hour of a
  clinician, which is what a project runs short of.
* ``weighted-kmeans``: both at once (no small-text class): k-means over the notes'
  embeddings with each note weighted by its uncertainty per expected minute, then the
  note with the most of it from each cluster. A batch informative per word read and
  spread over the pool, where ``cost-aware`` alone could fill it with short notes of one
  kind.

Diversity strategies choose a *set* (``n`` notes; ``ActiveConfig.diverse_batch`` when
``n`` is None), not an order: k-means' picks are ordered by uncertainty (weighted
k-means' by uncertainty per minute), the coreset's keep their greedy order, and with
``n=None`` the rest of the pool follows by uncertainty so the queue never runs dry.

**Imports.** small-text's package ``__init__`` imports its PyTorch integration whenever
torch is installed, whichever submodule one asks for (``small_text.query_strategies
.strategies`` included). The core must not load torch, so small-text is imported lazily,
inside the functions that call it (5 to 10 s the first time: torch and sklearn).
The worker, which runs the model anyway, pays that once.

Everything here works on pool *indices* (positions in the sequence given); one ``db``
function maps them to document ids.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from noteloop.core.config_fields import described, from_known_dict, help_texts
from noteloop.core.errors import ConfigError
from noteloop.core.model.base import DocumentPrediction
from noteloop.core.schema import Span

STRATEGIES = (
    "random",
    "least-confidence",
    "entropy",
    "breaking-ties",
    "embedding-kmeans",
    "greedy-coreset",
    "cost-aware",
    "weighted-kmeans",
)
_CONFIDENCE_STRATEGIES = ("least-confidence", "entropy", "breaking-ties")
# Strategies that weigh a note's uncertainty by the minutes it takes to annotate.
_PER_MINUTE_STRATEGIES = ("cost-aware", "weighted-kmeans")
# Beat random in every seed of bench/bench_active.py on MACCROBAT2020 (see bench/README.md).
DEFAULT_STRATEGY = "breaking-ties"
# The share of the queue's places the worker gives to random picks, as a guard.
DEFAULT_RANDOM_SHARE = 0.1


@dataclass(frozen=True)
class ActiveConfig:
    """How notes are scored and ranked, and when annotation stops paying off."""

    least_k: int = described(5, "Weakest suggestions whose mean scores a note's confidence.")
    diverse_batch: int = described(
        20, "Notes a diversity strategy picks when no n is given (the rest follow)."
    )
    words_per_second: float = described(
        3.0, "Default annotation speed, used until enough timings are logged."
    )
    overhead_seconds: float = described(
        30.0, "Default fixed time per note (open, read the header, submit)."
    )
    min_timings: int = described(3, "Logged (words, seconds) pairs needed to fit the time model.")
    stop_window: int = described(3, "Rounds looked back over by the stopping signal.")
    min_gain_per_10: float = described(
        0.01, "F1 gain per 10 notes below which the learning curve counts as flat."
    )
    kappa: float = described(
        0.99, "Mean Cohen's kappa between consecutive rounds' span predictions to call them stable."
    )
    delta_f: float = described(
        0.05, "Predicted F1 change between rounds below which predictions count as stable."
    )
    overall_uncertainty: float = described(
        0.05, "Mean normalised entropy of the note rows below which the model counts as sure."
    )

    def __post_init__(self) -> None:
        for name in ("least_k", "diverse_batch", "min_timings", "stop_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {value!r}")
        for name in ("words_per_second", "overhead_seconds", "min_gain_per_10"):
            _check_number(name, getattr(self, name), positive=name == "words_per_second")
        for name in ("kappa", "delta_f", "overall_uncertainty"):
            value = getattr(self, name)
            _check_number(name, value, positive=False)
            # small-text's OverallUncertainty refuses a threshold of 1.
            high_ok = name != "overall_uncertainty"
            if value > 1 or (value == 1 and not high_ok):
                bound = "[0, 1]" if high_ok else "[0, 1)"
                raise ConfigError(f"`{name}` must be in {bound}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActiveConfig:
        """The config a ``to_dict()`` gave; unknown keys are refused, missing keys default."""
        return from_known_dict(cls, data)

    @classmethod
    def help(cls) -> dict[str, str]:
        return help_texts(cls)


def _check_number(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"`{name}` must be a number {bound}, got {value!r}")


DEFAULT_CONFIG = ActiveConfig()


# --------------------------------------------------------------------------- note scores


def note_confidence(pred: DocumentPrediction, k: int = DEFAULT_CONFIG.least_k) -> float:
    """The note's confidence in [0, 1] (the rule is in the module docstring)."""
    token_confidence = 1.0 - pred.uncertainty
    scores = sorted(s.score for s in (*pred.spans, *pred.relations))
    if not scores:
        return token_confidence
    return min(token_confidence, float(np.mean(scores[:k])))


@dataclass(frozen=True, slots=True)
class NoteScores:
    """One pool note as small-text sees it: a ``predict_proba`` row and an embedding."""

    confidence: float
    embedding: tuple[float, ...]

    @property
    def uncertainty(self) -> float:
        """The expected gain of annotating the note: ``1 - confidence``."""
        return 1.0 - self.confidence

    @property
    def proba(self) -> tuple[float, float]:
        """``[(1 + c) / 2, (1 - c) / 2]``: first column always the larger (module docstring)."""
        return ((1.0 + self.confidence) / 2.0, (1.0 - self.confidence) / 2.0)

    @classmethod
    def from_prediction(
        cls, pred: DocumentPrediction, k: int = DEFAULT_CONFIG.least_k
    ) -> NoteScores:
        return cls(note_confidence(pred, k), tuple(pred.embedding))


def proba_matrix(notes: Sequence[NoteScores]) -> np.ndarray:
    """The notes' rows as an (n, 2) matrix."""
    return np.asarray([n.proba for n in notes], dtype=np.float64).reshape(len(notes), 2)


def embedding_matrix(embeddings: Sequence[Sequence[float]], role: str) -> np.ndarray:
    """Embeddings as an (n, d) matrix; every row must have the same length."""
    sizes = sorted({len(e) for e in embeddings})
    if len(sizes) > 1:
        raise ValueError(f"{role} embeddings differ in length: {sizes}")
    if sizes == [0]:
        raise ValueError(f"{role} predictions carry no embedding; diversity strategies need one")
    return np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)


class _Precomputed:
    """A stand-in for a small-text classifier that serves precomputed rows.

    The "dataset" handed to small-text is ``np.arange(rows)``: indexing it with any index
    array yields row numbers, so ``predict_proba`` and ``embed`` only look rows up.
    """

    def __init__(self, proba: np.ndarray, embeddings: np.ndarray | None = None) -> None:
        self.proba = proba
        self.embeddings = embeddings

    def predict_proba(self, dataset: np.ndarray) -> np.ndarray:
        return self.proba[np.asarray(dataset, dtype=np.int64)]

    def embed(
        self, dataset: np.ndarray, return_proba: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        if self.embeddings is None:
            raise ValueError("no embeddings were given to this adapter")
        rows = np.asarray(dataset, dtype=np.int64)
        # EmbeddingBasedQueryStrategy first asks for (embeddings, proba), and unpacks it.
        if return_proba:
            return self.embeddings[rows], self.proba[rows]
        return self.embeddings[rows]


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seeds numpy's global generator for one call, then restores it.

    small-text's RandomSampling and sklearn's KMeans (which EmbeddingKMeans builds without a
    random_state) draw from the global generator; seeding it here makes a ranking
    reproducible without leaving the caller's random state changed.
    """
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class TimingModel:
    """Expected seconds to annotate a note: ``intercept + per_word * words``."""

    intercept: float
    per_word: float
    fitted: bool  # False: the default reading speed, too few timings logged yet

    def seconds(self, words: np.ndarray) -> np.ndarray:
        return self.intercept + self.per_word * np.asarray(words, dtype=np.float64)

    def describe(self) -> str:
        source = "fitted on logged timings" if self.fitted else "default reading speed"
        return f"{self.intercept:.0f} s + {self.per_word:.2f} s/word ({source})"


# Longer is never faster: a negative fitted slope is noise in a handful of timings.
_MIN_SECONDS_PER_WORD = 0.01


def fit_timing(
    timings: Sequence[tuple[int, float]] | None, config: ActiveConfig = DEFAULT_CONFIG
) -> TimingModel:
    """A linear time model from logged ``(words, seconds)`` of submitted annotations.

    With fewer than ``config.min_timings`` pairs, the default: ``overhead_seconds`` plus
    ``words / words_per_second``. The slope is kept above a small positive floor and the
    intercept at or above zero, then the intercept is the least-squares one for that slope.
    """
    default = TimingModel(config.overhead_seconds, 1.0 / config.words_per_second, False)
    if timings is None or len(timings) < config.min_timings:
        return default
    words = np.asarray([w for w, _ in timings], dtype=np.float64)
    seconds = np.asarray([s for _, s in timings], dtype=np.float64)
    if np.any(words < 0) or np.any(seconds < 0) or not np.all(np.isfinite(seconds)):
        raise ValueError("timings must be (words >= 0, seconds >= 0) pairs")
    slope = float(np.polyfit(words, seconds, 1)[0]) if np.ptp(words) > 0 else default.per_word
    slope = max(slope, _MIN_SECONDS_PER_WORD)
    return TimingModel(max(float(np.mean(seconds - slope * words)), 0.0), slope, True)


def word_count(text: str) -> int:
    """Whitespace tokens: the length unit of timings, reasons and simulation curves."""
    return len(text.split())


# --------------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class Ranking:
    """Pool indices, most wanted first, each with a score and a reason for the queue page.

    ``scores[i]`` and ``reasons[i]`` belong to ``indices[i]``. The score is the strategy's
    own value, higher = asked first (1 - max p, entropy, 1 - margin, uncertainty per
    minute); random and diversity strategies have none per note, so theirs is the note's
    uncertainty, shown for information.
    """

    indices: tuple[int, ...]
    scores: tuple[float, ...]
    reasons: tuple[str, ...]
    strategy: str

    def __post_init__(self) -> None:
        if not len(self.indices) == len(self.scores) == len(self.reasons):
            raise ValueError("a ranking needs one score and one reason per index")


@dataclass(frozen=True)
class _Pool:
    """What every strategy may use about the pool, as arrays over pool positions."""

    notes: tuple[NoteScores, ...]
    words: np.ndarray | None
    seed: int
    config: ActiveConfig

    @property
    def size(self) -> int:
        return len(self.notes)

    @property
    def uncertainty(self) -> np.ndarray:
        return np.asarray([n.uncertainty for n in self.notes], dtype=np.float64)

    def by_uncertainty(self, exclude: Sequence[int] = ()) -> list[int]:
        """Pool positions, most uncertain first (ties: lower position first)."""
        order = np.argsort(-self.uncertainty, kind="stable")
        skip = set(exclude)
        return [int(i) for i in order if int(i) not in skip]


def rank_pool(
    predictions: Sequence[DocumentPrediction],
    strategy: str,
    *,
    n: int | None = None,
    seed: int,
    labeled_embeddings: Sequence[Sequence[float]] | None = None,
    seconds_per_note: Sequence[tuple[int, float]] | None = None,
    lengths: Sequence[int] | None = None,
    config: ActiveConfig = DEFAULT_CONFIG,
) -> Ranking:
    """Ranks the unannotated notes for annotation.

    Args:
        predictions: The current model's predictions for the pool notes; a note's index is
            its position here.
        strategy: One of :data:`STRATEGIES`.
        n: How many notes to return; None ranks the whole pool.
        seed: Seed of every random choice (random sampling, k-means).
        labeled_embeddings: Embeddings of the annotated notes (``greedy-coreset`` keeps
            away from them); None or empty: the most uncertain note seeds the coreset.
        seconds_per_note: Logged ``(words, seconds)`` of submitted annotations
            (``cost-aware``; see :func:`fit_timing`).
        lengths: Words (whitespace tokens) of each pool note; needed by ``cost-aware``,
            shown in the reasons otherwise.
        config: Scoring and ranking settings.

    Returns:
        The ranking: pool indices, scores and reasons.

    Raises:
        ValueError: An unknown strategy, a negative ``n``, lengths that do not match the
            pool, ``cost-aware`` without lengths, or embeddings of different sizes.
    """
    _check_rank_args(strategy, n, predictions, lengths)
    pool = _Pool(
        tuple(NoteScores.from_prediction(p, config.least_k) for p in predictions),
        None if lengths is None else np.asarray(lengths, dtype=np.int64),
        seed,
        config,
    )
    count = pool.size if n is None else min(n, pool.size)
    if count == 0:
        return Ranking((), (), (), strategy)
    if strategy == "cost-aware":
        return _cost_aware(pool, count, fit_timing(seconds_per_note, config))
    if strategy == "weighted-kmeans":
        timing = fit_timing(seconds_per_note, config)
        return _weighted_kmeans(predictions, pool, n, count, timing)
    if strategy in _CONFIDENCE_STRATEGIES:
        return _by_confidence(pool, strategy, count)
    if strategy == "random":
        return _random(pool, count)
    return _diverse(predictions, pool, strategy, n, labeled_embeddings)


def _check_rank_args(
    strategy: str,
    n: int | None,
    predictions: Sequence[DocumentPrediction],
    lengths: Sequence[int] | None,
) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ConfigError(f"n must be None or an integer >= 0, got {n!r}")
    if lengths is not None and len(lengths) != len(predictions):
        raise ValueError(
            f"lengths has {len(lengths)} entries for a pool of {len(predictions)} notes"
        )
    if strategy in _PER_MINUTE_STRATEGIES and lengths is None:
        raise ConfigError(f"strategy {strategy} needs the pool notes' lengths (words)")


def _reason(pool: _Pool, i: int, strategy: str, extra: str = "") -> str:
    parts = [f"uncertainty {pool.notes[i].uncertainty:.2f}"]
    if pool.words is not None:
        parts.append(f"{int(pool.words[i])} words")
    if extra:
        parts.append(extra)
    parts.append(f"strategy {strategy}")
    return ", ".join(parts)


def _ranking(
    pool: _Pool, strategy: str, order: Sequence[int] | np.ndarray, scores: np.ndarray
) -> Ranking:
    idx = tuple(int(i) for i in order)
    return Ranking(
        idx,
        tuple(float(scores[i]) for i in idx),
        tuple(_reason(pool, i, strategy) for i in idx),
        strategy,
    )


def _small_text_inputs(pool: _Pool) -> tuple[_Precomputed, np.ndarray, np.ndarray]:
    clf = _Precomputed(proba_matrix(pool.notes))
    return clf, np.arange(pool.size), np.arange(pool.size)


def _by_confidence(pool: _Pool, strategy: str, count: int) -> Ranking:
    """LeastConfidence / PredictionEntropy / BreakingTies: small-text's ``score()`` orders
    the whole pool (its ``query()`` returns an unordered top n, via argpartition)."""
    from small_text.query_strategies.strategies import (
        BreakingTies,
        LeastConfidence,
        PredictionEntropy,
    )

    classes = {
        "least-confidence": LeastConfidence,
        "entropy": PredictionEntropy,
        "breaking-ties": BreakingTies,
    }
    qs = classes[strategy]()
    clf, dataset, unlabeled = _small_text_inputs(pool)
    lower_first = qs.score(clf, dataset, unlabeled, np.empty(0, np.int64), np.empty(0, np.int64))
    order = np.argsort(lower_first, kind="stable")[:count]
    raw = np.asarray(qs.last_scores, dtype=np.float64)
    # Higher = asked first: 1 - max p, the entropy itself, 1 - margin.
    shown = raw if strategy == "entropy" else 1.0 - raw
    return _ranking(pool, strategy, order, shown)


def _random(pool: _Pool, count: int) -> Ranking:
    from small_text.query_strategies.strategies import RandomSampling

    clf, dataset, unlabeled = _small_text_inputs(pool)
    empty = np.empty(0, np.int64)
    with _numpy_seed(pool.seed):
        picked = RandomSampling().query(clf, dataset, unlabeled, empty, empty, n=count)
    return _ranking(pool, "random", picked, pool.uncertainty)


def _cost_aware(pool: _Pool, count: int, timing: TimingModel) -> Ranking:
    minutes, per_minute = _per_minute(pool, timing)
    order = np.argsort(-per_minute, kind="stable")[:count]
    return _per_minute_ranking(pool, "cost-aware", order, minutes, per_minute)


def _per_minute(pool: _Pool, timing: TimingModel) -> tuple[np.ndarray, np.ndarray]:
    """Each note's expected minutes of annotation and its uncertainty per minute."""
    assert pool.words is not None  # checked by _check_rank_args
    minutes = timing.seconds(pool.words) / 60.0
    return minutes, pool.uncertainty / np.maximum(minutes, 1e-6)


def _per_minute_ranking(
    pool: _Pool, strategy: str, order: Sequence[int] | np.ndarray, minutes: np.ndarray,
    per_minute: np.ndarray,
) -> Ranking:
    idx = tuple(int(i) for i in order)
    reasons = tuple(_reason(pool, i, strategy, f"~{minutes[i]:.1f} min expected") for i in idx)
    return Ranking(idx, tuple(float(per_minute[i]) for i in idx), reasons, strategy)


def _weighted_kmeans(
    predictions: Sequence[DocumentPrediction], pool: _Pool, n: int | None, count: int,
    timing: TimingModel,
) -> Ranking:
    """A batch that is informative per minute of reading and diverse.

    The pool's note embeddings (length-normalised) are split into k clusters by k-means
    with each note weighted by its uncertainty per expected minute of annotation, so the
    centres are drawn towards what pays per word; from each cluster the note with the
    most uncertainty per minute is taken. Uncertainty alone bought longer notes on
    MACCROBAT2020 (bench/README.md), and uncertainty per minute alone would fill a batch
    with the shortest notes of one kind; k-means keeps the batch spread over the pool.
    The picks come first, by uncertainty per minute, then every other note the same way.
    """
    minutes, per_minute = _per_minute(pool, timing)
    k = min(pool.size, n if n is not None else pool.config.diverse_batch)
    picked = _best_per_cluster(_cluster_labels(predictions, per_minute, k, pool.seed),
                               per_minute)
    chosen = set(picked)
    rest = [int(i) for i in np.argsort(-per_minute, kind="stable") if int(i) not in chosen]
    return _per_minute_ranking(pool, "weighted-kmeans", [*picked, *rest][:count], minutes,
                               per_minute)


def _cluster_labels(
    predictions: Sequence[DocumentPrediction], weights: np.ndarray, k: int, seed: int
) -> np.ndarray:
    """k-means cluster of each pool note over its unit-length embedding, ``weights``
    weighting the notes."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    emb = embedding_matrix([p.embedding for p in predictions], "pool")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    with warnings.catch_warnings():
        # fewer distinct notes than clusters: k-means says so, the duplicates share one
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=3, random_state=seed % 2**32)
        # a weight of zero (a note the model is sure of) must still place its note
        return model.fit(emb, sample_weight=weights + 1e-6).labels_


def _best_per_cluster(labels: np.ndarray, per_minute: np.ndarray) -> list[int]:
    """The note with the most uncertainty per minute of each cluster, best first."""
    best = [int(members[np.argmax(per_minute[members])])
            for members in (np.nonzero(labels == c)[0] for c in np.unique(labels))]
    return sorted(best, key=lambda i: (-per_minute[i], i))


def _diverse(
    predictions: Sequence[DocumentPrediction],
    pool: _Pool,
    strategy: str,
    n: int | None,
    labeled_embeddings: Sequence[Sequence[float]] | None,
) -> Ranking:
    """A diversity strategy's set first, then (when ``n`` is None) the rest by uncertainty."""
    pool_emb = embedding_matrix([p.embedding for p in predictions], "pool")
    labeled = _labeled_matrix(labeled_embeddings, pool_emb.shape[1])
    k = min(pool.size, n if n is not None else pool.config.diverse_batch)
    if strategy == "embedding-kmeans":
        picked = _kmeans(pool, pool_emb, labeled, k)
    else:
        picked = _coreset(pool, pool_emb, labeled, k)
    order = picked if n is not None else [*picked, *pool.by_uncertainty(exclude=picked)]
    return _ranking(pool, strategy, order, pool.uncertainty)


def _labeled_matrix(embeddings: Sequence[Sequence[float]] | None, dim: int) -> np.ndarray:
    if not embeddings:
        return np.empty((0, dim))
    labeled = embedding_matrix(embeddings, "labeled")
    if labeled.shape[1] != dim:
        raise ValueError(
            f"labeled embeddings have {labeled.shape[1]} dimensions, the pool's have {dim}"
        )
    return labeled


def _embedding_query(
    qs: Any, pool: _Pool, rows: np.ndarray, unlabeled: np.ndarray, labeled: np.ndarray, k: int
) -> list[int]:
    """Runs an EmbeddingBasedQueryStrategy over ``rows`` (pool rows, then labeled rows)."""
    proba = np.vstack([proba_matrix(pool.notes), np.tile([1.0, 0.0], (len(rows) - pool.size, 1))])
    clf = _Precomputed(proba, rows)
    y = np.zeros(len(labeled), dtype=np.int64)
    with _numpy_seed(pool.seed):
        picked = qs.query(clf, np.arange(len(rows)), unlabeled, labeled, y, n=k)
    return [int(i) for i in picked]


def _kmeans(pool: _Pool, pool_emb: np.ndarray, labeled: np.ndarray, k: int) -> list[int]:
    """One note per k-means cluster of the pool; picks ordered by uncertainty."""
    from small_text.query_strategies.strategies import EmbeddingKMeans

    rows = np.vstack([pool_emb, labeled])
    labeled_idx = np.arange(pool.size, len(rows))
    picked = set(
        _embedding_query(EmbeddingKMeans(), pool, rows, np.arange(pool.size), labeled_idx, k)
    )
    return [i for i in pool.by_uncertainty() if i in picked]


def _coreset(pool: _Pool, pool_emb: np.ndarray, labeled: np.ndarray, k: int) -> list[int]:
    """Farthest-first picks (greedy order kept), away from the annotated notes.

    small-text's greedy coreset needs at least one "covered" point; without annotated
    embeddings, the most uncertain note is picked first and plays that part.
    """
    from small_text.query_strategies.coresets import GreedyCoreset

    rows = np.vstack([pool_emb, labeled])
    first: list[int] = []
    if len(labeled) == 0:
        first = pool.by_uncertainty()[:1]
    covered = np.asarray([*first, *range(pool.size, len(rows))], dtype=np.int64)
    unlabeled = np.asarray([i for i in range(pool.size) if i not in first], dtype=np.int64)
    wanted = k - len(first)
    # query() hands back the pool unordered when asked for all of it; the farthest-first
    # order of all-but-one notes, then the one left, is the full greedy order.
    asked = wanted - 1 if 0 < wanted == len(unlabeled) else wanted
    picked = (
        _embedding_query(GreedyCoreset(), pool, rows, unlabeled, covered, asked) if asked else []
    )
    rest = [int(i) for i in unlabeled if int(i) not in set(picked)][: wanted - asked]
    return [*first, *picked, *rest]


# --------------------------------------------------------------------------- random share


def with_random_share(
    ranking: Ranking, pool_size: int, share: float, seed: int
) -> tuple[Ranking, tuple[bool, ...]]:
    """The ranking with a ``share`` of its places given to notes drawn at random from the
    pool, and which places those are (True = a random pick).

    A guard: the random picks are what the strategy's picks are compared with on the
    Dashboard, so a lead sees when the strategy does not pay. The random places are spread
    evenly (with 0.1, the 10th, 20th, ... place), so every batch an annotator takes from
    the top holds its share. A note drawn at random leaves its place further down.

    Raises:
        ValueError: ``share`` outside [0, 0.5].
    """
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 0.5:
        raise ConfigError(f"`random_share` must be a share in [0, 0.5], got {share!r}")
    # The first unplaced note of a seeded permutation is a uniform draw from the unplaced
    # ones (the strategy's places do not depend on it): one pass, not one scan per place.
    draws = iter(np.random.default_rng(seed).permutation(pool_size).tolist())
    ranked = iter(ranking.indices)
    by_index = {i: (score, reason) for i, score, reason in
                zip(ranking.indices, ranking.scores, ranking.reasons, strict=True)}
    placed: set[int] = set()
    out: list[tuple[int, float, str, bool]] = []
    for place in range(len(ranking.indices)):
        if math.floor((place + 1) * share) > math.floor(place * share):
            pick = next(i for i in draws if i not in placed)
            score, seen = by_index.get(pick, (0.0, ""))
            reason = f"random pick ({share:.0%} of the queue, a guard)"
            out.append((pick, score, f"{reason}; the strategy saw {seen}" if seen else reason,
                        True))
        else:
            pick = next(i for i in ranked if i not in placed)
            out.append((pick, *by_index[pick], False))
        placed.add(pick)
    mixed = Ranking(tuple(o[0] for o in out), tuple(o[1] for o in out),
                    tuple(o[2] for o in out), ranking.strategy)
    return mixed, tuple(o[3] for o in out)


# --------------------------------------------------------------------------- cold start


def cold_start(texts: Sequence[str], n: int | None, seed: int) -> Ranking:
    """The first notes to annotate, before any model exists: a length-stratified sample.

    The notes are sorted by length (words) and cut into ``n`` strata of (nearly) equal
    size; one note is drawn at random from each, so short, middling and long notes are all
    represented, which matters for a model that is trained in windows and for the time
    model. The picks come in a seeded random order (any prefix is still a random sample).
    No text features beyond length: they would cost a vocabulary and buy little before
    any label exists. ``n=None`` ranks the whole pool (each stratum one note).

    Raises:
        ValueError: A negative ``n``.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ConfigError(f"n must be None or an integer >= 0, got {n!r}")
    count = len(texts) if n is None else min(n, len(texts))
    if count == 0:
        return Ranking((), (), (), "cold-start")
    words = np.asarray([word_count(t) for t in texts], dtype=np.int64)
    by_length = np.argsort(words, kind="stable")
    rng = np.random.default_rng(seed)
    strata = np.array_split(by_length, count)
    picks = [(int(rng.choice(s)), number) for number, s in enumerate(strata, start=1)]
    order = rng.permutation(len(picks))
    chosen = [picks[i] for i in order]
    reasons = tuple(
        f"cold start: length stratum {number} of {count}, {words[i]} words" for i, number in chosen
    )
    return Ranking(tuple(i for i, _ in chosen), tuple(0.0 for _ in chosen), reasons, "cold-start")


# --------------------------------------------------------------------------- stopping


@dataclass(frozen=True)
class StopAdvice:
    """Whether more annotation is likely to pay off, in a sentence for the lead.

    ``checks`` holds the verdict of every criterion that could be judged (True = "stop"):
    ``curve`` (the F1 curve is flat), and with prediction history ``kappa-average``,
    ``delta-f`` and ``overall-uncertainty`` (small-text's stopping criteria).
    """

    stop: bool
    message: str
    checks: Mapping[str, bool]
    gain: float | None = None  # F1 gained over the last rounds looked at
    notes: int | None = None  # notes added over those rounds


def stopping_signal(
    curve: Sequence[tuple[int, float]],
    *,
    ci_half_width: float | None = None,
    history: Sequence[Sequence[DocumentPrediction]] | None = None,
    metric: str = "entity F1",
    config: ActiveConfig = DEFAULT_CONFIG,
) -> StopAdvice:
    """Advises whether to stop annotating, from the learning curve and the predictions.

    The curve is flat when, over the last ``config.stop_window`` rounds, F1 rose by less
    than ``min_gain_per_10`` per 10 notes *and* by less than the test set's CI half-width
    (a rise beyond the noise is real progress, even at a slow rate). When ``history`` is
    given, the predictions must also have settled: small-text's KappaAverage or DeltaFScore
    on the predicted spans of the last rounds, or OverallUncertainty on the latest note
    rows. Advice to stop needs every judged part to agree, and at least one judged.

    Args:
        curve: ``(annotated notes, F1 on the test notes)`` per round, in round order.
        ci_half_width: Half the width of the F1 95% interval on the test notes, if known.
        history: The model's predictions on one fixed set of notes (a stop set: the test
            notes or a fixed pool sample), one list per round, oldest first.
        metric: What the F1 measures, for the message.
        config: Window and thresholds.

    Raises:
        ValueError: A curve whose note counts go down.
    """
    gain, notes, flat = _curve_check(curve, ci_half_width, config)
    checks: dict[str, bool] = {} if flat is None else {"curve": flat}
    settled = _prediction_checks(history or (), config)
    checks.update(settled)
    judged = [flat] if flat is not None else []
    if settled:
        judged.append(any(settled.values()))
    stop = bool(judged) and all(judged)
    message = _stop_message(curve, gain, notes, flat, settled, ci_half_width, metric, config)
    return StopAdvice(stop, message, checks, gain, notes)


def _curve_check(
    curve: Sequence[tuple[int, float]], ci_half_width: float | None, config: ActiveConfig
) -> tuple[float | None, int | None, bool | None]:
    """(F1 gain, notes added, flat?) over the window; Nones with too short a curve."""
    counts = [n for n, _ in curve]
    if any(b < a for a, b in pairwise(counts)):
        raise ValueError(f"curve note counts must not decrease, got {counts}")
    if len(curve) <= config.stop_window:
        return None, None, None
    (n0, f0), (n1, f1) = curve[-1 - config.stop_window], curve[-1]
    gain, notes = f1 - f0, n1 - n0
    per_10 = gain / notes * 10 if notes else 0.0
    within_noise = ci_half_width is None or gain < ci_half_width
    return gain, notes, per_10 < config.min_gain_per_10 and within_noise


def _prediction_checks(
    history: Sequence[Sequence[DocumentPrediction]], config: ActiveConfig
) -> dict[str, bool]:
    """small-text's stopping criteria on the last rounds' predictions of the stop set."""
    out: dict[str, bool] = {}
    rounds = list(history)[-1 - config.stop_window :]
    if len(rounds) == config.stop_window + 1:
        vectors = span_vectors(rounds)
        if vectors.shape[1]:
            out.update(_agreement_checks(vectors, config))
    if rounds and rounds[-1]:
        out["overall-uncertainty"] = _overall_uncertainty(rounds[-1], config)
    return out


def span_vectors(rounds: Sequence[Sequence[DocumentPrediction]]) -> np.ndarray:
    """(rounds, items) 0/1 matrix: was each span predicted in each round?

    The items are every (note, label, fragments) any of the rounds predicted; this is the
    "stop set" of the stabilising-predictions criteria, for extraction: an item is a span
    some model proposed, so agreement is not inflated by the countless spans no model
    ever proposed.
    """
    keys = [{key for p in preds for key in _span_keys(p)} for preds in rounds]
    items = sorted(set().union(*keys))
    return np.asarray([[int(k in ks) for k in items] for ks in keys], dtype=np.int64).reshape(
        len(rounds), len(items)
    )


def _span_keys(pred: DocumentPrediction) -> list[tuple[Any, ...]]:
    return [
        (pred.doc_id, s.item.label, s.item.fragments)
        for s in pred.spans
        if isinstance(s.item, Span)
    ]


def _agreement_checks(vectors: np.ndarray, config: ActiveConfig) -> dict[str, bool]:
    from small_text.stopping_criteria import DeltaFScore, KappaAverage

    kappa = KappaAverage(2, window_size=config.stop_window, kappa=config.kappa)
    delta = DeltaFScore(2, window_size=config.stop_window, threshold=config.delta_f)
    verdicts = {"kappa-average": False, "delta-f": False}
    with np.errstate(divide="ignore", invalid="ignore"):  # two rounds with no span at all
        for row in vectors:
            verdicts = {
                "kappa-average": bool(kappa.stop(predictions=row)),
                "delta-f": bool(delta.stop(predictions=row)),
            }
    return verdicts


def _overall_uncertainty(preds: Sequence[DocumentPrediction], config: ActiveConfig) -> bool:
    from small_text.stopping_criteria import OverallUncertainty

    proba = proba_matrix([NoteScores.from_prediction(p, config.least_k) for p in preds])
    criterion = OverallUncertainty(2, threshold=config.overall_uncertainty)
    return bool(criterion.stop(proba=proba, indices_stopping=np.arange(len(preds))))


def _stop_message(
    curve: Sequence[tuple[int, float]],
    gain: float | None,
    notes: int | None,
    flat: bool | None,
    settled: Mapping[str, bool],
    ci_half_width: float | None,
    metric: str,
    config: ActiveConfig,
) -> str:
    if flat is None:
        head = (
            f"the curve has {len(curve)} round(s); judging it needs at least "
            f"{config.stop_window + 1}"
        )
    else:
        ci = "" if ci_half_width is None else f" (CI ±{ci_half_width:.2f})"
        head = f"the last {notes} notes raised {metric} by {gain:.3f}{ci}"
    stable = any(settled.values()) if settled else None
    if flat and stable is not False:
        return f"{head}: more annotation is unlikely to pay off"
    if flat:
        return f"{head}, but the model's suggestions are still changing: keep annotating"
    if flat is None and stable:
        return f"{head}; the model's suggestions have settled: more annotation may not pay off"
    return f"{head}: keep annotating"
