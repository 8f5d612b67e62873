"""A project that chooses the generative backend: its setting, the CLI that sets it, the
state the app shows while suggestions are prepared, and the worker using the backend."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.core.schema import EntityType, LabelSchema
from noteloop.core.settings import ProjectSettings, SettingsError, settings_changes
from noteloop.db import jobs, model_versions, projects
from noteloop.screen import annotate_flow
from noteloop.usecases import modeling

pytestmark = pytest.mark.both_databases

runner = CliRunner()


def test_backend_setting_is_checked_and_kept_by_a_form_that_does_not_show_it():
    assert ProjectSettings().backend == "encoder"
    with pytest.raises(SettingsError, match="`backend` must be one of encoder, generative"):
        ProjectSettings(backend="gpt")
    changes = settings_changes({"train_every": 3}, {}, {"backend": "generative"})
    assert changes["backend"] == "generative" and changes["train_every"] == 3


def test_both_backends_are_registered():
    assert {"encoder", "generative"} <= set(modeling.BACKENDS)


def test_generative_config_takes_the_cache_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTELOOP_CACHE", str(tmp_path))
    assert modeling._generative_config({"epochs": 2}).cache_dir == str(tmp_path)
    assert modeling._generative_config({"cache_dir": "/x"}).cache_dir == "/x"
    with pytest.raises(ValueError, match="unknown GenerativeConfig key"):
        modeling._generative_config({"full_finetune": True})


def test_suggestion_status_says_when_suggestions_are_being_prepared(make_session):
    with make_session.begin() as session:
        project = projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
        projects.update_project_settings(session, project, {"backend": "generative"}, "lead")
    with make_session() as session:
        status = annotate_flow.suggestion_status(session, "p")
    assert (status.state, status.backend) == ("none", "generative")
    with make_session.begin() as session:
        job, _ = jobs.enqueue(session, projects.get_project(session, "p"), reason="train now")
    with make_session() as session:
        status = annotate_flow.suggestion_status(session, "p")
    assert status.state == "preparing"
    assert status.message.startswith("Suggestions are being prepared")
    assert "CPU" in status.message
    with make_session.begin() as session:
        model_versions.register_model_version(session, projects.get_project(session, "p"),
                                              name="v1", backend="generative", path="/m/v1")
        jobs.finish(session, job.id, "done")
    with make_session() as session:
        assert annotate_flow.suggestion_status(session, "p").state == "ready"


def test_project_backend_command(db_url, make_session, tmp_path):
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
    start = tmp_path / "start"
    result = runner.invoke(app, ["project", "backend", "p", "generative", "--init-adapter",
                                 str(start), "--db", db_url])
    assert result.exit_code == 0, result.output
    with make_session() as session:
        settings = projects.get_project(session, "p").settings
    assert settings["backend"] == "generative"
    assert settings["model_config"] == {"init_adapter": str(start.resolve())}
    result = runner.invoke(app, ["project", "backend", "p", "gpt", "--db", db_url])
    assert result.exit_code == 1 and "`backend` must be one of" in result.output


def test_multitask_command_needs_gold(db_url, make_session, tmp_path):
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema((EntityType("Drug"),)))
    result = runner.invoke(app, ["multitask", "--out", str(tmp_path / "start"), "-p", "p",
                                 "--db", db_url])
    assert result.exit_code == 1
    assert "multi-task training needs at least one annotated document" in result.output
