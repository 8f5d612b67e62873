"""Active learning over notes: scores, strategies, cold start, stopping; no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from noteloop.core.active import (
    STRATEGIES,
    ActiveConfig,
    NoteScores,
    cold_start,
    fit_timing,
    note_confidence,
    rank_pool,
    span_vectors,
    stopping_signal,
    word_count,
)
from noteloop.core.model.base import DocumentPrediction
from noteloop.core.schema import Relation, Span, Suggestion


def pred(
    doc_id: str,
    uncertainty: float = 0.0,
    scores: tuple[float, ...] = (),
    embedding: tuple[float, ...] = (0.0, 1.0),
    relation_scores: tuple[float, ...] = (),
) -> DocumentPrediction:
    spans = tuple(
        Suggestion(Span(f"S{i + 1}", "Drug", 10 * i, 10 * i + 5), s) for i, s in enumerate(scores)
    )
    rels = tuple(
        Suggestion(Relation(f"R{i + 1}", "treats", "S1", "S2"), s)
        for i, s in enumerate(relation_scores)
    )
    return DocumentPrediction(doc_id, spans, rels, uncertainty, embedding)


# --------------------------------------------------------------------------- note scores


def test_confidence_is_the_weaker_of_token_entropy_and_the_weakest_items():
    # Mean of the k = 2 weakest items (0.2, 0.4) = 0.3, below 1 - uncertainty = 0.9.
    p = pred("a", 0.1, scores=(0.9, 0.2, 0.95), relation_scores=(0.4,))
    assert note_confidence(p, k=2) == pytest.approx(0.3)
    # No suggestion: only the token uncertainty speaks.
    assert note_confidence(pred("b", 0.25), k=2) == pytest.approx(0.75)
    # Sure items do not hide doubtful tokens.
    assert note_confidence(pred("c", 0.6, scores=(0.99,)), k=2) == pytest.approx(0.4)


def test_proba_row_keeps_the_first_column_the_larger_and_sums_to_one():
    for c in (0.0, 0.2, 0.5, 0.8, 1.0):
        row = NoteScores(c, ()).proba
        assert row[0] >= row[1]
        assert sum(row) == pytest.approx(1.0)
    assert NoteScores(0.0, ()).proba == (0.5, 0.5)


# --------------------------------------------------------------------------- strategies


def _confidence_pool() -> list[DocumentPrediction]:
    # Confidences 0.9, 0.3, 0.6, 0.75 (min rule, k = 5).
    return [
        pred("sure", 0.05, scores=(0.9,)),
        pred("doubtful", 0.1, scores=(0.3, 0.3)),
        pred("middling", 0.4),
        pred("fair", 0.1, scores=(0.75,)),
    ]


def test_least_confidence_ranks_the_least_confident_note_first():
    ranking = rank_pool(_confidence_pool(), "least-confidence", seed=0)
    assert ranking.indices == (1, 2, 3, 0)
    # Its score is small-text's 1 - max p = (1 - c) / 2, higher = asked first.
    assert ranking.scores == pytest.approx([0.35, 0.2, 0.125, 0.05])


def test_entropy_breaking_ties_and_least_confidence_agree_on_two_columns():
    pool = _confidence_pool()
    orders = {s: rank_pool(pool, s, seed=0).indices for s in _CONFIDENCE}
    assert len(set(orders.values())) == 1
    ties = rank_pool(pool, "breaking-ties", seed=0)
    assert ties.scores == pytest.approx([0.7, 0.4, 0.25, 0.1])  # 1 - margin = 1 - c
    entropy = rank_pool(pool, "entropy", seed=0).scores
    assert list(entropy) == sorted(entropy, reverse=True)
    assert entropy[0] < np.log(2)


_CONFIDENCE = ("least-confidence", "entropy", "breaking-ties")


def test_n_cuts_the_ranking_and_reasons_read_well():
    ranking = rank_pool(_confidence_pool(), "breaking-ties", n=2, seed=0, lengths=[5, 412, 9, 7])
    assert ranking.indices == (1, 2)
    assert ranking.reasons[0] == "uncertainty 0.70, 412 words, strategy breaking-ties"
    assert len(ranking.scores) == 2


def _two_clusters() -> list[DocumentPrediction]:
    rng = np.random.default_rng(3)
    preds = []
    for i in range(12):
        center = np.array([10.0, 0.0, 0.0]) if i < 6 else np.array([0.0, 0.0, 10.0])
        emb = tuple(float(v) for v in center + rng.normal(scale=0.05, size=3))
        # The uncertain notes all sit in the first cluster: uncertainty alone would take
        # two notes from it.
        preds.append(pred(f"n{i}", 0.5 if i < 6 else 0.1, embedding=emb))
    return preds


@pytest.mark.parametrize("strategy", ["embedding-kmeans", "greedy-coreset"])
def test_diversity_strategies_pick_from_both_clusters(strategy):
    picked = rank_pool(_two_clusters(), strategy, n=2, seed=1).indices
    assert len(picked) == 2
    assert {i < 6 for i in picked} == {True, False}


def test_coreset_keeps_away_from_annotated_notes():
    annotated = [(0.0, 0.0, 10.0)]  # the second cluster is already covered
    picked = rank_pool(
        _two_clusters(), "greedy-coreset", n=1, seed=0, labeled_embeddings=annotated
    ).indices
    assert picked[0] < 6


@pytest.mark.parametrize("strategy", ["embedding-kmeans", "greedy-coreset"])
def test_diversity_without_n_picks_a_set_then_the_rest_by_uncertainty(strategy):
    config = ActiveConfig(diverse_batch=2)
    ranking = rank_pool(_two_clusters(), strategy, seed=0, config=config)
    assert sorted(ranking.indices) == list(range(12))
    assert {i < 6 for i in ranking.indices[:2]} == {True, False}
    rest_uncertainty = [1 - note_confidence(_two_clusters()[i]) for i in ranking.indices[2:]]
    assert rest_uncertainty == sorted(rest_uncertainty, reverse=True)


def test_diversity_needs_embeddings_of_one_size():
    pool = [pred("a", embedding=(1.0, 2.0)), pred("b", embedding=(1.0,))]
    with pytest.raises(ValueError, match=r"pool embeddings differ in length: \[1, 2\]"):
        rank_pool(pool, "greedy-coreset", n=1, seed=0)


def test_cost_aware_prefers_a_short_uncertain_note_over_a_long_one():
    pool = [pred("long", 0.6), pred("short", 0.6), pred("sure-short", 0.05)]
    ranking = rank_pool(pool, "cost-aware", seed=0, lengths=[2000, 150, 150])
    assert ranking.indices[0] == 1
    assert ranking.indices.index(1) < ranking.indices.index(0)
    # Default speed: 30 s + 150 / 3 s = 80 s = 1.3 min.
    assert ranking.reasons[0] == (
        "uncertainty 0.60, 150 words, ~1.3 min expected, strategy cost-aware"
    )
    assert ranking.scores[0] == pytest.approx(0.6 / (80 / 60))


def test_cost_aware_uses_the_annotators_logged_times():
    # These annotators are slow per word: the fitted model makes long notes costlier.
    timings = [(100, 130.0), (200, 230.0), (400, 430.0)]
    model = fit_timing(timings)
    assert model.fitted
    assert model.per_word == pytest.approx(1.0)
    assert model.intercept == pytest.approx(30.0)
    ranking = rank_pool(
        [pred("a", 0.5)], "cost-aware", seed=0, lengths=[300], seconds_per_note=timings
    )
    assert "~5.5 min expected" in ranking.reasons[0]


def test_weighted_kmeans_takes_the_best_per_minute_note_of_each_kind():
    """Two kinds of note (embeddings far apart): cost-aware fills a batch of two with the
    short notes of one kind, weighted k-means takes the best per minute of each kind."""
    pool = [
        pred("kind-a-short", 0.6, embedding=(1.0, 0.0)),
        pred("kind-a-short-too", 0.58, embedding=(0.99, 0.05)),
        pred("kind-b-long", 0.7, embedding=(0.0, 1.0)),
        pred("kind-b-longer", 0.7, embedding=(0.05, 0.99)),
    ]
    lengths = [100, 100, 600, 900]
    assert rank_pool(pool, "cost-aware", n=2, seed=0, lengths=lengths).indices == (0, 1)
    ranking = rank_pool(pool, "weighted-kmeans", n=2, seed=0, lengths=lengths)
    assert ranking.indices == (0, 2)  # ordered by uncertainty per minute
    # Default speed: 30 s + 600 / 3 s = 230 s = 3.8 min.
    assert ranking.reasons[1] == (
        "uncertainty 0.70, 600 words, ~3.8 min expected, strategy weighted-kmeans"
    )
    assert ranking.scores[1] == pytest.approx(0.7 / (230 / 60))
    # the whole pool: two clusters (``diverse_batch``), then the rest by uncertainty
    # per minute
    two = ActiveConfig(diverse_batch=2)
    whole = rank_pool(pool, "weighted-kmeans", seed=0, lengths=lengths, config=two)
    assert whole.indices == (0, 2, 1, 3)
    assert rank_pool(pool, "weighted-kmeans", n=2, seed=5, lengths=lengths).indices == (0, 2)


def test_weighted_kmeans_with_fewer_kinds_than_picks_still_fills_the_batch():
    same = [pred(f"n{i}", 0.1 * (i + 1), embedding=(1.0, 0.0)) for i in range(4)]
    ranking = rank_pool(same, "weighted-kmeans", n=3, seed=0, lengths=[50] * 4)
    assert ranking.indices == (3, 2, 1)
    with pytest.raises(ValueError, match="strategy weighted-kmeans needs the pool notes' le"):
        rank_pool(same, "weighted-kmeans", seed=0)


def test_timing_model_defaults_and_guards():
    default = fit_timing([(100, 50.0), (200, 90.0)])  # fewer than 3: the default
    assert not default.fitted
    assert default.per_word == pytest.approx(1 / 3)
    assert default.intercept == 30.0
    noisy = fit_timing([(100, 300.0), (200, 200.0), (300, 100.0)])  # longer was faster
    assert noisy.per_word > 0
    assert noisy.intercept >= 0
    same_length = fit_timing([(100, 60.0), (100, 80.0), (100, 70.0)])
    assert same_length.seconds(np.array([100]))[0] == pytest.approx(70.0)


def test_cost_aware_needs_lengths():
    with pytest.raises(ValueError, match="strategy cost-aware needs the pool notes' lengths"):
        rank_pool([pred("a")], "cost-aware", seed=0)


def test_random_is_reproducible_by_seed_and_leaves_numpy_alone():
    pool = [pred(f"n{i}", i / 40) for i in range(20)]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = rank_pool(pool, "random", seed=7).indices
    assert np.array_equal(np.random.get_state()[1], before)
    assert rank_pool(pool, "random", seed=7).indices == first
    assert rank_pool(pool, "random", seed=8).indices != first
    assert sorted(first) == list(range(20))
    assert rank_pool(pool, "random", n=5, seed=7).indices == first[:5]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_handles_small_pools(strategy):
    lengths = [10, 20]
    assert rank_pool([], strategy, seed=0, lengths=[]).indices == ()
    one = rank_pool([pred("a", 0.3)], strategy, seed=0, lengths=[10])
    assert one.indices == (0,)
    two = [pred("a", 0.3, embedding=(1.0, 0.0)), pred("b", 0.2, embedding=(0.0, 1.0))]
    assert sorted(rank_pool(two, strategy, n=5, seed=0, lengths=lengths).indices) == [0, 1]
    assert rank_pool(two, strategy, n=0, seed=0, lengths=lengths).indices == ()


def test_bad_arguments_are_refused_with_their_names():
    with pytest.raises(ValueError, match="unknown strategy 'bald'; choose one of random, "):
        rank_pool([pred("a")], "bald", seed=0)
    with pytest.raises(ValueError, match="n must be None or an integer >= 0, got -1"):
        rank_pool([pred("a")], "random", n=-1, seed=0)
    with pytest.raises(ValueError, match="lengths has 2 entries for a pool of 1 notes"):
        rank_pool([pred("a")], "entropy", seed=0, lengths=[1, 2])


def test_config_round_trips_and_names_the_bad_field():
    config = ActiveConfig(least_k=3, words_per_second=2.5)
    assert ActiveConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="`least_k` must be an integer >= 1, got 0"):
        ActiveConfig(least_k=0)
    with pytest.raises(ValueError, match=r"`overall_uncertainty` must be in \[0, 1\), got 1"):
        ActiveConfig(overall_uncertainty=1)
    with pytest.raises(ValueError, match="unknown ActiveConfig key"):
        ActiveConfig.from_dict({"k": 1})
    assert "least_k" in ActiveConfig.help()


# --------------------------------------------------------------------------- cold start


def _texts() -> list[str]:
    return [" ".join(["word"] * (n + 1)) for n in range(40)]  # 1..40 words


def test_cold_start_is_reproducible_and_covers_lengths():
    texts = _texts()
    first = cold_start(texts, 4, seed=5)
    assert cold_start(texts, 4, seed=5) == first
    lengths = sorted(word_count(texts[i]) for i in first.indices)
    # One note from each quarter of the length range.
    assert [(n - 1) // 10 for n in lengths] == [0, 1, 2, 3]
    assert first.reasons[0].startswith("cold start: length stratum ")
    assert cold_start(texts, 4, seed=6).indices != first.indices


def test_cold_start_edges():
    assert cold_start([], 3, seed=0).indices == ()
    assert sorted(cold_start(["a", "b c"], 5, seed=0).indices) == [0, 1]
    assert sorted(cold_start(_texts(), None, seed=0).indices) == list(range(40))
    with pytest.raises(ValueError, match="n must be None or an integer >= 0"):
        cold_start(["a"], -2, seed=0)


# --------------------------------------------------------------------------- stopping


def test_stopping_signal_fires_on_a_flat_curve():
    curve = [(5, 0.30), (10, 0.551), (15, 0.552), (20, 0.553), (25, 0.555)]
    advice = stopping_signal(curve, ci_half_width=0.03)
    assert advice.stop
    assert advice.checks == {"curve": True}
    assert advice.notes == 15
    assert advice.gain == pytest.approx(0.004)
    assert advice.message == (
        "the last 15 notes raised entity F1 by 0.004 (CI ±0.03): "
        "more annotation is unlikely to pay off"
    )


def test_stopping_signal_does_not_fire_on_a_rising_curve():
    curve = [(5, 0.30), (10, 0.40), (15, 0.48), (20, 0.55), (25, 0.60)]
    advice = stopping_signal(curve, ci_half_width=0.03)
    assert not advice.stop
    assert advice.message.endswith(": keep annotating")


def test_a_slow_rise_beyond_the_noise_is_still_progress():
    # 0.005 per 10 notes, but 300 notes brought +0.15: far beyond a ±0.03 interval.
    curve = [(100, 0.40), (200, 0.45), (300, 0.50), (400, 0.55)]
    assert stopping_signal(curve, ci_half_width=0.03).stop is False
    assert stopping_signal(curve).stop is True  # without an interval, the rate decides


def test_stopping_signal_waits_for_enough_rounds():
    advice = stopping_signal([(5, 0.3), (10, 0.3)])
    assert not advice.stop
    assert advice.checks == {}
    assert "needs at least 4" in advice.message
    with pytest.raises(ValueError, match="curve note counts must not decrease"):
        stopping_signal([(10, 0.3), (5, 0.3)])


def _stop_set(spans: tuple[tuple[int, int], ...], uncertainty: float) -> list[DocumentPrediction]:
    return [
        DocumentPrediction(
            "t1",
            tuple(
                Suggestion(Span(f"S{i + 1}", "Drug", a, b), 0.9) for i, (a, b) in enumerate(spans)
            ),
            (),
            uncertainty,
            (0.0,),
        )
    ]


def test_span_vectors_mark_each_span_per_round():
    rounds = [_stop_set(((0, 3),), 0.1), _stop_set(((0, 3), (5, 9)), 0.1)]
    assert span_vectors(rounds).tolist() == [[1, 0], [1, 1]]


def test_settled_predictions_confirm_a_flat_curve():
    flat = [(5, 0.5), (10, 0.5), (15, 0.5), (20, 0.5)]
    same = [_stop_set(((0, 3), (5, 9), (12, 20)), 0.2)] * 4
    advice = stopping_signal(flat, history=same)
    assert advice.checks["kappa-average"] and advice.checks["delta-f"]
    assert advice.stop


def test_changing_predictions_overrule_a_flat_curve():
    flat = [(5, 0.5), (10, 0.5), (15, 0.5), (20, 0.5)]
    spans = [((0, 3),), ((5, 9),), ((0, 3), (12, 20)), ((30, 40),)]
    changing = [_stop_set(s, 0.2) for s in spans]
    advice = stopping_signal(flat, history=changing)
    assert advice.checks["curve"]
    assert not advice.checks["kappa-average"]
    assert not advice.stop
    assert "still changing" in advice.message


# --------------------------------------------------------------------------- the random share


def test_a_random_share_takes_evenly_spread_places_of_the_ranking():
    from noteloop.core.active import Ranking, with_random_share

    ranking = Ranking(tuple(range(20)), tuple(1 - i / 20 for i in range(20)),
                      tuple(f"r{i}" for i in range(20)), "breaking-ties")
    mixed, random_places = with_random_share(ranking, 30, 0.1, seed=4)
    assert [i for i, r in enumerate(random_places) if r] == [9, 19]
    assert len(set(mixed.indices)) == 20  # no note twice
    strategy_part = [i for i, r in zip(mixed.indices, random_places, strict=True) if not r]
    # the strategy's notes keep their order, less the ones drawn at random
    assert strategy_part == [i for i in range(20) if i in strategy_part]
    seen = f"r{mixed.indices[9]}" if mixed.indices[9] < 20 else ""
    assert mixed.reasons[9] == "random pick (10% of the queue, a guard)" + (
        f"; the strategy saw {seen}" if seen else "")
    assert with_random_share(ranking, 30, 0.1, seed=4) == (mixed, random_places)
    draws = {with_random_share(ranking, 30, 0.1, seed=s)[0].indices[9] for s in range(40)}
    assert len(draws) > 10  # drawn from the whole pool, not the strategy's next note
    same, none = with_random_share(ranking, 30, 0.0, seed=4)
    assert same == ranking and not any(none)
    with pytest.raises(ValueError, match=r"`random_share` must be a share in \[0, 0.5\]"):
        with_random_share(ranking, 30, 0.6, seed=4)
