"""What the typed configs share: fields with help text, and a strict round trip via dicts.

In the style of peft's ``LoraConfig``: each field carries the sentence a settings page or
``--help`` shows, and a config rebuilt from a stored dict refuses keys it does not know,
so a job row written by a newer version cannot be replayed with a field silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar

from noteloop.core.errors import ConfigError

C = TypeVar("C")


def described(default: Any, text: str) -> Any:
    """A dataclass field with a default and its help text."""
    return field(default=default, metadata={"help": text})


def help_texts(cls: type) -> dict[str, str]:
    """Field name -> help text of a config dataclass (fields with a default only)."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls) if f.default is not MISSING}


def from_known_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """``cls(**data)``; unknown keys are refused by name, missing keys take defaults."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
    return cls(**dict(data))
