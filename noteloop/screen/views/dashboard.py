"""Dashboard: what the annotation budget is buying (curves, suggestions, people, agreement)."""

from __future__ import annotations

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.db import dashboard, projects
from noteloop.screen import charts
from noteloop.screen.access import page_context
from noteloop.screen.forms import md

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user

label = st.session_state.get("dashboard_label") or ""  # the selector further down
with make_session() as session:
    data = dashboard.dashboard(session, projects.get_project(session, project_name), label=label)

st.title("Dashboard")
trigger = data.trigger
f1, gain = charts.latest(data.micro, "entity", "strict_f1")
columns = st.columns(5)
columns[0].metric("gold notes (pool)", trigger.gold_in_pool)
columns[1].metric("gold notes (test)", data.gold_test)
columns[2].metric("annotator hours", f"{data.hours:.1f}")
columns[3].metric("model versions", data.versions)
columns[4].metric(
    "entity F1 (strict)",
    "-" if f1 is None else f"{f1:.3f}",
    None if gain is None else f"{gain:+.3f} since the last version",
)

st.header("Learning curves")
if not data.micro:
    if data.versions:
        st.info(
            "The models were never measured: the project has no gold notes in the test split. "
            "Import some with `noteloop import PATH --split test`."
        )
    else:
        st.info(
            f"No model yet: the worker trains after {trigger.train_every} gold notes in the "
            f"pool ({trigger.gold_in_pool} so far) and measures it on the test notes."
        )
else:
    left, right = st.columns(2)
    x = left.radio("Against", list(charts.AXES), format_func=charts.AXES.get, horizontal=True)
    right.selectbox(
        "Label", ["", *data.labels], key="dashboard_label", format_func=lambda v: v or "all (micro)"
    )
    st.plotly_chart(charts.curve_figure(data.curve, x=x, title="F1 on the test notes, 95% CI"))
    if data.stop is not None:
        (st.success if data.stop.stop else st.info)(f"Stopping signal: {md(data.stop.message)}.")

st.header("Simulated strategies")
if data.simulated:
    task, metric = st.selectbox(
        "Curve", list(charts.SERIES), format_func=lambda k: charts.SERIES[k]
    ) or ("entity", "strict_f1")
    st.plotly_chart(charts.strategy_figure(data.simulated, data.micro, task=task, metric=metric))
else:
    st.info(
        "No simulated curves: replay an annotated corpus with `noteloop simulate CORPUS "
        "--format brat --out run.json --strategy S --seed N` and upload the results here."
    )
with st.expander("Upload simulation results"):
    files = st.file_uploader("noteloop simulate results (JSON)", accept_multiple_files=True)
    if st.button("Save simulated curves", disabled=not files):
        try:
            results = dashboard.read_results([(f.name, f.getvalue()) for f in files or []])
            with make_session.begin() as session:
                project = projects.get_project(session, project_name)
                names = dashboard.save_simulation(session, project, results, user)
            st.success(f"Saved {md(', '.join(names))}.")
        except (ValueError, NoteloopError) as exc:
            st.error(f"Not saved: {md(exc)}")

st.header("Suggestions")
if data.outcomes:
    st.caption(
        "As annotators decided: accepted (one by one or with Accept ≥), edited (a boundary "
        "fixed or a type changed), rejected. The effort table below splits the same "
        "actions further, from the suggestions to the submitted gold."
    )
    st.plotly_chart(charts.outcome_figure(data.outcomes))
    st.dataframe(charts.outcome_rows(data.outcomes), hide_index=True)
else:
    st.info("No suggestions yet: the worker suggests spans for the pool after its first model.")

st.header("Annotator effort")
if data.effort:
    st.caption(
        "What annotators did to turn each model version's suggestions into their submitted "
        "gold, counted per action, and what that takes against annotating the same gold "
        f"from scratch (reading included), priced by {md(data.effort_costs.source)}: "
        f"{data.effort_costs.read_per_word:.2f} s a word read, "
        f"{data.effort_costs.accept:.1f} s an accept, "
        f"{data.effort_costs.create_span:.1f} s a span drawn. "
        "Logged: the active time the widget measured on those notes."
    )
    st.plotly_chart(charts.effort_figure(data.effort))
    st.dataframe(charts.effort_rows(data.effort), hide_index=True)
else:
    st.info("No submitted note yet: the effort is counted on submitted notes.")

st.header("Is the queue paying?")
if data.guard:
    st.caption(
        "The notes the queue's strategy picked beside the random share it keeps as a guard "
        "(random_share on the Model page). A strategy pays when its picks are notes the "
        "model got more wrong per word read than random ones: a lower F1 before "
        "annotation and more corrections per 1,000 words."
    )
    st.dataframe(charts.guard_rows(data.guard), hide_index=True)
    for warning in dashboard.guard_warnings(data.guard):
        st.warning(md(warning))
else:
    st.info(
        "No submitted note came from a ranked queue yet: the comparison starts once "
        "annotators submit notes the worker's ranking offered."
    )

st.header("Annotators")
if data.people:
    if any(p.notes_per_hour for p in data.people):
        st.plotly_chart(charts.throughput_figure(data.people))
    st.dataframe(charts.throughput_rows(data.people), hide_index=True)
else:
    st.info("Nobody has annotated yet: annotators start on the Annotate page.")

st.header("Agreement")
if data.agreement:
    done = sum(1 for n in data.shared if n.final is not None)
    st.caption(
        f"{len(data.shared)} notes submitted by two or more annotators, {done} adjudicated "
        "(resolve the rest on the Adjudicate page)."
    )
    st.dataframe(charts.agreement_rows(data.agreement), hide_index=True)
    pair = st.selectbox(
        "Per label", data.agreement, format_func=lambda p: f"{p.a} / {p.b}", key="agreement_pair"
    )
    st.dataframe(charts.agreement_label_rows(pair.agreement), hide_index=True)
else:
    st.info(
        "No note has been submitted by two annotators yet: agreement is measured on notes "
        "that two people annotated independently."
    )
