"""A tiny Streamlit app that mounts the annotator on a fixture note (browser tests, bench).

``?fixture=clinic|inject|two_types|bench`` picks the note (``bench`` takes ``words`` and
``suggestions``). Every submitted result is checked with ``check_deliberate``, converted
with ``result_to_annotation`` and appended to the JSON list in ``$NOTELOOP_ANNOTATOR_OUT``,
and shown with ``st.json``; then the note is shown again as a page would after saving: the
new gold, one version up, the suggestions left open recorded as rejected.

Drafts as a page keeps them: the latest ``annotation`` state of each fixture is stored in
the JSON object in ``$NOTELOOP_ANNOTATOR_STATES``, and ``&draft=1`` mounts the fixture with
the stored state as its draft (a new browser session restoring its work).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

sys.path.insert(0, str(Path(__file__).parent))

from widget_fixtures import FIXTURES

from noteloop.screen.components.annotator import (
    AnnotatorView,
    annotator,
    check_deliberate,
    open_at_submit,
    result_to_annotation,
)


def record(submitted: dict[str, Any], view: AnnotatorView) -> dict[str, Any]:
    try:
        check_deliberate(submitted, view)
        spans, relations, decisions, seconds = result_to_annotation(submitted, view)
    except ValueError as exc:
        return {"document_id": view.document_id, "error": str(exc), "state": submitted}
    return {
        "document_id": view.document_id,
        "spans": [
            {
                "id": s.id,
                "label": s.label,
                "start": s.start,
                "end": s.end,
                "text": s.text_in(view.text),
                "source": s.source.value,
                "suggestion_id": s.suggestion_id,
                "attributes": dict(s.attributes),
            }
            for s in spans
        ],
        "relations": [
            {"id": r.id, "label": r.label, "head": r.head, "tail": r.tail} for r in relations
        ],
        "decisions": {str(k): v for k, v in decisions.items()},
        "open_at_submit": open_at_submit(submitted, view),
        "seconds": seconds,
        "state": submitted,
    }


def append(path: str, entry: dict[str, Any]) -> None:
    out = Path(path)
    entries = json.loads(out.read_text()) if out.exists() and out.read_text().strip() else []
    entries.append(entry)
    out.write_text(json.dumps(entries, indent=1, ensure_ascii=False))


def read_json(path: str, empty: Any) -> Any:
    file = Path(path)
    text = file.read_text() if file.exists() else ""
    return json.loads(text) if text.strip() else empty


def keep_state(path: str, fixture: str, state: dict[str, Any]) -> None:
    """Store the latest state as a page stores a draft (only when it changed)."""
    states = read_json(path, {})
    if states.get(fixture) != state:
        states[fixture] = state
        Path(path).write_text(json.dumps(states, indent=1, ensure_ascii=False))


def first_view(name: str) -> AnnotatorView:
    view = FIXTURES[name](dict(st.query_params))
    path = os.environ.get("NOTELOOP_ANNOTATOR_STATES")
    if st.query_params.get("draft") and path:
        draft = read_json(path, {}).get(name)
        if draft is not None:
            view = replace(view, draft=draft)
    return view


def saved_view(view: AnnotatorView, submitted: dict[str, Any]) -> AnnotatorView:
    """What a page shows after saving: the new gold at the next version, decided and
    left-open suggestions gone (the same as reloading from the database), no draft."""
    spans, relations, decisions, _ = result_to_annotation(submitted, view)
    closed = set(decisions) | set(open_at_submit(submitted, view))
    return replace(
        view,
        spans=tuple(spans),
        relations=tuple(relations),
        suggestions=tuple(s for s in view.suggestions if view.suggestion_id(s) not in closed),
        version=view.version + 1,
        status="submitted",
        draft=None,
    )


st.set_page_config(page_title="noteloop annotator test", layout="wide")
name = st.query_params.get("fixture", "clinic")
views = st.session_state.setdefault("views", {})
if name not in views:
    views[name] = first_view(name)
view = views[name]
result = annotator(view, key=f"annotator-{name}-{view.version}")
states_path = os.environ.get("NOTELOOP_ANNOTATOR_STATES")
if result is not None and result.state is not None and states_path:
    keep_state(states_path, name, result.state)
if result is not None and result.submitted is not None:
    entry = record(result.submitted, view)
    if os.environ.get("NOTELOOP_ANNOTATOR_OUT"):
        append(os.environ["NOTELOOP_ANNOTATOR_OUT"], entry)
    st.session_state["last_submitted"] = entry
    if "error" not in entry:
        views[name] = saved_view(view, result.submitted)
        st.rerun()
if "last_submitted" in st.session_state:
    st.json(st.session_state["last_submitted"], expanded=False)
