"""The annotation loop replayed on an already annotated corpus, to compare strategies.

Round 0 trains on ``initial`` notes chosen by :func:`noteloop.core.active.cold_start` (a
seeded random draw for the ``random`` strategy) and scores the model on the test notes.
Each later round predicts the notes not yet "annotated", ranks them with the strategy,
reveals the gold of the ``batch`` best ranked, trains a **fresh** extractor from
``make_extractor()`` on everything revealed so far and scores it again. Training from
scratch every round (as the worker does) makes the rounds comparable: a point depends only
on the notes revealed, not on the path that led to them.

The result is the JSON the issue pins (:meth:`SimulationResult.to_dict`)::

    {"corpus": str, "strategy": str, "seed": int, "backend": str,
     "points": [{"round": int, "n_docs": int, "n_tokens": int, "train_seconds": float,
                 "entity": {"strict": {"p", "r", "f1"}, "lenient": {"p", "r", "f1"}},
                 "relation": {"p", "r", "f1"},
                 "effort": {...}}]}

``n_tokens`` counts whitespace tokens (words) of the training notes: a unit that does not
depend on the backend's tokenizer, so curves of two backends share an x axis.
``train_seconds`` is the wall time of the ``train()`` call, model building included.
``effort`` (:meth:`noteloop.core.effort.Effort.to_dict`) is what annotating the test notes
would take with that round's suggestions against from scratch: the actions, their
keystroke-level seconds and both totals. Results written before it existed have none.

Pure apart from the extractor the factory returns (and :func:`split_documents` reading
its split file).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from noteloop.core.active import STRATEGIES, cold_start, rank_pool, word_count
from noteloop.core.effort import Effort, note_effort
from noteloop.core.errors import ConfigError, SchemaError
from noteloop.core.metrics import PRF, evaluate
from noteloop.core.model.base import DocumentPrediction, Extractor
from noteloop.core.schema import Document, LabelSchema, RelationType

METRICS = ("entity_strict", "entity_lenient", "relation")

# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Scores:
    """Micro precision, recall and F1 of one task."""

    p: float
    r: float
    f1: float

    @classmethod
    def from_prf(cls, prf: PRF) -> Scores:
        return cls(prf.precision, prf.recall, prf.f1)

    def to_dict(self) -> dict[str, float]:
        return {"p": self.p, "r": self.r, "f1": self.f1}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Scores:
        _expect_keys(data, {"p", "r", "f1"}, where)
        return cls(*(_float(data[k], f"{where}.{k}") for k in ("p", "r", "f1")))


@dataclass(frozen=True, slots=True)
class SimulationPoint:
    """One round: how much was annotated, how long training took, the test scores."""

    round: int
    n_docs: int
    n_tokens: int
    train_seconds: float
    entity_strict: Scores
    entity_lenient: Scores
    relation: Scores
    effort: Effort | None = None  # on the test notes, with this round's suggestions

    def f1(self, metric: str = "entity_strict") -> float:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        scores: Scores = getattr(self, metric)
        return scores.f1

    def to_dict(self) -> dict[str, Any]:
        data = {
            "round": self.round,
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "train_seconds": self.train_seconds,
            "entity": {
                "strict": self.entity_strict.to_dict(),
                "lenient": self.entity_lenient.to_dict(),
            },
            "relation": self.relation.to_dict(),
        }
        if self.effort is not None:
            data["effort"] = self.effort.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "point") -> SimulationPoint:
        keys = {"round", "n_docs", "n_tokens", "train_seconds", "entity", "relation"}
        has_effort = isinstance(data, Mapping) and "effort" in data
        _expect_keys(data, keys | ({"effort"} if has_effort else set()), where)
        _expect_keys(data["entity"], {"strict", "lenient"}, f"{where}.entity")
        return cls(
            _int(data["round"], f"{where}.round"),
            _int(data["n_docs"], f"{where}.n_docs"),
            _int(data["n_tokens"], f"{where}.n_tokens"),
            _float(data["train_seconds"], f"{where}.train_seconds"),
            Scores.from_dict(data["entity"]["strict"], f"{where}.entity.strict"),
            Scores.from_dict(data["entity"]["lenient"], f"{where}.entity.lenient"),
            Scores.from_dict(data["relation"], f"{where}.relation"),
            Effort.from_dict(data["effort"], f"{where}.effort") if has_effort else None,
        )


@dataclass(frozen=True)
class SimulationResult:
    """One simulated run: a corpus, a strategy, a seed, a backend and its curve."""

    corpus: str
    strategy: str
    seed: int
    backend: str
    points: tuple[SimulationPoint, ...]
    # What reading the corpus left out or mended ({"refused_files": [...], "refused":
    # ["file:line: reason"], "notes": [...]}); empty when every file read as it was.
    corpus_read: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "corpus": self.corpus,
            "strategy": self.strategy,
            "seed": self.seed,
            "backend": self.backend,
            "points": [p.to_dict() for p in self.points],
        }
        if self.corpus_read:
            data["corpus_read"] = dict(self.corpus_read)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SimulationResult:
        """A result from its JSON form; refuses missing, extra or mistyped keys, naming them."""
        keys = {"corpus", "strategy", "seed", "backend", "points"}
        read = isinstance(data, Mapping) and "corpus_read" in data
        _expect_keys(data, keys | ({"corpus_read"} if read else set()), "result")
        if not isinstance(data["points"], list):
            raise ConfigError("result.points must be a list")
        if read and not isinstance(data["corpus_read"], Mapping):
            raise ConfigError("result.corpus_read must be an object")
        return cls(
            _str(data["corpus"], "result.corpus"),
            _str(data["strategy"], "result.strategy"),
            _int(data["seed"], "result.seed"),
            _str(data["backend"], "result.backend"),
            tuple(
                SimulationPoint.from_dict(p, f"result.points[{i}]")
                for i, p in enumerate(data["points"])
            ),
            dict(data["corpus_read"]) if read else {},
        )


def _expect_keys(data: Any, keys: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    missing, extra = sorted(keys - set(data)), sorted(set(data) - keys)
    if missing or extra:
        raise ConfigError(f"{where}: missing key(s) {missing}, unexpected key(s) {extra}")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SimulationSettings:
    """What one simulated run does; refuses a bad value naming the field."""

    strategy: str
    seed: int
    initial: int
    batch: int
    rounds: int  # rounds, round 0 included: at most this many points
    entity_types: tuple[str, ...] | None = None  # None: every type of the schema
    relations: bool = True
    corpus: str = "corpus"
    backend: str = ""  # "" = the extractor's ``backend`` attribute, else its class name

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"`strategy` must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        for name, low in (("seed", 0), ("initial", 1), ("batch", 1), ("rounds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if self.entity_types is not None:
            object.__setattr__(self, "entity_types", tuple(self.entity_types))

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["entity_types"] = None if self.entity_types is None else list(self.entity_types)
        return data


# --------------------------------------------------------------------------- restriction


def restrict_schema(
    schema: LabelSchema, entity_types: Collection[str] | None, relations: bool
) -> LabelSchema:
    """The schema with only ``entity_types`` (all when None) and, if wanted, relations.

    A relation type keeps the allowed heads/tails that survive; one whose heads (or tails)
    were all removed is dropped, since an empty list would mean "any type".

    Raises:
        SchemaError: ``entity_types`` names types the schema lacks (listed).
    """
    keep = set(schema.entity_names if entity_types is None else entity_types)
    unknown = sorted(keep - set(schema.entity_names))
    if unknown:
        raise SchemaError(f"entity type(s) not in the schema: {', '.join(unknown)}")
    kept_relations = [_narrow(rt, keep) for rt in schema.relation_types] if relations else []
    return LabelSchema(
        tuple(e for e in schema.entity_types if e.name in keep),
        tuple(rt for rt in kept_relations if rt is not None),
        schema.attributes,
    )


def _narrow(rt: RelationType, keep: set[str]) -> RelationType | None:
    heads = tuple(h for h in rt.heads if h in keep)
    tails = tuple(t for t in rt.tails if t in keep)
    if (rt.heads and not heads) or (rt.tails and not tails):
        return None
    return RelationType(rt.name, heads, tails, rt.symmetric, rt.description)


def restrict_document(
    doc: Document, entity_types: Collection[str] | None, relations: bool
) -> Document:
    """The document with spans of ``entity_types`` only (all when None); relations and
    equivalences touching a dropped span go too, and all of them when not ``relations``."""
    spans = [s for s in doc.spans if entity_types is None or s.label in entity_types]
    ids = {s.id for s in spans}
    rels = [r for r in doc.relations if relations and r.head in ids and r.tail in ids]
    eqs = [e for e in doc.equivalences if relations and set(e.members) <= ids]
    return doc.with_annotations(spans, rels, eqs)


# --------------------------------------------------------------------------- the loop

OnRound = Callable[[SimulationPoint], None]


def simulate(
    docs_train: Sequence[Document],
    docs_test: Sequence[Document],
    schema: LabelSchema,
    make_extractor: Callable[[], Extractor],
    *,
    strategy: str,
    seed: int,
    initial: int,
    batch: int,
    rounds: int,
    on_round: OnRound | None = None,
    entity_types: Collection[str] | None = None,
    relations: bool = True,
    corpus: str = "corpus",
    backend: str = "",
) -> SimulationResult:
    """Replays the annotation loop on gold notes and records a learning curve.

    Args:
        docs_train: The pool; their gold is revealed as the strategy picks them.
        docs_test: Notes that only ever measure the model.
        schema: The label schema.
        make_extractor: Returns a fresh, untrained extractor; called once per round.
        strategy: One of :data:`noteloop.core.active.STRATEGIES`.
        seed: Seed of the initial draw and of the strategy's random choices (the
            extractor's own seed is the factory's business).
        initial: Notes annotated before round 0's training.
        batch: Notes added per later round (fewer when the pool runs out).
        rounds: Rounds, round 0 included (``rounds=3``: round 0 and two rounds that add
            a batch); the run stops early when the pool is empty, so there are at most
            ``rounds`` points.
        on_round: Called with each point as soon as it is measured.
        entity_types: Keep only these entity types (in train, test and schema).
        relations: False drops every relation (and equivalence).
        corpus: The corpus name recorded in the result.
        backend: The backend name recorded; "" = the extractor's ``backend`` attribute
            or class name.

    Raises:
        ValueError: Bad settings, ``initial`` above the pool size, or no test notes.
    """
    settings = SimulationSettings(
        strategy=strategy,
        seed=seed,
        initial=initial,
        batch=batch,
        rounds=rounds,
        entity_types=None if entity_types is None else tuple(entity_types),
        relations=relations,
        corpus=corpus,
        backend=backend,
    )
    schema = restrict_schema(schema, settings.entity_types, relations)
    train = [restrict_document(d, settings.entity_types, relations) for d in docs_train]
    test = [restrict_document(d, settings.entity_types, relations) for d in docs_test]
    _check_sizes(train, test, settings)
    return _run(train, test, schema, make_extractor, settings, on_round)


def _check_sizes(train: list[Document], test: list[Document], settings: SimulationSettings) -> None:
    if not test:
        raise ConfigError("no test documents: the curve would have nothing to measure")
    if settings.initial > len(train):
        raise ConfigError(
            f"`initial` ({settings.initial}) is more than the {len(train)} training documents"
        )


def _run(
    train: list[Document],
    test: list[Document],
    schema: LabelSchema,
    make_extractor: Callable[[], Extractor],
    settings: SimulationSettings,
    on_round: OnRound | None,
) -> SimulationResult:
    labeled = _initial_picks(train, settings)
    points: list[SimulationPoint] = []
    extractor: Extractor | None = None
    for rnd in range(settings.rounds):
        if extractor is not None:
            picked = _next_batch(extractor, train, labeled, settings, rnd)
            if not picked:
                break  # the pool is exhausted
            labeled = [*labeled, *picked]
        extractor = make_extractor()
        point = _round(extractor, rnd, [train[i] for i in labeled], test, schema)
        points.append(point)
        if on_round is not None:
            on_round(point)
    backend = settings.backend or _backend_name(extractor)
    return SimulationResult(
        settings.corpus, settings.strategy, settings.seed, backend, tuple(points)
    )


def _backend_name(extractor: Extractor | None) -> str:
    name = getattr(extractor, "backend", "")
    return name if isinstance(name, str) and name else type(extractor).__name__


def _initial_picks(train: Sequence[Document], settings: SimulationSettings) -> list[int]:
    """Cold start's length-stratified picks; a plain seeded draw for ``random``."""
    if settings.strategy == "random":
        rng = np.random.default_rng(settings.seed)
        return [int(i) for i in rng.permutation(len(train))[: settings.initial]]
    return list(cold_start([d.text for d in train], settings.initial, settings.seed).indices)


