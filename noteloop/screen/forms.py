"""Streamlit inputs for typed configuration fields (:class:`noteloop.core.settings.ConfigField`):
one input per field, of the field's kind, with its help text, returning the values a
``settings_changes`` call checks; and :func:`md`, which every page uses to put a user's
string into Markdown."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from noteloop.core.settings import ConfigField

# What makes Markdown (with Streamlit's extensions) more than text in the middle of a
# line: links and images ([...]), autolinks (<...>, https://, www.), emphasis, code, HTML,
# entities, math ($), tables (|), and the :color[...] / :material/icon: / :emoji:
# directives (a colon right before a word). An underscore inside a word (cons_001) is no
# emphasis; parentheses, #, - and . mean something only after ] or at the start of a
# line, and messages use them as plain punctuation.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>~$|&]|:(?=\S)|(?<=www)\.|(?<![^\W_])_|_(?![^\W_]))")


def md(text: object) -> str:
    """``text`` escaped so that Markdown shows it as typed: a document id, project, model
    or user name is someone's string, and ``[log in again](https://...)`` must not become
    a link in anyone's browser."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


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
