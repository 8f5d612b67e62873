"""Model: versions and their scores, training jobs with live progress, train now, cancel,
and the project's training settings. The app only writes job rows; the worker trains."""

from __future__ import annotations

import streamlit as st

from noteloop.access import page_context
from noteloop.core.active import STRATEGIES
from noteloop.core.errors import NoteloopError
from noteloop.core.settings import BACKEND_NAMES, ProjectSettings, config_fields, current_settings
from noteloop.db import repo, training
from noteloop.forms import config_inputs

page = page_context(__file__)
make_session, project_name, user = page.make_session, page.project, page.user

st.title("Model")
with make_session() as session:
    project = repo.get_project(session, project_name)
    versions = training.version_rows(session, project)
    stored = dict(project.settings)


def f1(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


serving = next((v for v in versions if v.serving), None)
if serving is None:
    st.info("No trained model yet: the worker trains one when enough gold is in, or on Train now.")
else:
    st.caption(f"Suggestions come from **{serving.name}** ({serving.n_train_docs} gold notes).")
if versions:
    st.dataframe(
        [
            {
                "version": v.name,
                "created": f"{v.created_at:%Y-%m-%d %H:%M}",
                "serving": "yes" if v.serving else "",
                "status": v.status,
                "backend": v.backend,
                "train notes": v.n_train_docs,
                "test notes": v.n_test_docs,
                "entity F1 (strict)": f1(v.entity_strict_f1),
                "entity F1 (lenient)": f1(v.entity_lenient_f1),
                "relation F1": f1(v.relation_f1),
            }
            for v in versions
        ],
        hide_index=True,
    )


ACTIVE_KEY = "model-page-job-active"


def jobs_panel() -> None:
    with make_session() as session:
        jobs = training.job_rows(session, repo.get_project(session, project_name))
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
        [
            {
                "job": j.id,
                "status": j.status,
                "progress": j.progress,
                "phase": j.phase,
                "reason": j.reason,
                "created": f"{j.created_at:%Y-%m-%d %H:%M}",
                "version": j.model_version or "",
                "error": j.error,
            }
            for j in jobs
        ],
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        hide_index=True,
    )


st.subheader("Training jobs")
# Live while a job runs; slower otherwise, to notice a job the worker queued by itself.
st.fragment(jobs_panel, run_every="2s" if st.session_state.get(ACTIVE_KEY) else "15s")()


st.subheader("Training settings")
settings, config, problem = current_settings(stored)
if problem:
    st.warning(f"{problem}; the form shows the defaults: save it to fix them.")
helps = ProjectSettings.help()
with st.form("training-settings"):
    values = {
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
        "double_annotation": st.number_input(
            "double_annotation",
            min_value=0.0,
            max_value=1.0,
            value=float(settings.double_annotation),
            step=0.05,
            help=helps["double_annotation"],
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
            st.error(f"Not saved: {exc}")
        else:
            st.success("Saved. The next training job uses these settings.")
