"""An offline HTML report of simulation results: learning curves and their areas.

One page per corpus: entity strict F1, entity lenient F1 and relation F1 against the
number of annotated notes, one line per strategy (the mean over seeds) in a band from the
lowest to the highest seed at each point. Min-max rather than ±1 sd because a
simulation has a handful of seeds (3 to 5): a standard deviation of three values is
itself noise, while min-max shows every run that happened. Below, a table of the
normalised area under each curve (:func:`noteloop.core.simulate.area_under_curve`), mean
± sd over seeds.

plotly's JavaScript is embedded in the file (``include_plotlyjs=True``): the report
opens on a machine with no network, as hospital machines often are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from noteloop.charts import band_traces
from noteloop.core.simulate import METRICS, SimulationResult, area_under_curve

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
class StrategySummary:
    """A strategy's curves and areas over its seeds."""

    name: str  # the strategy, with the backend when the report mixes backends
    seeds: tuple[int, ...]
    bands: Mapping[str, Band]  # by metric (``METRICS``)
    auc: Mapping[str, tuple[float, float]]  # by metric: (mean, sd over seeds)


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
    return [_summary(name, runs) for name, runs in groups.items()]


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


def _summary(name: str, runs: Sequence[SimulationResult]) -> StrategySummary:
    bands = {m: _band(runs, m) for m in METRICS}
    auc = {}
    for m in METRICS:
        values = [area_under_curve(r.points, m) for r in runs if r.points]
        auc[m] = (float(np.mean(values)), float(np.std(values))) if values else (0.0, 0.0)
    return StrategySummary(name, tuple(sorted(r.seed for r in runs)), bands, auc)


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


def simulation_report(results: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """Writes one self-contained HTML report for results of one corpus.

    Args:
        results: Simulation results in their JSON form (``SimulationResult.to_dict()``).
        out: The HTML file to write (its folder must exist).

    Returns:
        ``out``.

    Raises:
        ValueError: A result of the wrong shape (naming the key), no results, results
            of different corpora, or a run given twice.
    """
    parsed = [SimulationResult.from_dict(r) for r in results]
    summaries = summarise(parsed)
    figure = _figure(summaries, parsed[0].corpus)
    figure.write_html(Path(out), include_plotlyjs=True, full_html=True)
    return Path(out)


def _figure(summaries: Sequence[StrategySummary], corpus: str) -> go.Figure:
    fig = make_subplots(
        rows=2,
        cols=3,
        specs=[[{"type": "xy"}] * 3, [{"type": "table", "colspan": 3}, None, None]],
        subplot_titles=[TITLES[m] for m in METRICS],
        row_heights=[0.68, 0.32],
        vertical_spacing=0.12,
    )
    colors = qualitative.Plotly
    for i, summary in enumerate(summaries):
        color = colors[i % len(colors)]
        for col, metric in enumerate(METRICS, start=1):
            for trace in _traces(summary, metric, color, first=col == 1):
                fig.add_trace(trace, row=1, col=col)
    for col in range(1, 4):
        fig.update_xaxes(title_text="annotated notes", row=1, col=col)
        fig.update_yaxes(title_text="F1", rangemode="tozero", row=1, col=col)
    fig.add_trace(_auc_table(summaries), row=2, col=1)
    fig.update_layout(
        title=f"Simulated annotation on {corpus}: mean over seeds, band = lowest to highest seed",
        height=820,
        template="plotly_white",
        legend_title_text="strategy",
    )
    return fig


def _traces(summary: StrategySummary, metric: str, color: str, *, first: bool) -> list[Any]:
    """The band (lowest to highest seed) and the mean line."""
    band = summary.bands[metric]
    seeds = ", ".join(str(s) for s in summary.seeds)
    return band_traces(
        band.n_docs,
        band.mean,
        band.low,
        band.high,
        name=summary.name,
        color=color,
        show_legend=first,
        hover=f"{summary.name}<br>%{{x}} notes: F1 %{{y:.3f}} (seeds {seeds})<extra></extra>",
    )


def _auc_table(summaries: Sequence[StrategySummary]) -> go.Table:
    header = ["strategy", "seeds", *(f"AUC {TITLES[m]}" for m in METRICS), "notes (last)"]
    rows = [
        [
            s.name,
            str(len(s.seeds)),
            *(f"{s.auc[m][0]:.3f} ± {s.auc[m][1]:.3f}" for m in METRICS),
            str(s.bands[METRICS[0]].n_docs[-1]) if s.bands[METRICS[0]].n_docs else "-",
        ]
        for s in summaries
    ]
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return go.Table(header={"values": header}, cells={"values": columns, "align": "left"})