def _next_batch(
    extractor: Extractor,
    train: Sequence[Document],
    labeled: Sequence[int],
    settings: SimulationSettings,
    rnd: int,
) -> list[int]:
    """Indices (into ``train``) of the next notes to reveal, ranked by the strategy."""
    taken = set(labeled)
    pool = [i for i in range(len(train)) if i not in taken]
    n = min(settings.batch, len(pool))
    if n == 0:
        return []
    seed = settings.seed * 1_000 + rnd  # a different, reproducible draw each round
    if settings.strategy == "random":
        # Random needs no model: drawing without predicting saves a pass over the pool.
        return [int(i) for i in np.random.default_rng(seed).choice(pool, n, replace=False)]
    preds, labeled_emb = _pool_predictions(extractor, train, pool, labeled, settings.strategy)
    ranking = rank_pool(
        preds,
        settings.strategy,
        n=n,
        seed=seed,
        labeled_embeddings=labeled_emb,
        lengths=[word_count(train[i].text) for i in pool],
    )
    return [pool[i] for i in ranking.indices]


def _pool_predictions(
    extractor: Extractor,
    train: Sequence[Document],
    pool: Sequence[int],
    labeled: Sequence[int],
    strategy: str,
) -> tuple[list[DocumentPrediction], list[tuple[float, ...]] | None]:
    """Predictions for the pool, and the labeled notes' embeddings when the coreset needs
    them (one predict call for both)."""
    extra = list(labeled) if strategy == "greedy-coreset" else []
    docs = [train[i].without_annotations() for i in (*pool, *extra)]
    preds = extractor.predict(docs)
    if not extra:
        return preds, None
    return preds[: len(pool)], [p.embedding for p in preds[len(pool) :]]


