"""Model: versions and their scores, which one serves (a lead may serve another), training
jobs with live progress, train now, cancel, and the project's training settings. The app
only writes rows; the worker trains and predicts."""

from __future__ import annotations

import streamlit as st

from noteloop.core.active import STRATEGIES
from noteloop.core.errors import NoteloopError
from noteloop.core.settings import (
    BACKEND_NAMES,
    MODEL_RULES,
    ProjectSettings,
    config_fields,
    current_settings,
)
from noteloop.db import projects, serving, training
from noteloop.screen.access import page_context
from noteloop.screen.forms import config_inputs, md

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user

st.title("Model")
with make_session() as session:
    project = projects.get_project(session, project_name)
    versions = training.version_rows(session, project)
    stored = dict(project.settings)


current = next((v for v in versions if v.serving), None)
if current is None and any(v.servable for v in versions):
    st.info("No version serves yet: choose one below.")
elif current is None:
    st.info("No trained model yet: the worker trains one when enough gold is in, or on Train now.")
else:
    st.caption(f"Suggestions come from **{md(current.name)}** ({current.n_train_docs} gold notes).")
if versions:
    st.dataframe([v.shown() for v in versions], hide_index=True)
servable = [v.name for v in versions if v.servable]
if servable:
    with st.form("serve-version"):
        shown = servable.index(current.name) if current and current.name in servable else 0
        chosen = st.selectbox("Version to serve", servable, shown)
        why = st.text_input("Reason (optional)", max_chars=500)
        if st.form_submit_button("Serve this version"):
            try:
                with make_session.begin() as session:
                    job = serving.choose_version(session, project_name, chosen, user, why)[1]
            except NoteloopError as exc:
                st.error(f"Not served: {md(exc)}")
            else:
                st.toast(f"{md(chosen)} serves now; job {job.id} suggests for the pool with it.")
                st.rerun(scope="app")


ACTIVE_KEY = "model-page-job-active"


def jobs_panel() -> None:
    with make_session() as session:
        jobs = training.job_rows(session, projects.get_project(session, project_name))
    active = [j for j in jobs if j.active]
    if st.session_state.get(ACTIVE_KEY, False) != bool(active):
        # A job started or ended: rerun the page to change the refresh rate (and, after
        # a job, to list the version it made).
        st.session_state[ACTIVE_KEY] = bool(active)
        st.rerun(scope="app")
    for job in active:
        where = job.phase or "waiting for the worker (`noteloop worker`)"
        stopping = ", stop requested" if job.cancel_requested else ""
        st.progress(job.progress, text=f"Job {job.id} {job.status}{stopping}: {where}")
    left, right = st.columns(2)
    if left.button("Train now", type="primary", disabled=bool(active)):
        with make_session.begin() as session:
            queued, _ = training.train_now(session, project_name, user)
        st.toast(f"Training job {queued.id} queued.")
        st.rerun(scope="app")
    if active and right.button(f"Cancel job {active[0].id}"):
        with make_session.begin() as session:
            status = training.cancel_job(session, project_name, active[0].id, user)
        st.toast(f"Job {active[0].id}: {status}.")
        st.rerun(scope="app")
    st.dataframe(
        [j.shown() for j in jobs],
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        hide_index=True,
    )


st.subheader("Training jobs")
# Live while a job runs; slower otherwise, to notice a job the worker queued by itself.
st.fragment(jobs_panel, run_every="2s" if st.session_state.get(ACTIVE_KEY) else "15s")()


st.subheader("Training settings")
settings, config, problem = current_settings(stored)
if problem:
    st.warning(f"{md(problem)}; the form shows the defaults: save it to fix them.")
helps = ProjectSettings.help()
with st.form("training-settings"):
    values = {
        **settings.to_dict(),  # a setting this form does not show keeps its stored value
        "train_every": st.number_input(
            "train_every",
            min_value=1,
            value=settings.train_every,
            step=1,
            help=helps["train_every"],
        ),
        "train_every_minutes": st.number_input(
            "train_every_minutes",
            value=float(settings.train_every_minutes),
            format="%g",
            help=helps["train_every_minutes"],
        ),
        "strategy": st.selectbox(
            "strategy", STRATEGIES, STRATEGIES.index(settings.strategy), help=helps["strategy"]
        ),
        "random_share": st.number_input(
            "random_share",
            min_value=0.0,
            max_value=0.5,
            value=float(settings.random_share),
            step=0.05,
            help=helps["random_share"],
        ),
        "double_annotation": st.number_input(
            "double_annotation",
            min_value=0.0,
            max_value=1.0,
            value=float(settings.double_annotation),
            step=0.05,
            help=helps["double_annotation"],
        ),
        "model_rule": st.selectbox(
            "model_rule",
            MODEL_RULES,
            MODEL_RULES.index(settings.model_rule),
            help=helps["model_rule"],
        ),
        "backend": st.selectbox(
            "backend", BACKEND_NAMES, BACKEND_NAMES.index(settings.backend), help=helps["backend"]
        ),
    }
    title = f"Model configuration ({settings.backend}); threads are the worker's to set"
    with st.expander(title):
        fields = config_fields(settings.backend)
        model_values = config_inputs(fields, config, settings.backend)
        st.caption("Another backend starts from its own defaults once saved.")
    if st.form_submit_button("Save settings"):
        try:
            with make_session.begin() as session:
                training.save_training_settings(session, project_name, values, model_values, user)
        except NoteloopError as exc:
            st.error(f"Not saved: {md(exc)}")
        else:
            st.success("Saved. The next training job uses these settings.")
