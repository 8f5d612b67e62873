"""An offline HTML report of simulation results: learning curves and their areas.

One page per corpus: entity strict F1, entity lenient F1 and relation F1 against the
number of annotated notes, and below against the words read (annotators are paid for
reading, and a strategy that picks long notes can win per note and lose per word), one
line per strategy (the mean over seeds) in a band from the lowest to the highest seed at
each point. Against words, every run is read at the same points of the reading budget
all runs cover (:func:`noteloop.core.simulate.common_reading`). Min-max rather than ±1 sd because a
simulation has a handful of seeds (3 to 5): a standard deviation of three values is
itself noise, while min-max shows every run that happened. Below, a table of the
normalised area under each curve, per note (:func:`noteloop.core.simulate.area_under_curve`)
and per word over the common budget (``area_under_reading_curve``), mean ± sd over seeds.
Last, the annotator's effort on the test notes per round (:mod:`noteloop.core.effort`):
the estimated time to reach their gold from that round's suggestions as a share of
annotating it from scratch, drawn against annotated notes and tabled with the seconds per
note both ways (runs written before the effort was recorded have no such curve).

plotly's JavaScript is embedded in the file (``include_plotlyjs=True``): the report
opens on a machine with no network, as hospital machines often are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from noteloop.charts import band_traces
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
        raise ValueError("no simulation results to report")
    corpora = sorted({r.corpus for r in results})
    if len(corpora) > 1:
        raise ValueError(
            f"results of different corpora cannot share a report: {', '.join(corpora)}"
        )
    seen: set[tuple[str, str, int]] = set()
    for r in results:
        key = (r.strategy, r.backend, r.seed)
        if key in seen:
            raise ValueError(f"run given twice: strategy {key[0]}, backend {key[1]}, seed {key[2]}")
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


def simulation_report(
    results: Sequence[Mapping[str, Any]], out: Path
) -> tuple[Path, list[StrategySummary]]:
    """Writes one self-contained HTML report for results of one corpus.

    Args:
        results: Simulation results in their JSON form (``SimulationResult.to_dict()``).
        out: The HTML file to write (its folder must exist).

    Returns:
        ``out``, and the summaries drawn (for a caller that prints their areas).

    Raises:
        ValueError: A result of the wrong shape (naming the key), no results, results
            of different corpora, or a run given twice.
    """
    parsed = [SimulationResult.from_dict(r) for r in results]
    summaries = summarise(parsed)
    figure = _figure(summaries, parsed[0].corpus)
    figure.write_html(Path(out), include_plotlyjs=True, full_html=True)
    return Path(out), summaries


def _figure(summaries: Sequence[StrategySummary], corpus: str) -> go.Figure:
    fig = make_subplots(
        rows=4,
        cols=3,
        specs=[[{"type": "xy"}] * 3, [{"type": "xy"}] * 3,
               [{"type": "table", "colspan": 3}, None, None],
               [{"type": "xy"}, {"type": "table", "colspan": 2}, None]],
        subplot_titles=[*(f"{TITLES[m]} per note" for m in METRICS),
                        *(f"{TITLES[m]} per word read" for m in METRICS), "",
                        "Time with suggestions / from scratch (test notes)", ""],
        row_heights=[0.27, 0.27, 0.2, 0.26],
        vertical_spacing=0.07,
    )
    colors = qualitative.Plotly
    for i, summary in enumerate(summaries):
        color = colors[i % len(colors)]
        for col, metric in enumerate(METRICS, start=1):
            for trace in _traces(summary, metric, color, first=col == 1):
                fig.add_trace(trace, row=1, col=col)
            for trace in _reading_traces(summary, metric, color):
                fig.add_trace(trace, row=2, col=col)
    for col in range(1, 4):
        fig.update_xaxes(title_text="annotated notes", row=1, col=col)
        fig.update_xaxes(title_text="words read (budget every run covers)", row=2, col=col)
        for row in (1, 2):
            fig.update_yaxes(title_text="F1", rangemode="tozero", row=row, col=col)
    fig.add_trace(_auc_table(summaries), row=3, col=1)
    for i, summary in enumerate(summaries):
        for trace in _effort_traces(summary, colors[i % len(colors)]):
            fig.add_trace(trace, row=4, col=1)
    fig.update_xaxes(title_text="annotated notes", row=4, col=1)
    fig.update_yaxes(title_text="share of from-scratch time", rangemode="tozero", row=4, col=1)
    fig.add_trace(_table(*effort_table(summaries)), row=4, col=2)
    fig.update_layout(
        title=f"Simulated annotation on {corpus}: mean over seeds, band = lowest to highest seed",
        height=1600,
        template="plotly_white",
        legend_title_text="strategy",
    )
    return fig


def _traces(summary: StrategySummary, metric: str, color: str, *, first: bool) -> list[Any]:
    """The band (lowest to highest seed) and the mean line."""
    band = summary.bands[metric]
    seeds = ", ".join(str(s) for s in summary.seeds)
    hover = f"{summary.name}<br>%{{x}} notes: F1 %{{y:.3f}} (seeds {seeds})<extra></extra>"
    return band_traces(band.n_docs, band.mean, band.low, band.high, name=summary.name,
                       color=color, show_legend=first, hover=hover)


def _reading_traces(summary: StrategySummary, metric: str, color: str) -> list[Any]:
    """The same against words read, without markers (read between the rounds, not
    measured there); nothing where the runs share no reading budget."""
    band = summary.reading.get(metric)
    if band is None:
        return []
    hover = f"{summary.name}<br>%{{x:,.0f}} words: F1 %{{y:.3f}}<extra></extra>"
    return band_traces(band.words, band.mean, band.low, band.high, name=summary.name,
                       color=color, show_legend=False, markers=False, hover=hover)


def _effort_traces(summary: StrategySummary, color: str) -> list[Any]:
    band = summary.effort
    if band is None:
        return []
    hover = (f"{summary.name}<br>%{{x}} notes: %{{y:.0%}} of the time from scratch"
             "<extra></extra>")
    return band_traces(band.n_docs, band.share, band.low, band.high, name=summary.name,
                       color=color, show_legend=False, hover=hover)


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


def _auc_table(summaries: Sequence[StrategySummary]) -> go.Table:
    return _table(*auc_table(summaries))


def _table(header: list[str], rows: list[list[str]]) -> go.Table:
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return go.Table(header={"values": header}, cells={"values": columns, "align": "left"})


def _auc_row(s: StrategySummary) -> list[str]:
    row = [s.name, str(len(s.seeds))]
    for m in METRICS:
        row.append(_mean_sd(s.auc[m]))
        row.append(_mean_sd(s.auc_reading[m]) if m in s.auc_reading else "-")
    docs = s.bands[METRICS[0]].n_docs
    return [*row, str(docs[-1]) if docs else "-", f"{s.words_read:,.0f}"]


def _mean_sd(value: tuple[float, float]) -> str:
    return f"{value[0]:.3f} ± {value[1]:.3f}"