def _round(
    extractor: Extractor,
    rnd: int,
    docs: Sequence[Document],
    test: Sequence[Document],
    schema: LabelSchema,
) -> SimulationPoint:
    """Trains ``extractor`` on ``docs`` and scores it on ``test``."""
    start = time.perf_counter()
    extractor.train(docs, schema)
    seconds = time.perf_counter() - start
    preds = extractor.predict([d.without_annotations() for d in test])
    pred_docs = [p.as_document(d.text) for p, d in zip(preds, test, strict=True)]
    symmetric = {rt.name for rt in schema.relation_types if rt.symmetric}
    ev = evaluate(test, pred_docs, symmetric=symmetric, n_bootstrap=0)
    effort = Effort.of([
        note_effort(d, [*p.spans, *p.relations], symmetric=symmetric)
        for p, d in zip(preds, test, strict=True)
    ])
    return SimulationPoint(
        rnd,
        len(docs),
        sum(word_count(d.text) for d in docs),
        seconds,
        Scores.from_prf(ev.entity_strict),
        Scores.from_prf(ev.entity_lenient),
        Scores.from_prf(ev.relation),
        effort,
    )


# --------------------------------------------------------------------------- splits


def split_documents(
    docs: Sequence[Document],
    split_file: Path | None = None,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    absent: Collection[str] = (),
) -> tuple[list[Document], list[Document]]:
    """Splits annotated notes into (train, test), each in the order of ``docs``.

    With ``split_file`` (JSON ``{"train": [ids], "test": [ids]}``) the file decides;
    documents it does not name are left out of both. Otherwise a seeded random
    ``test_fraction`` of the notes (at least one, never all) is the test part.
    ``absent``: ids the split file may name that are not among ``docs`` (documents of
    files refused or skipped when the corpus was read); any other unknown id is an error.

    Raises:
        ValueError: A malformed split file, ids it names that are not among ``docs`` or
            that it puts in both parts (listed), fewer than two documents to split, or a
            ``test_fraction`` outside (0, 1).
    """
    if split_file is not None:
        return _split_by_file(docs, split_file, set(absent))
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(docs) < 2:
        raise ConfigError(f"need at least 2 documents to split, got {len(docs)}")
    n_test = min(max(1, round(test_fraction * len(docs))), len(docs) - 1)
    ids = sorted(d.id for d in docs)  # the draw must not depend on the input order
    test_ids = set(np.random.default_rng(seed).permutation(ids)[:n_test].tolist())
    return [d for d in docs if d.id not in test_ids], [d for d in docs if d.id in test_ids]


