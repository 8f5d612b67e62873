"""The simulated annotation loop, its JSON, its curve summaries and the HTML report.

A fake extractor (it memorises its training spans and finds them again by string match)
makes the fast tests; one slow test replays three rounds with the real encoder on the
sample notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import FakeConfig

from noteloop.core.active import STRATEGIES
from noteloop.core.curves import auc_table, effort_table, summarise
from noteloop.core.effort import Action
from noteloop.core.model.base import DocumentPrediction, Extractor, TrainSummary
from noteloop.core.schema import (
    Document,
    EntityType,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    Suggestion,
)
from noteloop.core.simulate import (
    SimulationPoint,
    SimulationResult,
    area_under_curve,
    area_under_reading_curve,
    common_reading,
    docs_to_reach,
    f1_at_reading,
    restrict_schema,
    simulate,
    split_documents,
)
from noteloop.usecases.reports import simulation_report

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_notes"

SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Problem")),
    (RelationType("treats", heads=("Drug",), tails=("Problem",)),),
)
DRUGS = [f"drug{c}" for c in "abcdefghijklmnopqrstuvwx"]
PROBLEMS = [f"problem{c}" for c in "abcdefghijkl"]


class MemoryExtractor:
    """A test double whose quality grows with its training set: it predicts the
    (label, string) spans it was shown wherever the string occurs, and a relation between
    two of them when the words between them are those of a relation it was shown."""

    backend = "memory"

    def __init__(self) -> None:
        self.config = FakeConfig()
        self.spans: set[tuple[str, str]] = set()
        self.relations: set[tuple[str, ...]] = set()
        self.trained_on: list[str] = []

    def train(self, docs, schema, *, on_metric=None, should_stop=None, start=None
              ) -> TrainSummary:
        allowed = set(schema.entity_names)
        for doc in docs:
            text = {s.id: s.text_in(doc.text) for s in doc.spans}
            self.spans |= {(s.label, text[s.id]) for s in doc.spans if s.label in allowed}
            self.relations |= {_relation_key(doc, r.label, r.head, r.tail) for r in doc.relations}
        self.trained_on = [d.id for d in docs]
        return TrainSummary(1, 1, 0.0, 0.0, len(docs), 0, "cpu")

    def predict(
        self, docs, *, batch_size=32, on_progress=None, given_spans=False
    ) -> list[DocumentPrediction]:
        return [self._predict(doc) for doc in docs]

    def _predict(self, doc: Document) -> DocumentPrediction:
        found = []
        for label, string in sorted(self.spans):
            for m in re.finditer(rf"\b{re.escape(string)}\b", doc.text):
                found.append((m.start(), m.end(), label))
        spans = [Span(f"S{i + 1}", label, a, b) for i, (a, b, label) in enumerate(sorted(found))]
        found_doc = doc.with_annotations(spans)
        pairs = [
            (label, h.id, t.id)
            for h in spans
            for t in spans
            for label in ("treats",)
            if _relation_key(found_doc, label, h.id, t.id) in self.relations
        ]
        rels = [Relation(f"R{k + 1}", *pair) for k, pair in enumerate(pairs)]
        words = doc.text.split()
        known = {s for _, s in self.spans}
        unseen = sum(w.strip(".,") not in known for w in words if w.startswith(("drug", "problem")))
        mentions = sum(w.startswith(("drug", "problem")) for w in words) or 1
        return DocumentPrediction(
            doc.id,
            tuple(Suggestion(s, 0.9) for s in spans),
            tuple(Suggestion(r, 0.8) for r in rels),
            unseen / mentions,
            _hashed_embedding(words),
        )

    def save(self, path: Path) -> None:  # pragma: no cover - not used by the simulator
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> MemoryExtractor:  # pragma: no cover
        raise NotImplementedError


def _relation_key(doc: Document, label: str, head: str, tail: str) -> tuple[str, ...]:
    """A relation as its label, argument labels and the words between the arguments."""
    h, t = doc.span(head), doc.span(tail)
    return (label, h.label, t.label, doc.text[h.end : t.start] if h.end <= t.start else "")


def _hashed_embedding(words: Sequence[str], dim: int = 8) -> tuple[float, ...]:
    vec = np.zeros(dim)
    for w in words:
        vec[sum(map(ord, w)) % dim] += 1.0
    return tuple(float(v) for v in vec)


def make_doc(i: int, rng: np.random.Generator) -> Document:
    drugs = rng.choice(DRUGS, 3, replace=False)
    # Each drug treats one problem, so that a relation seen once can be seen again.
    treated = PROBLEMS[DRUGS.index(drugs[0]) % len(PROBLEMS)]
    problems = [treated, rng.choice([p for p in PROBLEMS if p != treated])]
    filler = " ".join(["stable"] * int(rng.integers(1, 30)))
    parts = [
        "Patient given ",
        drugs[0],
        " for ",
        problems[0],
        ". Also ",
        drugs[1],
        " and ",
        drugs[2],
        ". History of ",
        problems[1],
        ". ",
        filler,
    ]
    text = "".join(parts)
    spans: list[Span] = []
    pos = 0
    for k, part in enumerate(parts):
        if k in (1, 3, 5, 7, 9):
            label = "Drug" if part.startswith("drug") else "Problem"
            spans.append(Span(f"T{len(spans) + 1}", label, pos, pos + len(part)))
        pos += len(part)
    return Document(f"doc{i:02d}", text, tuple(spans), (Relation("R1", "treats", "T1", "T2"),))


def corpus(n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [make_doc(i, rng) for i in range(n)]


# --------------------------------------------------------------------------- the loop


def test_simulation_json_has_exactly_the_pinned_keys_and_types():
    result = simulate(
        corpus(20, 1),
        corpus(8, 2),
        SCHEMA,
        MemoryExtractor,
        strategy="least-confidence",
        seed=3,
        initial=2,
        batch=3,
        rounds=5,
        corpus="toy",
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"corpus", "strategy", "seed", "backend", "points"}
    assert (data["corpus"], data["strategy"], data["seed"], data["backend"]) == (
        "toy",
        "least-confidence",
        3,
        "memory",
    )
    assert len(data["points"]) == 5
    prf = {"p", "r", "f1"}
    for k, point in enumerate(data["points"]):
        assert set(point) == {
            "round", "n_docs", "n_tokens", "train_seconds", "entity", "relation", "effort"
        }
        assert point["effort"]["notes"] == 8
        assert set(point["entity"]) == {"strict", "lenient"}
        assert set(point["entity"]["strict"]) == set(point["entity"]["lenient"]) == prf
        assert set(point["relation"]) == prf
        assert point["round"] == k
        assert point["n_docs"] == 2 + 3 * k
        assert type(point["n_tokens"]) is int and point["n_tokens"] > 0
        assert type(point["train_seconds"]) is float
        for scores in (point["entity"]["strict"], point["entity"]["lenient"], point["relation"]):
            assert all(type(v) is float and 0.0 <= v <= 1.0 for v in scores.values())
    assert SimulationResult.from_dict(data) == result
    # results written before the effort existed still read
    for point in data["points"]:
        del point["effort"]
    assert SimulationResult.from_dict(data).points[0].effort is None


def test_each_round_prices_the_test_notes_with_its_suggestions_against_from_scratch():
    result = simulate(corpus(20, 1), corpus(8, 2), SCHEMA, MemoryExtractor,
                      strategy="random", seed=0, initial=2, batch=6, rounds=4)
    efforts = [p.effort for p in result.points]
    assert all(e is not None for e in efforts)
    # the same test gold every round: from scratch never changes
    assert len({round(e.scratch_seconds, 6) for e in efforts}) == 1
    # a model that remembers more suggests more of the gold: less work each round
    shares = [e.share for e in efforts]
    assert shares == sorted(shares, reverse=True) and shares[-1] < shares[0]
    assert efforts[-1].actions.get(Action.ACCEPT, 0) + efforts[-1].actions.get(
        Action.BULK_ACCEPT, 0) > efforts[0].actions.get(Action.ACCEPT, 0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_learns_as_the_gold_set_grows(strategy):
    result = simulate(
        corpus(24, 1),
        corpus(8, 2),
        SCHEMA,
        MemoryExtractor,
        strategy=strategy,
        seed=0,
        initial=2,
        batch=4,
        rounds=4,
    )
    f1 = [p.entity_strict.f1 for p in result.points]
    assert [p.n_docs for p in result.points] == [2, 6, 10, 14]
    assert all(b >= a for a, b in pairwise(f1))
    assert f1[-1] > f1[0]
    assert result.points[-1].relation.f1 > result.points[0].relation.f1


def test_each_round_trains_a_fresh_extractor_on_every_revealed_note():
    made: list[MemoryExtractor] = []
    seen: list[SimulationPoint] = []

    def factory() -> Extractor:
        made.append(MemoryExtractor())
        return made[-1]

    train = corpus(12, 1)
    result = simulate(
        train,
        corpus(4, 2),
        SCHEMA,
        factory,
        strategy="entropy",
        seed=0,
        initial=3,
        batch=2,
        rounds=3,
        on_round=seen.append,
    )
    assert len(made) == 3 and len({id(m) for m in made}) == 3
    assert list(result.points) == seen
    sizes = [len(m.trained_on) for m in made]
    assert sizes == [3, 5, 7]
    assert set(made[0].trained_on) < set(made[1].trained_on) < set(made[2].trained_on)
    # n_tokens counts whitespace tokens of the training notes.
    by_id = {d.id: d for d in train}
    assert result.points[-1].n_tokens == sum(len(by_id[i].text.split()) for i in made[2].trained_on)


def test_runs_are_reproducible_by_seed():
    kwargs = {"strategy": "random", "initial": 2, "batch": 3, "rounds": 4}
    a = simulate(corpus(20, 1), corpus(6, 2), SCHEMA, MemoryExtractor, seed=4, **kwargs)
    b = simulate(corpus(20, 1), corpus(6, 2), SCHEMA, MemoryExtractor, seed=4, **kwargs)
    strip = [(p.n_docs, p.n_tokens, p.entity_strict) for p in a.points]
    assert strip == [(p.n_docs, p.n_tokens, p.entity_strict) for p in b.points]


def test_the_run_stops_when_the_pool_runs_out():
    result = simulate(
        corpus(6, 1),
        corpus(3, 2),
        SCHEMA,
        MemoryExtractor,
        strategy="breaking-ties",
        seed=0,
        initial=2,
        batch=3,
        rounds=6,
    )
    assert [p.n_docs for p in result.points] == [2, 5, 6]


def test_entity_types_and_relations_can_be_left_out():
    only_drugs = simulate(
        corpus(10, 1),
        corpus(4, 2),
        SCHEMA,
        MemoryExtractor,
        strategy="random",
        seed=0,
        initial=4,
        batch=2,
        rounds=2,
        entity_types=["Drug"],
    )
    assert only_drugs.points[-1].entity_strict.f1 > 0
    assert only_drugs.points[-1].relation.f1 == 0.0  # treats lost its tails: no relation
    no_relations = simulate(
        corpus(10, 1),
        corpus(4, 2),
        SCHEMA,
        MemoryExtractor,
        strategy="random",
        seed=0,
        initial=4,
        batch=2,
        rounds=2,
        relations=False,
    )
    assert no_relations.points[-1].relation.to_dict() == {"p": 0.0, "r": 0.0, "f1": 0.0}
    assert restrict_schema(SCHEMA, ["Drug"], True).relation_types == ()
    with pytest.raises(ValueError, match="entity type\\(s\\) not in the schema: Dose"):
        restrict_schema(SCHEMA, ["Drug", "Dose"], True)


def test_bad_settings_are_refused_naming_the_field():
    args = (corpus(4, 1), corpus(2, 2), SCHEMA, MemoryExtractor)
    with pytest.raises(ValueError, match="`strategy` must be one of random, "):
        simulate(*args, strategy="bald", seed=0, initial=1, batch=1, rounds=1)
    with pytest.raises(ValueError, match="`batch` must be an integer >= 1, got 0"):
        simulate(*args, strategy="random", seed=0, initial=1, batch=0, rounds=1)
    with pytest.raises(ValueError, match="`rounds` must be an integer >= 1, got 0"):
        simulate(*args, strategy="random", seed=0, initial=1, batch=1, rounds=0)
    with pytest.raises(ValueError, match=r"`initial` \(5\) is more than the 4 training documents"):
        simulate(*args, strategy="random", seed=0, initial=5, batch=1, rounds=1)
    with pytest.raises(ValueError, match="no test documents"):
        simulate(
            corpus(4, 1),
            [],
            SCHEMA,
            MemoryExtractor,
            strategy="random",
            seed=0,
            initial=1,
            batch=1,
            rounds=1,
        )


def test_from_dict_refuses_a_changed_shape():
    data = simulate(
        corpus(4, 1),
        corpus(2, 2),
        SCHEMA,
        MemoryExtractor,
        strategy="random",
        seed=0,
        initial=2,
        batch=1,
        rounds=1,
    ).to_dict()
    data["points"][0]["ci"] = [0.1, 0.2]
    with pytest.raises(ValueError, match=r"result.points\[0\]: missing key\(s\) \[\], unexp"):
        SimulationResult.from_dict(data)
    del data["points"][0]["ci"]
    data["points"][0]["n_docs"] = 2.0
    with pytest.raises(ValueError, match=r"result.points\[0\].n_docs must be an integer"):
        SimulationResult.from_dict(data)


# --------------------------------------------------------------------------- splits


def test_split_file_decides_and_unknown_ids_are_named(tmp_path):
    docs = corpus(6, 1)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["doc00", "doc02"], "test": ["doc05"]}))
    train, test = split_documents(docs, split)
    assert [d.id for d in train] == ["doc00", "doc02"]
    assert [d.id for d in test] == ["doc05"]
    split.write_text(json.dumps({"train": ["doc00", "nope", "zzz"], "test": ["doc05"]}))
    with pytest.raises(ValueError, match="unknown document id\\(s\\): nope, zzz"):
        split_documents(docs, split)
    split.write_text(json.dumps({"train": ["doc00"], "test": ["doc00"]}))
    with pytest.raises(ValueError, match="in both train and test: doc00"):
        split_documents(docs, split)
    split.write_text(json.dumps({"train": ["doc00"]}))
    with pytest.raises(ValueError, match="'test' must be a list of document ids"):
        split_documents(docs, split)


def test_random_split_is_seeded_disjoint_and_order_independent():
    docs = corpus(12, 1)
    train, test = split_documents(docs, test_fraction=0.25, seed=3)
    assert len(test) == 3 and len(train) == 9
    assert not {d.id for d in train} & {d.id for d in test}
    again = split_documents(list(reversed(docs)), test_fraction=0.25, seed=3)[1]
    assert {d.id for d in again} == {d.id for d in test}
    with pytest.raises(ValueError, match="test_fraction must be in \\(0, 1\\)"):
        split_documents(docs, test_fraction=1.0)


# --------------------------------------------------------------------------- summaries


def _points(curve: Sequence[tuple[int, float]]) -> list[dict[str, Any]]:
    zero = {"p": 0.0, "r": 0.0, "f1": 0.0}
    return [
        {
            "round": k,
            "n_docs": n,
            "n_tokens": 10 * n,
            "train_seconds": 1.0,
            "entity": {"strict": {"p": f1, "r": f1, "f1": f1}, "lenient": dict(zero)},
            "relation": dict(zero),
        }
        for k, (n, f1) in enumerate(curve)
    ]


def test_area_under_curve_is_the_normalised_trapezoid():
    points = _points([(0, 0.0), (10, 0.5), (20, 0.5)])
    # (10 * 0.25 + 10 * 0.5) / 20
    assert area_under_curve(points) == pytest.approx(0.375)
    assert area_under_curve(_points([(5, 0.4)])) == pytest.approx(0.4)
    assert area_under_curve(points, "relation") == 0.0
    with pytest.raises(ValueError, match="no points"):
        area_under_curve([])


def _read(curve: Sequence[tuple[int, int, float]]) -> list[SimulationPoint]:
    """Points of (notes, words read, strict F1)."""
    points = _points([(n, f1) for n, _, f1 in curve])
    for point, (_, words, _) in zip(points, curve, strict=True):
        point["n_tokens"] = words
    return [SimulationPoint.from_dict(p) for p in points]


def test_f1_per_word_read_is_linear_between_rounds_and_flat_outside():
    run = _read([(2, 100, 0.2), (5, 300, 0.4), (8, 700, 0.6)])
    assert f1_at_reading(run, "entity_strict", [100, 200, 500, 700]) == pytest.approx(
        [0.2, 0.3, 0.5, 0.6])
    assert f1_at_reading(run, "entity_strict", [50, 900]) == pytest.approx([0.2, 0.6])
    with pytest.raises(ValueError, match="no points"):
        f1_at_reading([], "entity_strict", [1])


def test_a_strategy_that_wins_per_note_by_reading_long_notes_loses_per_word():
    """Per note the long-note picker is ahead at every round; per word read, over the
    budget both runs cover, it is behind: the area per word says so, the one per note
    does not."""
    long_notes = _read([(2, 200, 0.2), (5, 1_000, 0.5), (8, 2_000, 0.6)])
    random = _read([(2, 200, 0.2), (5, 500, 0.4), (8, 800, 0.55)])
    assert area_under_curve(long_notes) > area_under_curve(random)
    assert common_reading([long_notes, random]) == (200, 800)
    # random over 200-800: (300 * 0.3 + 300 * 0.475) / 600; long notes read 800 words
    # at 0.2 + 0.3 * 600/800 = 0.425
    assert area_under_reading_curve(random, "entity_strict", 200, 800) == pytest.approx(0.3875)
    per_word = area_under_reading_curve(long_notes, "entity_strict", 200, 800)
    assert per_word == pytest.approx((800 - 200) * (0.2 + 0.425) / 2 / 600)
    assert per_word < 0.3875
    assert area_under_reading_curve(random, "entity_strict", 500, 500) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="must run upwards, got 800 to 200 words"):
        area_under_reading_curve(random, "entity_strict", 800, 200)


def test_runs_without_a_shared_reading_budget_have_none():
    assert common_reading([_read([(2, 100, 0.1), (4, 200, 0.2)]),
                           _read([(2, 300, 0.1), (4, 400, 0.2)])]) is None
    assert common_reading([_read([(2, 100, 0.1)]), []]) is None
    assert common_reading([]) is None


def test_docs_to_reach_a_fraction_of_the_full_pool_f1():
    points = _points([(5, 0.2), (10, 0.5), (15, 0.7), (20, 0.75)])
    assert docs_to_reach(points, 0.9, 0.8) == 20
    assert docs_to_reach(points, 0.8, 0.8) == 15
    assert docs_to_reach(points, 1.0, 0.9) is None
    with pytest.raises(ValueError, match="fraction must be in \\(0, 1\\]"):
        docs_to_reach(points, 0.0, 0.8)


# --------------------------------------------------------------------------- report


def _result(strategy: str, seed: int, curve, corpus_name: str = "toy") -> dict[str, Any]:
    return {
        "corpus": corpus_name,
        "strategy": strategy,
        "seed": seed,
        "backend": "memory",
        "points": _points(curve),
    }


def test_report_is_one_offline_html_with_every_strategy(tmp_path):
    results = [
        _result("random", 0, [(2, 0.1), (5, 0.3), (8, 0.4)]),
        _result("random", 1, [(2, 0.2), (5, 0.35), (8, 0.5)]),
        _result("entropy", 0, [(2, 0.1), (5, 0.45), (8, 0.6)]),
    ]
    out, summaries = simulation_report(results, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    assert '<script src="https://cdn.plot.ly' not in html
    assert len(html) > 1_000_000  # plotly.js is inside
    for text in ("random", "entropy", "Entity F1 (strict)", "Relation F1", "AUC",
                 "per word read", "words read (budget every run covers)"):
        assert text in html
    assert [s.name for s in summaries] == ["random", "entropy"]
    by_name = {s.name: s for s in summarise([SimulationResult.from_dict(r) for r in results])}
    band = by_name["random"].bands["entity_strict"]
    assert band.n_docs == (2, 5, 8)
    assert band.mean == pytest.approx((0.15, 0.325, 0.45))
    assert (band.low[2], band.high[2]) == (0.4, 0.5)
    assert by_name["entropy"].auc["entity_strict"][1] == 0.0  # one seed: no spread
    # every run read 10 words per note (``_points``): the common budget is 20-80 words
    reading = by_name["random"].reading["entity_strict"]
    assert (reading.words[0], reading.words[-1]) == (20, 80)
    assert reading.mean[0] == pytest.approx(0.15) and reading.mean[-1] == pytest.approx(0.45)
    assert (reading.low[-1], reading.high[-1]) == (0.4, 0.5)
    assert by_name["random"].words_read == 80
    assert by_name["entropy"].auc_reading["entity_strict"][0] == pytest.approx(
        area_under_reading_curve(results[2]["points"], "entity_strict", 20, 80))


def test_report_of_runs_with_no_shared_reading_draws_notes_alone(tmp_path):
    short = _result("random", 0, [(2, 0.1), (5, 0.3)])
    long = _result("entropy", 0, [(20, 0.3), (50, 0.5)])
    out, summaries = simulation_report([short, long], tmp_path / "report.html")
    assert out.exists()
    assert all(not s.reading and not s.auc_reading for s in summaries)
    header, rows = auc_table(summaries)
    assert rows[0][header.index("AUC Entity F1 (strict) per word")] == "-"


def test_report_draws_and_tables_the_effort_of_each_round(tmp_path):
    runs = [simulate(corpus(20, 1), corpus(8, 2), SCHEMA, MemoryExtractor, strategy="random",
                     seed=seed, initial=2, batch=6, rounds=3).to_dict() for seed in (0, 1)]
    old = _result("entropy", 0, [(2, 0.1), (8, 0.4)], corpus_name="corpus")  # no effort
    out, summaries = simulation_report([*runs, old], tmp_path / "report.html")
    assert "Time with suggestions" in out.read_text(encoding="utf-8")
    random_, entropy = summaries
    assert entropy.effort is None
    band = random_.effort
    assert band.n_docs == (2, 8, 14)
    shares = [[p["effort"]["seconds"] / p["effort"]["scratch_seconds"] for p in r["points"]]
              for r in runs]
    assert band.share == pytest.approx(tuple(np.mean(shares, axis=0)))
    assert band.low == pytest.approx(tuple(np.min(shares, axis=0)))
    header, rows = effort_table(summaries)
    assert [r[:2] for r in rows] == [["random", "2"], ["random", "8"], ["random", "14"]]
    assert rows[0][header.index("s/note from scratch")] == f"{band.scratch[0]:.0f}"


def test_report_refuses_mixed_corpora_and_duplicate_runs(tmp_path):
    mixed = [_result("random", 0, [(2, 0.1)]), _result("random", 1, [(2, 0.1)], "other")]
    with pytest.raises(ValueError, match=r"results of different corpora .*: other, toy"):
        simulation_report(mixed, tmp_path / "r.html")
    twice = [_result("random", 0, [(2, 0.1)]), _result("random", 0, [(2, 0.2)])]
    with pytest.raises(ValueError, match="run given twice: strategy random, backend memory"):
        simulation_report(twice, tmp_path / "r.html")
    with pytest.raises(ValueError, match="no simulation results"):
        simulation_report([], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- real encoder


def _sample_notes() -> tuple[list[Document], list[Document], LabelSchema]:
    from noteloop.core.formats.brat import read_brat

    docs = [
        parsed.doc
        for ann in sorted((SAMPLE / "notes").glob("*.ann"))
        for parsed in read_brat(ann.with_suffix(".txt"))
    ]
    schema = LabelSchema.from_dict(json.loads((SAMPLE / "schema.json").read_text("utf-8")))
    train, test = split_documents(docs, SAMPLE / "splits.json")
    return train, test, schema


@pytest.mark.slow
def test_three_rounds_with_the_real_encoder_raise_lenient_f1():
    from noteloop.core.model.config import EncoderConfig
    from noteloop.core.model.encoder import EncoderExtractor

    train, test, schema = _sample_notes()
    # The 12 shortest training notes as the pool: less to predict between rounds.
    pool = sorted(train, key=lambda d: len(d.text.split()))[:12]
    # One thread: on a shared 2-core machine, two torch threads next to another busy
    # process ran 7x slower (OpenMP oversubscription), one thread does not suffer that.
    config = EncoderConfig(epochs=3, window_tokens=128, window_overlap=16, seed=13, threads=1)
    result = simulate(
        pool,
        test,
        schema,
        lambda: EncoderExtractor(config),
        strategy="least-confidence",
        seed=0,
        initial=2,
        batch=3,
        rounds=3,
        corpus="sample_notes",
    )
    points = result.points
    assert [p.n_docs for p in points] == [2, 5, 8]
    assert points[-1].entity_lenient.f1 > points[0].entity_lenient.f1
    assert result.backend
