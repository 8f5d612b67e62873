"""The Dashboard's plotly figures and table rows, built from plain data (no streamlit).

Curves draw their 95% bootstrap interval (live points) or their lowest-to-highest seed
range (simulated points) as a translucent band around the line, drawn by the offline
report's :func:`noteloop.usecases.reports.band_traces`. Rates are shares of the
suggestions annotators reviewed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.colors import qualitative

from noteloop.core.effort import Action
from noteloop.usecases.reports import band_traces

if TYPE_CHECKING:  # names for annotations only: charts draw what they are given
    from noteloop.core.agreement import Agreement
    from noteloop.db.dashboard import (
        Outcome,
        PairAgreement,
        PickGroup,
        Throughput,
        VersionEffort,
    )

SERIES = {
    ("entity", "strict_f1"): "entity F1 (strict)",
    ("entity", "lenient_f1"): "entity F1 (lenient)",
    ("relation", "f1"): "relation F1",
}
AXES = {"n_gold_docs": "gold notes", "annotator_hours": "annotator hours"}
OUTCOME_COLORS = {"accepted": "#59a14f", "edited": "#edc948", "rejected": "#e15759"}
_LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"t": 50, "r": 10}}


def _series(points: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[Any]]:
    """Points grouped by (strategy, task, metric)."""
    out: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for p in points:
        out[(p["strategy"], p["task"], p["metric"])].append(p)
    return out


def _line(
    points: Sequence[Mapping[str, Any]], x: str, name: str, color: str, dash: str = "solid"
) -> list[go.Scatter]:
    ordered = sorted(points, key=lambda p: (p[x], p["n_gold_docs"]))
    has_band = all(p["ci_low"] is not None and p["ci_high"] is not None for p in ordered)
    return band_traces(
        [p[x] for p in ordered],
        [p["value"] for p in ordered],
        [p["ci_low"] for p in ordered] if has_band else None,
        [p["ci_high"] for p in ordered] if has_band else None,
        name=name,
        color=color,
        dash=dash,
        hover=f"{name}<br>{AXES[x]} %{{x}}: %{{y:.3f}}<extra></extra>",
    )


def _axes(fig: go.Figure, x: str, title: str) -> go.Figure:
    fig.update_layout(title=title, legend_title_text="", **_LAYOUT)
    fig.update_xaxes(title_text=AXES[x], rangemode="tozero")
    fig.update_yaxes(title_text="F1", range=[0, 1])
    return fig


def latest(points: Sequence[Mapping[str, Any]], task: str, metric: str) -> tuple[Any, Any]:
    """The newest version's value of one curve and its change from the version before
    (None where there is no such point); points come oldest version first."""
    values = [p["value"] for p in points if (p["task"], p["metric"]) == (task, metric)]
    if not values:
        return None, None
    return values[-1], values[-1] - values[-2] if len(values) > 1 else None


def curve_figure(points: Sequence[Mapping[str, Any]], *, x: str, title: str) -> go.Figure:
    """Entity strict, entity lenient and relation F1 of the live model versions.

    Args:
        points: :func:`noteloop.db.learning.curve` rows of one label (or micro).
        x: ``n_gold_docs`` or ``annotator_hours``.
        title: The figure's title.

    Raises:
        ValueError: another ``x``.
    """
    if x not in AXES:
        raise ValueError(f"x must be one of {', '.join(AXES)}, got {x!r}")
    fig = go.Figure()
    order = list(SERIES)
    for (strategy, task, metric), rows in sorted(_series(points).items()):
        if (task, metric) in SERIES:
            name = SERIES[(task, metric)] + (f" ({strategy})" if strategy else "")
            color = qualitative.Plotly[order.index((task, metric))]
            fig.add_traces(_line(rows, x, name, color))
    return _axes(fig, x, title)


def strategy_figure(
    simulated: Sequence[Mapping[str, Any]],
    live: Sequence[Mapping[str, Any]],
    *,
    task: str,
    metric: str,
) -> go.Figure:
    """Simulated strategies (dashed, band = seed range) with this project's live curve."""
    key = (task, metric)
    if key not in SERIES:
        raise ValueError(f"unknown curve {task} {metric}; known: {sorted(SERIES)}")
    fig = go.Figure()
    colors = qualitative.Plotly
    mine = [p for p in live if (p["task"], p["metric"]) == key]
    if mine:
        fig.add_traces(_line(mine, "n_gold_docs", "this project", "#000000"))
    chosen = [(s, rows) for (s, t, m), rows in _series(simulated).items() if (t, m) == key]
    for i, (strategy, rows) in enumerate(chosen):
        fig.add_traces(_line(rows, "n_gold_docs", strategy, colors[i % len(colors)], "dash"))
    return _axes(fig, "n_gold_docs", f"{SERIES[key]}: simulated strategies")


