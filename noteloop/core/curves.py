"""Simulated learning curves summarised over seeds: a band per metric (mean, lowest and
highest seed at each point) against annotated notes and against words read, the areas
under them, the annotator's effort per round, and the tables of both. Pure: the HTML
report (:mod:`noteloop.usecases.reports`) draws these, the Dashboard shows them.

Min-max rather than ±1 sd: a simulation has a handful of seeds (3 to 5), and a standard
deviation of three values is itself noise, while min-max shows every run that happened.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from noteloop.core.errors import ConfigError
from noteloop.core.simulate import (
    METRICS,
    SimulationResult,
    area_under_curve,
    area_under_reading_curve,
    common_reading,
    f1_at_reading,
)

TITLES = {
    "entity_strict": "Entity F1 (strict)",
    "entity_lenient": "Entity F1 (lenient)",
    "relation": "Relation F1",
}


@dataclass(frozen=True)
class Band:
    """One metric's curve of one strategy: mean, lowest and highest seed per n_docs."""

    n_docs: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class ReadingBand:
    """One metric's curve of one strategy against words read: mean, lowest and highest
    seed at each point of the report's common reading budget."""

    words: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


@dataclass(frozen=True)
class StrategySummary:
    """A strategy's curves and areas over its seeds."""

    name: str  # the strategy, with the backend when the report mixes backends
    seeds: tuple[int, ...]
    bands: Mapping[str, Band]  # by metric (``METRICS``)
    auc: Mapping[str, tuple[float, float]]  # by metric: (mean, sd over seeds)
    # against words read, over the budget every run of the report covers; empty where
    # the runs share none
    reading: Mapping[str, ReadingBand] = field(default_factory=dict)
    auc_reading: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    words_read: float = 0.0  # the mean over seeds of the words read by the last round
    effort: EffortBand | None = None  # None where no run recorded the effort


@dataclass(frozen=True)
class EffortBand:
    """Per annotated-notes count: seconds per test note with the suggestions and from
    scratch (means over seeds), and their ratio (mean, lowest and highest seed)."""

    n_docs: tuple[int, ...]
    seconds: tuple[float, ...]
    scratch: tuple[float, ...]
    share: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


# Points of the common reading budget each run's F1 is read at.
READING_POINTS = 41


def summarise(results: Sequence[SimulationResult]) -> list[StrategySummary]:
    """Groups runs by strategy (and backend, when there are several) and aggregates seeds.

    Raises:
        ValueError: No results, results of different corpora, or one (strategy, backend,
            seed) run given twice.
    """
    _check_runs(results)
    several_backends = len({r.backend for r in results}) > 1
    groups: dict[str, list[SimulationResult]] = defaultdict(list)
    for r in results:
        groups[f"{r.strategy} ({r.backend})" if several_backends else r.strategy].append(r)
    budget = common_reading([r.points for r in results])
    return [_summary(name, runs, budget) for name, runs in groups.items()]


def _check_runs(results: Sequence[SimulationResult]) -> None:
    if not results:
        raise ConfigError("no simulation results to report")
    corpora = sorted({r.corpus for r in results})
    if len(corpora) > 1:
        raise ConfigError(
            f"results of different corpora cannot share a report: {', '.join(corpora)}"
        )
    seen: set[tuple[str, str, int]] = set()
    for r in results:
        key = (r.strategy, r.backend, r.seed)
        if key in seen:
            strategy, backend, seed = key
            raise ConfigError(
                f"run given twice: strategy {strategy}, backend {backend}, seed {seed}"
            )
        seen.add(key)


def _summary(
    name: str, runs: Sequence[SimulationResult], budget: tuple[int, int] | None
) -> StrategySummary:
    bands = {m: _band(runs, m) for m in METRICS}
    auc = {m: _spread([area_under_curve(r.points, m) for r in runs if r.points])
           for m in METRICS}
    reading, auc_reading = {}, {}
    if budget is not None:
        reading = {m: _reading_band(runs, m, budget) for m in METRICS}
        auc_reading = {m: _spread([area_under_reading_curve(r.points, m, *budget)
                                   for r in runs]) for m in METRICS}
    last = [r.points[-1].n_tokens for r in runs if r.points]
    return StrategySummary(name, tuple(sorted(r.seed for r in runs)), bands, auc,
                           reading, auc_reading, float(np.mean(last)) if last else 0.0,
                           _effort_band(runs))