def _split_by_file(
    docs: Sequence[Document], path: Path, absent: set[str]
) -> tuple[list[Document], list[Document]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = {}
    for part in ("train", "test"):
        ids = data.get(part) if isinstance(data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConfigError(f"{path}: {part!r} must be a list of document ids")
        parts[part] = set(ids)
    both = sorted(parts["train"] & parts["test"])
    if both:
        raise ConfigError(f"{path}: document(s) in both train and test: {', '.join(both)}")
    unknown = sorted((parts["train"] | parts["test"]) - {d.id for d in docs} - absent)
    if unknown:
        raise ConfigError(f"{path}: unknown document id(s): {', '.join(unknown)}")
    return (
        [d for d in docs if d.id in parts["train"]],
        [d for d in docs if d.id in parts["test"]],
    )


# --------------------------------------------------------------------------- curve summaries


def _curve(
    points: Sequence[SimulationPoint | Mapping[str, Any]], metric: str
) -> list[tuple[int, float]]:
    """(n_docs, F1 of ``metric``) per point, from points or their JSON form."""
    parsed = [p if isinstance(p, SimulationPoint) else SimulationPoint.from_dict(p) for p in points]
    return [(p.n_docs, p.f1(metric)) for p in parsed]


def area_under_curve(
    points: Sequence[SimulationPoint | Mapping[str, Any]], metric: str = "entity_strict"
) -> float:
    """Normalised area under the F1 curve over n_docs: the mean F1 along the run.

    Trapezoids over the points' n_docs, divided by the n_docs range, so the value is in
    [0, 1] and runs of different lengths stay comparable only over the same range.
    A single point (or no range) gives its F1.

    Raises:
        ValueError: No points.
    """
    curve = sorted(_curve(points, metric))
    if not curve:
        raise ConfigError("no points: there is no curve to measure")
    width = curve[-1][0] - curve[0][0]
    if width == 0:
        return float(np.mean([f for _, f in curve]))
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(curve))
    return float(area / width)


def _token_curve(
    points: Sequence[SimulationPoint | Mapping[str, Any]], metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(words read, F1 of ``metric``) per point, in reading order."""
    parsed = sorted(
        (p if isinstance(p, SimulationPoint) else SimulationPoint.from_dict(p) for p in points),
        key=lambda p: p.n_tokens,
    )
    return (np.array([p.n_tokens for p in parsed], dtype=float),
            np.array([p.f1(metric) for p in parsed], dtype=float))


def common_reading(runs: Sequence[Sequence[SimulationPoint]]) -> tuple[int, int] | None:
    """The words read that every run covers: from the latest first round to the earliest
    last one. Curves against reading are compared over that budget alone: outside it some
    run has no point, and a run that read more would be credited for reading more.
    None where the runs share no range (or one has no points)."""
    if not runs or any(not points for points in runs):
        return None
    lo = max(min(p.n_tokens for p in points) for points in runs)
    hi = min(max(p.n_tokens for p in points) for points in runs)
    return (lo, hi) if lo < hi else None


def f1_at_reading(
    points: Sequence[SimulationPoint | Mapping[str, Any]], metric: str, words: Sequence[float]
) -> np.ndarray:
    """F1 of ``metric`` after reading each of ``words`` words, linear between the rounds
    (a run's F1 between two rounds is not known; the line is the usual reading of a
    learning curve). Outside the run's own range the nearest round's F1.

    Raises:
        ValueError: No points.
    """
    x, y = _token_curve(points, metric)
    if not len(x):
        raise ConfigError("no points: there is no curve to measure")
    return np.interp(np.asarray(words, dtype=float), x, y)


def area_under_reading_curve(
    points: Sequence[SimulationPoint | Mapping[str, Any]], metric: str, lo: float, hi: float
) -> float:
    """Normalised area under F1 against words read, over the budget ``[lo, hi]``: the mean
    F1 along that reading (:func:`common_reading` gives a budget shared by runs).

    Annotators are paid for reading: a strategy that picks long notes climbs faster per
    note and may not per word, which this area shows and :func:`area_under_curve` hides.

    Raises:
        ValueError: No points, or ``hi`` below ``lo``.
    """
    if hi < lo:
        raise ConfigError(f"the reading budget must run upwards, got {lo} to {hi} words")
    x, _ = _token_curve(points, metric)
    inside = x[(x > lo) & (x < hi)]
    grid = np.concatenate([[lo], inside, [hi]])
    f1 = f1_at_reading(points, metric, grid)
    if hi == lo:
        return float(f1[0])
    return float(np.trapezoid(f1, grid) / (hi - lo))


def docs_to_reach(
    points: Sequence[SimulationPoint | Mapping[str, Any]],
    fraction: float,
    full_pool_f1: float,
    metric: str = "entity_strict",
) -> int | None:
    """The fewest annotated notes at which F1 reached ``fraction`` of ``full_pool_f1``
    (the F1 of a model trained on the whole pool); None if the run never got there.

    Raises:
        ValueError: ``fraction`` outside (0, 1] or a negative ``full_pool_f1``.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    if full_pool_f1 < 0:
        raise ConfigError(f"full_pool_f1 must be >= 0, got {full_pool_f1}")
    target = fraction * full_pool_f1
    return next((n for n, f1 in sorted(_curve(points, metric)) if f1 >= target), None)