def outcome_figure(outcomes: Sequence[Outcome]) -> go.Figure:
    """Stacked shares of accepted, edited and rejected suggestions per version and kind."""
    reviewed = [o for o in outcomes if o.reviewed]
    names = [f"{o.version} ({o.kind}s)" for o in reviewed]
    fig = go.Figure()
    for status, color in OUTCOME_COLORS.items():
        fig.add_trace(
            go.Bar(
                y=names,
                x=[o.rate(status) for o in reviewed],
                customdata=[getattr(o, status) for o in reviewed],
                name=status,
                orientation="h",
                marker_color=color,
                hovertemplate=f"%{{y}}: %{{x:.0%}} {status} (%{{customdata}})<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack", title="What annotators did with the suggestions", **_LAYOUT)
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    return fig


def effort_figure(efforts: Sequence[VersionEffort]) -> go.Figure:
    """Minutes per note per model version: estimated with its suggestions, estimated from
    scratch, and the active time annotators logged."""
    names = [e.version or "no suggestions" for e in efforts]
    series = (
        ("estimated with the suggestions", [e.effort.seconds / e.effort.notes for e in efforts],
         "#4e79a7"),
        ("estimated from scratch", [e.effort.scratch_seconds / e.effort.notes for e in efforts],
         "#bab0ac"),
        ("logged", [e.logged_per_note for e in efforts], "#f28e2b"),
    )
    fig = go.Figure()
    for name, seconds, color in series:
        fig.add_trace(go.Bar(
            x=names, y=[None if v is None else v / 60 for v in seconds], name=name,
            marker_color=color, hovertemplate=f"%{{x}}: %{{y:.1f}} min/note {name}<extra></extra>",
        ))
    fig.update_layout(barmode="group", title="Annotator time per note", **_LAYOUT)
    fig.update_yaxes(title_text="minutes per note")
    return fig


def throughput_figure(people: Sequence[Throughput]) -> go.Figure:
    """Notes per hour of each annotator who logged time."""
    timed = [p for p in people if p.notes_per_hour is not None]
    fig = go.Figure(
        go.Bar(
            x=[p.annotator for p in timed],
            y=[p.notes_per_hour for p in timed],
            customdata=[p.submitted for p in timed],
            hovertemplate="%{x}: %{y:.1f} notes/hour (%{customdata} notes)<extra></extra>",
        )
    )
    fig.update_layout(title="Annotator throughput", **_LAYOUT)
    fig.update_yaxes(title_text="notes per hour")
    return fig


# --------------------------------------------------------------------------- tables


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def outcome_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    return [
        {
            "model version": o.version,
            "kind": o.kind,
            "accepted": o.accepted,
            "edited": o.edited,
            "rejected": o.rejected,
            "acceptance rate": _round(o.rate("accepted")),
            "edit rate": _round(o.rate("edited")),
            "rejection rate": _round(o.rate("rejected")),
            "left open on submitted notes": o.unreviewed,
            "open on notes not yet annotated": o.pending,
            "drawn by hand (missed)": o.manual if o.kind == "span" else None,
        }
        for o in outcomes
    ]


def effort_rows(efforts: Sequence[VersionEffort]) -> list[dict[str, Any]]:
    """Per model version: the actions counted on its notes and the estimated seconds."""
    rows = []
    for e in efforts:
        n = e.effort.notes
        row: dict[str, Any] = {"model version": e.version or "no suggestions", "notes": n}
        row |= {a.value: e.effort.actions.get(a, 0) for a in Action}
        row |= {
            "est. s/note with suggestions": round(e.effort.seconds / n),
            "est. s/note from scratch": round(e.effort.scratch_seconds / n),
            "share of from scratch": _round(e.effort.share),
            "logged s/note": None if e.logged_per_note is None else round(e.logged_per_note),
            "timed notes": e.timed,
        }
        rows.append(row)
    return rows


def guard_rows(groups: Sequence[PickGroup]) -> list[dict[str, Any]]:
    """The strategy's picks beside the random share's, per ranking strategy."""
    return [
        {
            "strategy": g.strategy,
            "picked": "by the strategy" if g.pick == "strategy" else "at random (guard)",
            "notes": g.notes,
            "words": g.words,
            "model F1 on them before annotation": _round(g.model_f1),
            "corrections per 1,000 words": round(g.corrections_per_kword, 1),
        }
        for g in groups
    ]


def throughput_rows(people: Sequence[Throughput]) -> list[dict[str, Any]]:
    return [
        {
            "annotator": p.annotator,
            "notes submitted": p.submitted,
            "in progress": p.in_progress,
            "hours": round(p.seconds / 3600, 2),
            "notes per hour": _round(p.notes_per_hour, 1),
            "words per hour": None if p.words_per_hour is None else round(p.words_per_hour),
            "adjudicated": p.adjudicated,
        }
        for p in people
    ]


def _scores(result: Agreement) -> dict[str, Any]:
    return {
        "notes": result.n_docs,
        "entity F1 (strict)": _round(result.entity_strict.f1),
        "entity F1 (lenient)": _round(result.entity_lenient.f1),
        "relation F1": _round(result.relation.f1),
        "token kappa": _round(result.kappa.value),
    }


def agreement_rows(pairs: Sequence[PairAgreement]) -> list[dict[str, Any]]:
    return [{"annotators": f"{p.a} / {p.b}", **_scores(p.agreement)} for p in pairs]


def agreement_label_rows(result: Agreement) -> list[dict[str, Any]]:
    names = {"entity_strict": "entity F1 (strict)", "entity_lenient": "entity F1 (lenient)"}
    return [
        {
            "label": row["label"],
            **{names.get(k, "relation F1"): _round(row[k]) for k in result.per_label},
            "token kappa": _round(row["kappa"]),
        }
        for row in result.label_rows()
    ]
