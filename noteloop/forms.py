"""Streamlit inputs for typed configuration fields (:class:`noteloop.core.settings.ConfigField`):
one input per field, of the field's kind, with its help text, returning the values a
``settings_changes`` call checks."""

from __future__ import annotations

from typing import Any

import streamlit as st

from noteloop.core.settings import ConfigField


def field_input(f: ConfigField, value: Any, key: str) -> Any:
    """An input for ``f`` showing ``value``; lists are typed comma-separated."""
    if f.kind == "bool":
        return st.checkbox(f.name, value=value, help=f.help, key=key)
    if f.kind == "int":
        return st.number_input(f.name, value=value, step=1, help=f.help, key=key)
    if f.kind == "float":
        return st.number_input(f.name, value=float(value), format="%g", help=f.help, key=key)
    if f.kind == "list":
        return st.text_input(f.name, ", ".join(value), help=f.help, key=key)
    return st.text_input(f.name, value, help=f.help, key=key)


def config_inputs(fields: list[ConfigField], config: Any, prefix: str) -> dict[str, Any]:
    """Inputs for every field, showing ``config``'s values: field name -> value entered."""
    return {f.name: field_input(f, getattr(config, f.name), f"{prefix}-{f.name}") for f in fields}
