"""A project's training settings, typed: what the Model page edits and the worker reads.

A project row keeps its settings as a JSON dict (``projects.settings``). The keys the
loop reads are typed here, with help text, and refused with the field's name when a
value cannot be right:

- :class:`ProjectSettings`: when to train (``train_every`` new gold notes,
  ``train_every_minutes``), how to rank the pool (``strategy``), which model (``backend``);
- ``model_config``: the values of the backend's configuration (:class:`EncoderConfig` or
  :class:`GenerativeConfig`) that differ from its defaults. Only the differences are
  stored, so a project follows improved defaults unless someone chose a value on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from noteloop.core.active import DEFAULT_RANDOM_SHARE, DEFAULT_STRATEGY, STRATEGIES
from noteloop.core.config_fields import described, help_texts
from noteloop.core.errors import NoteloopError
from noteloop.core.model.config import EncoderConfig, GenerativeConfig
from noteloop.core.schema_edit import parse_names

# The backends a project may choose (the names of noteloop.usecases.modeling.BACKENDS).
BACKEND_NAMES = ("encoder", "generative")
# How a newly trained version comes to serve (ProjectSettings.model_rule).
MODEL_RULES = ("ci", "newest", "manual")
# The worker sets its own thread budget (NOTELOOP_WORKER_THREADS) over the project's.
WORKER_OWNED = frozenset({"threads"})


class SettingsError(NoteloopError, ValueError):
    """A setting with a value that cannot be right; the message names the setting."""


@dataclass(frozen=True)
class ProjectSettings:
    """When the worker trains a project's model and how it ranks the pool."""

    train_every: int = described(
        5, "Train a new model after this many newly submitted gold notes in the pool."
    )
    train_every_minutes: float = described(
        0.0,
        "Also train on a schedule: this many minutes after the last job ended, when "
        "there is new gold since the last model (0 = no schedule).",
    )
    strategy: str = described(
        DEFAULT_STRATEGY, f"How the pool is ranked for annotation: one of {', '.join(STRATEGIES)}."
    )
    random_share: float = described(
        DEFAULT_RANDOM_SHARE,
        "Share of the queue's places given to notes drawn at random from the pool (0 to "
        "0.5; 0.1 = every tenth note): a guard the Dashboard compares the strategy's picks "
        "with, so a strategy that does not pay shows. Not used with the random strategy.",
    )
    double_annotation: float = described(
        0.0,
        "Share of the pool's notes that a second annotator also annotates, independently, "
        "for inter-annotator agreement (0 = none, 0.1 = one note in ten). Which notes is "
        "fixed by each note's text, so a note stays chosen while the share is unchanged.",
    )
    claim_minutes: float = described(
        30.0,
        "A note asked for on the Annotate page is held for its annotator; after this many "
        "minutes without any change to it, it goes back to the queue (their draft is kept).",
    )
    model_rule: str = described(
        "ci",
        "Which newly trained version serves: 'ci' (unless its test F1 is below the serving "
        "version's confidence interval: worse beyond the test set's noise), 'newest' "
        "(always the newest) or 'manual' (new versions wait as candidates for a lead).",
    )
    backend: str = described(
        "encoder",
        "Which model learns and suggests: 'encoder' (BIO tagger, fast on a CPU) or "
        "'generative' (a causal LM prompted for both tasks; best on a GPU, minutes per "
        "round on a CPU). model_config holds the chosen backend's fields.",
    )

    def __post_init__(self) -> None:
        every = self.train_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SettingsError(f"`train_every` must be a whole number >= 1, got {every!r}")
        minutes = self.train_every_minutes
        if not _number(minutes) or minutes < 0:
            raise SettingsError(f"`train_every_minutes` must be a number >= 0, got {minutes!r}")
        share = self.random_share
        if not _number(share) or not 0 <= share <= 0.5:
            raise SettingsError(f"`random_share` must be a share in [0, 0.5], got {share!r}")
        share = self.double_annotation
        if not _number(share) or not 0 <= share <= 1:
            raise SettingsError(f"`double_annotation` must be a share in [0, 1], got {share!r}")
        minutes = self.claim_minutes
        if not _number(minutes) or minutes <= 0:
            raise SettingsError(f"`claim_minutes` must be a number > 0, got {minutes!r}")
        if self.model_rule not in MODEL_RULES:
            raise SettingsError(
                f"`model_rule` must be one of {', '.join(MODEL_RULES)}, got {self.model_rule!r}"
            )
        if self.strategy not in STRATEGIES:
            raise SettingsError(
                f"`strategy` must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.backend not in BACKEND_NAMES:
            raise SettingsError(
                f"`backend` must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}"
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ProjectSettings:
        """The typed view of a project's settings dict (other keys are left alone)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        return help_texts(cls)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ConfigField:
    """One editable field of the encoder's configuration, as a form shows it."""

    name: str
    kind: str  # bool, int, float, str or list (of names)
    default: Any
    help: str


def _config_class(backend: str) -> type[EncoderConfig] | type[GenerativeConfig]:
    return GenerativeConfig if backend == "generative" else EncoderConfig


def config_fields(backend: str = "encoder") -> list[ConfigField]:
    """The fields of ``backend``'s configuration a person may set for a project."""
    cls = _config_class(backend)
    helps = cls.help()
    out = []
    for f in fields(cls):
        if f.name in WORKER_OWNED or f.default is MISSING:
            continue
        kind = "list" if isinstance(f.default, tuple) else type(f.default).__name__
        out.append(ConfigField(f.name, kind, f.default, helps[f.name]))
    return out


def model_config(backend: str, overrides: Mapping[str, Any]) -> EncoderConfig | GenerativeConfig:
    """The configuration a project's ``model_config`` describes, for its ``backend``.

    Raises:
        SettingsError: an unknown key or a value the configuration refuses.
    """
    try:
        return _config_class(backend).from_dict(dict(overrides))
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"model configuration: {exc}") from None


def model_overrides(
    backend: str, values: Mapping[str, Any], stored: Mapping[str, Any]
) -> dict[str, Any]:
    """What to store as ``model_config``: ``values`` (a form's) that differ from the
    defaults of ``backend``'s configuration.

    Keys of ``stored`` the form does not show (the worker-owned ones) are kept. List
    fields may come as comma-separated text.

    Raises:
        SettingsError: a value the configuration refuses, named.
    """
    lists = {f.name for f in config_fields(backend) if f.kind == "list"}
    merged = {k: v for k, v in stored.items() if k not in values}
    for name, value in values.items():
        merged[name] = (
            list(parse_names(value)) if isinstance(value, str) and name in lists else value
        )
    config = model_config(backend, merged)
    defaults = _config_class(backend)().to_dict()
    return {k: v for k, v in config.to_dict().items() if k in merged and v != defaults[k]}


def current_settings(
    settings: Mapping[str, Any],
) -> tuple[ProjectSettings, EncoderConfig | GenerativeConfig, str]:
    """The typed settings stored for a project, and what was wrong with them ('' if
    nothing): a value refused falls back to the defaults, so the form can fix it."""
    try:
        project = ProjectSettings.from_settings(settings)
        return project, model_config(project.backend, settings.get("model_config", {})), ""
    except SettingsError as exc:
        backend = settings.get("backend", "encoder")
        defaults = _config_class(backend if isinstance(backend, str) else "encoder")()
        return ProjectSettings(), defaults, f"the stored settings are refused ({exc})"


def settings_changes(
    project_values: Mapping[str, Any],
    model_values: Mapping[str, Any],
    stored: Mapping[str, Any],
) -> dict[str, Any]:
    """The settings to merge into a project's: checked whole before anything is saved.

    Raises:
        SettingsError: the first value refused, with the setting's name.
    """
    try:
        # A form that does not show the backend must not reset a project's choice.
        project = ProjectSettings(
            **{"backend": stored.get("backend", "encoder"), **dict(project_values)}
        )
    except TypeError as exc:
        raise SettingsError(f"project settings: {exc}") from None
    was = stored.get("backend", "encoder")
    if project.backend != was:  # another backend's fields: it starts from its defaults
        return {**project.to_dict(), "model_config": {}}
    config = model_overrides(project.backend, model_values, stored.get("model_config", {}))
    return {**project.to_dict(), "model_config": config}
