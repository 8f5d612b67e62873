"""A project's training settings: typed, refused with the field's name, stored as changes."""

from __future__ import annotations

import pytest

from noteloop.core.model.config import EncoderConfig
from noteloop.core.settings import (
    ProjectSettings,
    SettingsError,
    config_fields,
    current_settings,
    model_overrides,
    settings_changes,
)

PROJECT = {"train_every": 5, "train_every_minutes": 0.0, "strategy": "breaking-ties"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train_every": 0}, "`train_every` must be a whole number >= 1, got 0"),
        ({"train_every": True}, "`train_every` must be a whole number >= 1, got True"),
        ({"train_every_minutes": -1.0}, "`train_every_minutes` must be a number >= 0"),
        ({"strategy": "best"}, "`strategy` must be one of random, .*, got 'best'"),
    ],
)
def test_project_settings_name_the_field_they_refuse(values, message):
    with pytest.raises(SettingsError, match=message):
        settings_changes({**PROJECT, **values}, {}, {})


def test_only_changed_encoder_values_are_stored_and_hidden_ones_are_kept():
    form = {f.name: f.default for f in config_fields()}
    form.update(lora_r=8, target_modules="query, value")
    stored = {"model_config": {"threads": 2, "epochs": 4}}
    changes = settings_changes({**PROJECT, "train_every": 3}, form, stored)
    # epochs is shown in the form (at its default now), threads is the worker's: kept.
    assert changes["model_config"] == {
        "lora_r": 8,
        "target_modules": ["query", "value"],
        "threads": 2,
    }
    assert changes["train_every"] == 3
    assert "threads" not in {f.name for f in config_fields()}


def test_encoder_values_are_refused_with_their_field():
    with pytest.raises(
        SettingsError, match="model configuration: `lora_dropout` must be in \\[0, 1\\)"
    ):
        model_overrides("encoder", {"lora_dropout": 1.5}, {})
    with pytest.raises(SettingsError, match="unknown EncoderConfig key\\(s\\): nonsense"):
        model_overrides("encoder", {}, {"nonsense": 1})


def test_bad_stored_settings_fall_back_to_defaults_with_the_reason():
    settings, config, problem = current_settings({"train_every": 5, "strategy": "gone"})
    assert (settings, config) == (ProjectSettings(), EncoderConfig())
    assert "`strategy` must be one of" in problem
    settings, config, problem = current_settings({"train_every": 2, "model_config": {"lora_r": 4}})
    assert (settings.train_every, config.lora_r, problem) == (2, 4, "")


def test_every_field_has_help_and_a_form_kind():
    for f in config_fields():
        assert f.help and f.kind in ("bool", "int", "float", "str", "list"), f
    assert all(ProjectSettings.help().values())


def test_the_form_follows_the_projects_backend():
    from noteloop.core.model.config import GenerativeConfig

    assert "lr" in {f.name for f in config_fields("generative")}
    stored = {"backend": "generative", "model_config": {"lora_r": 4}}
    settings, config, problem = current_settings(stored)
    assert (settings.backend, problem) == ("generative", "")
    assert isinstance(config, GenerativeConfig) and config.lora_r == 4
    changes = settings_changes({**PROJECT, "backend": "generative"}, {"lr": 5e-4}, stored)
    assert changes["model_config"] == {"lora_r": 4, "lr": 5e-4}
    # Switching the backend: the other backend's fields would not fit, so its defaults.
    switched = settings_changes({**PROJECT, "backend": "encoder"}, {"lr": 5e-4}, stored)
    assert (switched["backend"], switched["model_config"]) == ("encoder", {})
