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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from noteloop.core.curves import TITLES, StrategySummary, auc_table, effort_table, summarise
from noteloop.core.simulate import METRICS, SimulationResult


def translucent(color: str, alpha: float = 0.18) -> str:
    """``#rrggbb`` as an ``rgba()`` string with ``alpha``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _error_bar(y: Sequence[float], low: Any, high: Any, color: str) -> dict[str, Any]:
    return {
        "type": "data",
        "symmetric": False,
        "array": [h - v for v, h in zip(y, high, strict=True)],
        "arrayminus": [v - lo for v, lo in zip(y, low, strict=True)],
        "color": color,
    }


def band_traces(
    x: Sequence[float],
    y: Sequence[float],
    low: Sequence[float] | None,
    high: Sequence[float] | None,
    *,
    name: str,
    color: str,
    hover: str,
    dash: str = "solid",
    show_legend: bool = True,
    markers: bool = True,
) -> list[go.Scatter]:
    """A line with markers (measured points; ``markers=False`` for a curve read between
    them) and, when ``low`` and ``high`` are given, a band around it."""
    traces = []
    banded = low is not None and high is not None
    if banded and len(x) > 1:
        traces.append(
            go.Scatter(
                x=[*x, *reversed(x)],
                y=[*high, *reversed(low)],
                mode="lines",  # plotly's default for few points adds markers in other colours
                fill="toself",
                fillcolor=translucent(color),
                line={"width": 0},
                hoverinfo="skip",
                legendgroup=name,
                showlegend=False,
            )
        )
    traces.append(
        go.Scatter(
            x=list(x),
            y=list(y),
            mode="lines+markers" if markers else "lines",
            name=name,
            line={"color": color, "dash": dash},
            legendgroup=name,
            showlegend=show_legend,
            hovertemplate=hover,
            # A band needs two points: a lone point shows its interval as an error bar.
            error_y=_error_bar(y, low, high, color) if banded and len(x) == 1 else None,
        )
    )
    return traces


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


def _auc_table(summaries: Sequence[StrategySummary]) -> go.Table:
    return _table(*auc_table(summaries))


def _table(header: list[str], rows: list[list[str]]) -> go.Table:
    columns = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return go.Table(header={"values": header}, cells={"values": columns, "align": "left"})