def _effort_band(runs: Sequence[SimulationResult]) -> EffortBand | None:
    """Seeds aggregated at each n_docs where the rounds recorded their effort."""
    by_n: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
    for run in runs:
        for p in run.points:
            e = p.effort
            if e is not None and e.notes and e.share is not None:
                by_n[p.n_docs].append((e.seconds / e.notes, e.scratch_seconds / e.notes, e.share))
    if not by_n:
        return None
    grid = sorted(by_n)
    cols = [np.array(by_n[n]) for n in grid]
    return EffortBand(tuple(grid), *(tuple(float(c[:, i].mean()) for c in cols) for i in range(3)),
                      tuple(float(c[:, 2].min()) for c in cols),
                      tuple(float(c[:, 2].max()) for c in cols))


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sd) over seeds; (0, 0) for none."""
    return (float(np.mean(values)), float(np.std(values))) if values else (0.0, 0.0)


def _reading_band(
    runs: Sequence[SimulationResult], metric: str, budget: tuple[int, int]
) -> ReadingBand:
    """Seeds aggregated at the same points of the reading budget."""
    words = np.linspace(*budget, READING_POINTS)
    curves = np.array([f1_at_reading(r.points, metric, words) for r in runs])
    return ReadingBand(tuple(words.tolist()), tuple(curves.mean(axis=0).tolist()),
                       tuple(curves.min(axis=0).tolist()), tuple(curves.max(axis=0).tolist()))


def _band(runs: Sequence[SimulationResult], metric: str) -> Band:
    """Seeds aggregated at each n_docs (a run cut short by the pool adds fewer points)."""
    by_n: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for p in run.points:
            by_n[p.n_docs].append(p.f1(metric))
    grid = sorted(by_n)
    return Band(
        tuple(grid),
        tuple(float(np.mean(by_n[n])) for n in grid),
        tuple(min(by_n[n]) for n in grid),
        tuple(max(by_n[n]) for n in grid),
    )


# --------------------------------------------------------------------------- plotly


def effort_table(summaries: Sequence[StrategySummary]) -> tuple[list[str], list[list[str]]]:
    """Per strategy and round: seconds per test note to reach the gold from the
    suggestions, from scratch, and the share (mean over seeds, lowest to highest)."""
    header = ["strategy", "notes", "s/note with suggestions", "s/note from scratch",
              "share (lowest-highest seed)"]
    rows = []
    for s in summaries:
        band = s.effort
        if band is None:
            continue
        for i, n in enumerate(band.n_docs):
            rows.append([s.name, str(n), f"{band.seconds[i]:.0f}", f"{band.scratch[i]:.0f}",
                         f"{band.share[i]:.0%} ({band.low[i]:.0%}-{band.high[i]:.0%})"])
    return header, rows


def auc_table(summaries: Sequence[StrategySummary]) -> tuple[list[str], list[list[str]]]:
    """The areas per note and per word of every strategy: a header and a row each (the
    report's table, and ``noteloop simulate-report``'s)."""
    header = ["strategy", "seeds"]
    for m in METRICS:
        header += [f"AUC {TITLES[m]} per note", f"AUC {TITLES[m]} per word"]
    header += ["notes (last)", "words read (last, mean)"]
    return header, [_auc_row(s) for s in summaries]


def _auc_row(s: StrategySummary) -> list[str]:
    row = [s.name, str(len(s.seeds))]
    for m in METRICS:
        row.append(_mean_sd(s.auc[m]))
        row.append(_mean_sd(s.auc_reading[m]) if m in s.auc_reading else "-")
    docs = s.bands[METRICS[0]].n_docs
    return [*row, str(docs[-1]) if docs else "-", f"{s.words_read:,.0f}"]


def _mean_sd(value: tuple[float, float]) -> str:
    return f"{value[0]:.3f} ± {value[1]:.3f}"
